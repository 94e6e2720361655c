"""``selfinstruct dedup IN -o OUT``: Self-Instruct's ROUGE-L novelty filter on any data set.

::

    selfinstruct dedup IN.jsonl -o OUT.jsonl [--field instruction] [--against seeds.jsonl]
                       [--threshold 0.7] [--stemmer] [--rejects REJ.jsonl]

Parses, calls :func:`selfinstruct.novelty.dedup.dedup_file`, shows a progress bar on stderr and a
summary on stdout.
"""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from selfinstruct.novelty.dedup import dedup_file
from selfinstruct.novelty.index import DEFAULT_THRESHOLD


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dedup",
        help="drop records too similar (ROUGE-L) to an earlier one, as Self-Instruct does",
        description=(
            "Keep a record only if the ROUGE-L F-measure of its text against every record kept "
            "before it (and every --against seed) is at most --threshold. Exact: scores equal "
            "rouge_score's. Input: JSONL or one JSON list. Output: the kept records, unchanged, "
            "in their original order (JSONL)."
        ),
    )
    parser.add_argument("input", metavar="IN", help="records to filter: JSONL or a JSON list")
    parser.add_argument("-o", "--output", metavar="OUT", required=True, help="kept records (JSONL)")
    parser.add_argument(
        "--field", default="instruction", help="the text field (default: %(default)s)"
    )
    parser.add_argument(
        "--against", metavar="SEEDS", help="seed file (JSONL, same --field) indexed first"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help="reject when ROUGE-L F is above this (default: %(default)s, the paper's)",
    )
    parser.add_argument(
        "--stemmer", action="store_true", help="Porter-stem tokens, as rouge_score's use_stemmer"
    )
    parser.add_argument(
        "--rejects", metavar="REJ", help="write rejected records with max_score and nearest text"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    columns = (
        TextColumn("dedup"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    # Only on a terminal: a bar piped into a log file is noise.
    with Progress(
        *columns, console=console, transient=True, disable=not console.is_terminal
    ) as bar:
        task = bar.add_task("dedup", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        summary = dedup_file(
            args.input,
            args.output,
            field=args.field,
            against=args.against,
            threshold=args.threshold,
            use_stemmer=args.stemmer,
            rejects_path=args.rejects,
            progress=progress,
        )
    share = summary.rejected / summary.total if summary.total else 0.0
    seeds = f" against {summary.seeds:,} seeds" if args.against else ""
    print(
        f"kept {summary.kept:,} of {summary.total:,} records, rejected {summary.rejected:,} "
        f"({share:.1%}) at ROUGE-L > {args.threshold}{seeds}, in {summary.seconds:.1f} s"
    )
    print(f"kept: {args.output}")
    if args.rejects:
        print(f"rejects: {args.rejects}")
    return 0
