"""``selfinstruct run --preview [N]``: try the settings on one request, write nothing.

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
        help=f"send one bootstrap request, classify and write instances for the first N "
             f"instructions it keeps (default N: {PREVIEW_TASKS}), print them as a table, and "
             "write nothing (no run directory, no cache); --out is not needed")


def handle_preview(args: argparse.Namespace) -> int:
    from rich.console import Console

    from selfinstruct.cli.options import config_from_args
    from selfinstruct.errors import UserError
    from selfinstruct.run.preview import open_preview_backend, print_preview, run_preview
    from selfinstruct.run.rundir import read_manifest

    if args.preview < 1:
        raise UserError(f"--preview: must be at least 1, got {args.preview}")
    base = None
    if args.out and Path(args.out).is_dir() and not args.force_new:
        base = (read_manifest(Path(args.out)) or {}).get("config")
    config = config_from_args(args, base=base).validate()
    console = Console()
    backend, name = open_preview_backend(config)
    try:
        if args.quiet or not console.is_terminal:
            preview = run_preview(config, backend, tasks=args.preview, model_name=name)
        else:
            with console.status(f"preview: one bootstrap request to {name}..."):
                preview = run_preview(config, backend, tasks=args.preview, model_name=name)
    finally:
        close = getattr(backend, "close", None)
        if close is not None:
            close()
    print_preview(preview, console)
    return 0
