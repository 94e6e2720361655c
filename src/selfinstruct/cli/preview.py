"""``selfinstruct run --preview [N]``: the run's first N instructions, written nowhere.

Every ``run`` option applies; with ``--out`` naming an existing run, its parameters are
the base, as when resuming it. See :mod:`selfinstruct.run.preview`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

PREVIEW_TASKS = 3  # selfinstruct.run.preview.PREVIEW_TASKS, not imported at parse time


def add_preview_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preview", nargs="?", type=int, const=PREVIEW_TASKS, default=None, metavar="N",
        help=f"run the stages on an in-memory run up to its first N instructions (default "
             f"N: {PREVIEW_TASKS}): the run's first N instructions, their classes and "
             "instances, as a table; writes nothing (no run directory, no cache); --out is "
             "not needed")


def handle_preview(args: argparse.Namespace) -> int:
    from rich.console import Console

    from selfinstruct.cli.options import config_from_args
    from selfinstruct.errors import UserError
    from selfinstruct.progress import reporter_for
    from selfinstruct.run.preview import print_preview, run_preview
    from selfinstruct.run.rundir import read_manifest

    if args.preview < 1:
        raise UserError(f"--preview: must be at least 1, got {args.preview}")
    base = None
    if args.out and Path(args.out).is_dir() and not args.force_new:
        base = (read_manifest(Path(args.out)) or {}).get("config")
    config = config_from_args(args, base=base).validate()
    preview = run_preview(config, tasks=args.preview, reporter=reporter_for(quiet=args.quiet))
    print_preview(preview, Console())
    return 0
