"""``selfinstruct run``: the whole pipeline on one run directory, resuming if it exists."""

from __future__ import annotations

import argparse
from pathlib import Path

from selfinstruct.cli.options import add_config_options, config_from_args
from selfinstruct.context import open_context
from selfinstruct.progress import RichReporter, SilentReporter
from selfinstruct.rundir import read_manifest


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the whole pipeline (generate, classify, instances, export)",
        description=(
            "Run Self-Instruct end to end: bootstrap instructions, identify classification "
            "tasks, generate instances, filter, and export. On an existing run directory it "
            "resumes with that run's parameters; options given override them only where "
            "allowed (--num-instructions, --max-concurrency, --max-requests)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_run_dir_options(parser)
    add_config_options(parser)
    parser.set_defaults(handler=handle)


def add_run_dir_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="run directory (created or resumed)")
    parser.add_argument("--force-new", action="store_true",
                        help="discard what the run directory holds and start over")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def context_from_args(args: argparse.Namespace):
    manifest = None if args.force_new else (
        read_manifest(Path(args.out)) if Path(args.out).is_dir() else None
    )
    config = config_from_args(args, base=(manifest or {}).get("config"))
    reporter = SilentReporter() if args.quiet else RichReporter()
    return open_context(args.out, config, force_new=args.force_new, reporter=reporter)


def handle(args: argparse.Namespace) -> int:
    from selfinstruct.cli.render import print_summary
    from selfinstruct.pipeline import run_pipeline

    ctx = context_from_args(args)
    try:
        summary = run_pipeline(ctx)
    finally:
        ctx.close()
    print_summary(summary, args.out)
    from selfinstruct.analysis import analysis_available, write_report

    if analysis_available():
        print(f"report: {write_report(args.out)}")
    return 0
