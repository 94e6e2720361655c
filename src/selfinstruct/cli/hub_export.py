"""The Hub options of ``selfinstruct export``: ``--format hf``, ``--push-to-hub REPO``.

::

    selfinstruct export RUN --format hf [-o DIR] [--license ID] [--push-to-hub REPO [--private]]

The arguments are checked before anything is written (a missing ``HF_TOKEN`` is one line
and exit code 2); the writing and the upload are :mod:`selfinstruct.stages.export_hub`'s.
"""

from __future__ import annotations

import argparse

from selfinstruct.errors import UserError


def add_hub_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Hugging Face Hub (--format hf)")
    group.add_argument("--license", metavar="ID",
                       help="the data set's license on its card (default: the seed tasks' "
                            "license: apache-2.0 for the bundled seeds, else 'other')")
    group.add_argument("--push-to-hub", metavar="REPO",
                       help="upload the directory to this data set repository (user/name) "
                            "with the token in $HF_TOKEN; needs pip install "
                            "'selfinstruct[hub]'")
    group.add_argument("--private", action="store_true",
                       help="with --push-to-hub: create the repository private")


def check_hub_args(args: argparse.Namespace) -> str | None:
    """The Hub token when the export will be uploaded; raises before anything is written."""
    from selfinstruct.stages.export_hub import hub_token, require_hub

    hub_only = [flag for flag, given in (("--push-to-hub", args.push_to_hub),
                                         ("--license", args.license),
                                         ("--private", args.private)) if given]
    if args.format != "hf" and hub_only:
        raise UserError(f"{hub_only[0]} applies to --format hf")
    if args.private and not args.push_to_hub:
        raise UserError("--private applies to --push-to-hub")
    if not args.push_to_hub:
        return None
    if args.push_to_hub.count("/") != 1 or not all(args.push_to_hub.split("/")):
        raise UserError(f"--push-to-hub: give the repository as user/name, got "
                        f"{args.push_to_hub!r}")
    require_hub()
    return hub_token()


def export_hub(args: argparse.Namespace, run_dir, tasks, target, token: str | None):
    """Write the directory, upload it when asked; returns the lines to print."""
    from selfinstruct.stages.export_hub import push_to_hub, write_hub_dataset

    path = write_hub_dataset(run_dir, tasks, target, reviewed=args.reviewed,
                             license=args.license, repo_id=args.push_to_hub,
                             tags=args.tags)
    lines = []
    if args.push_to_hub:
        assert token is not None  # check_hub_args gave it, or raised
        url = push_to_hub(path, args.push_to_hub, token, private=args.private)
        lines.append(f"uploaded {path} to {url}")
    return path, lines
