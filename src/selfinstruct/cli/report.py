"""``selfinstruct report RUN``: write RUN/report/index.html (see docs/report-and-review.md)."""

from __future__ import annotations

import argparse

from selfinstruct.cli.help import DefaultsFormatter


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="write an HTML analysis report of a run (RUN/report/index.html)",
        description="Write RUN/report/index.html, one self-contained page (figures embedded) "
                    "with the filter funnel, the verb-noun sunburst, ROUGE-L with the "
                    "nearest seed, length histograms, the classification split, a random "
                    "sample and the run's manifest. Needs: pip install "
                    "'selfinstruct[analysis]'.",
        formatter_class=DefaultsFormatter)
    parser.add_argument("run", metavar="RUN", help="run directory")
    parser.add_argument("--sample", type=int, default=20, metavar="N",
                        help="tasks in the random sample")
    parser.add_argument("--sample-seed", type=int, default=None, metavar="N",
                        help="seed of the sample (default: the run's seed)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from selfinstruct.analysis import require_analysis
    from selfinstruct.errors import UserError

    require_analysis("report")
    if args.sample < 0:
        raise UserError(f"--sample must be at least 0, got {args.sample}")
    from selfinstruct.analysis.report import write_report

    _warn_if_being_written(args.run)
    path = write_report(args.run, sample_size=args.sample, sample_seed=args.sample_seed)
    print(f"report: {path}")
    return 0


def _warn_if_being_written(run: str) -> None:
    """A warning when the run is being written now (or its last session stopped mid-way):
    the report describes its records as they are at this moment."""
    import sys
    from pathlib import Path

    from selfinstruct.run.rundir import RunDir, read_manifest

    folder = RunDir(run)
    if not Path(run).is_dir():
        return  # the report names the problem
    pid = folder.writer_pid()
    if pid is not None:
        who = f"process {pid}" if pid else "another process"
        print(f"selfinstruct: warning: {folder.path} is being written by {who}; this report "
              "describes its records as they are now", file=sys.stderr)
        return
    status = (read_manifest(folder.path) or {}).get("status")
    if status in ("running", "incomplete"):
        why = ("its last session was stopped" if status == "running"
               else "requests of its last session failed")
        print(f"selfinstruct: warning: {folder.path} is not finished ({why}); this report "
              "describes what it holds so far", file=sys.stderr)
