"""``selfinstruct run``: the whole pipeline on one run directory, resuming if it exists."""

from __future__ import annotations

import argparse
from pathlib import Path

from selfinstruct.cli.help import DefaultsFormatter
from selfinstruct.cli.options import add_config_options, config_from_args
from selfinstruct.cli.preview import add_preview_option, handle_preview
from selfinstruct.errors import UserError
from selfinstruct.progress import RichReporter, SilentReporter
from selfinstruct.run.context import config_from_manifest, open_context
from selfinstruct.run.rundir import read_manifest


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
        formatter_class=DefaultsFormatter,
    )
    add_run_dir_options(parser, out_required=False)
    add_preview_option(parser)
    add_config_options(parser)
    parser.set_defaults(handler=handle)


def add_run_dir_options(parser: argparse.ArgumentParser, out_required: bool = True) -> None:
    parser.add_argument("--out", required=out_required, metavar="DIR",
                        help="run directory (created or resumed)")
    parser.add_argument("--force-new", action="store_true",
                        help="discard what the run directory holds and start over")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def context_from_args(args: argparse.Namespace):
    if not str(args.out).strip():  # Path("") is the current directory: never meant
        raise UserError("--out: the path is empty; give a directory")
    manifest = None if args.force_new else (
        read_manifest(Path(args.out)) if Path(args.out).is_dir() else None
    )
    if manifest is not None:  # a damaged manifest is named, not blamed on the flags
        config_from_manifest(manifest, Path(args.out) / "manifest.json")
    config = config_from_args(args, base=(manifest or {}).get("config"))
    reporter = SilentReporter() if args.quiet else RichReporter()
    return open_context(args.out, config, force_new=args.force_new, reporter=reporter)


def handle(args: argparse.Namespace) -> int:
    from selfinstruct.cli.render import print_summary
    from selfinstruct.errors import UserError
    from selfinstruct.run.pipeline import run_pipeline

    if args.preview is not None:
        return handle_preview(args)
    if args.out is None:
        raise UserError("run: --out is required (or --preview, which writes nothing)")
    ctx = context_from_args(args)
    try:
        summary = run_pipeline(ctx)
    finally:
        ctx.close()
    print_summary(summary, args.out)
    from selfinstruct.analysis import analysis_available, write_report

    if analysis_available():
        print(f"report: {write_report(args.out)}")
    if summary.incomplete:
        import sys

        from selfinstruct.errors import EXIT_INCOMPLETE

        print(f"selfinstruct: incomplete: {summary.stop_reason}", file=sys.stderr)
        for line in summary.stage_lines:
            print(f"selfinstruct:   {line}", file=sys.stderr)
        return EXIT_INCOMPLETE
    return 0 if summary.reached_target else 3  # 3: stopped at a budget, here the request cap
