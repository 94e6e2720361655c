"""One command per stage: ``generate``, ``classify``, ``instances``, ``export``.

Each works on a run directory and can be re-run; a re-run continues where the last one
stopped. ``generate`` creates the run directory; the others read its manifest.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from selfinstruct.cli.help import DefaultsFormatter
from selfinstruct.cli.hub_export import add_hub_options, check_hub_args, export_hub
from selfinstruct.cli.options import OPTIONS, add_config_options
from selfinstruct.cli.run import add_run_dir_options, context_from_args
from selfinstruct.errors import UserError
from selfinstruct.files import check_outputs


def register(subparsers) -> None:
    gen = subparsers.add_parser(
        "generate", help="stage 1: bootstrap new instructions from the seeds",
        formatter_class=DefaultsFormatter)
    add_run_dir_options(gen)
    add_config_options(gen)
    gen.set_defaults(handler=handle_generate)

    for name, helptext, handler in (
        ("classify", "stage 2: mark each instruction as classification or not", handle_classify),
        ("instances", ("stage 3: generate, parse and filter instances (and, under the curated "
                       "recipe, answer them again and curate)"), handle_instances),
    ):
        parser = subparsers.add_parser(name, help=helptext)
        parser.add_argument("run", metavar="RUN", help="run directory")
        parser.add_argument("--quiet", action="store_true", help="no progress bars")
        add_config_options(parser)
        parser.set_defaults(handler=handler)

    from selfinstruct.stages.export import FORMATS

    exp = subparsers.add_parser("export", help="write the filtered tasks in a training format")
    exp.add_argument("run", metavar="RUN", nargs="?", help="run directory")
    exp.add_argument("--seeds", nargs="?", const="bundled", metavar="FILE",
                     help="export seed tasks instead of a run: the bundled ones, or FILE "
                          "(seed_tasks.jsonl format); needs --output; for the seeds-only "
                          "fine-tune, the paper's 'no bootstrapping' ablation")
    exp.add_argument("--seed", type=int, default=0,
                     help="with --seeds: seed of the random fine-tuning template choice "
                          "(prompt-completion format)")
    exp.add_argument("--format", choices=FORMATS, default="alpaca", help="output format")
    exp.add_argument("-o", "--output", help="output file (default: RUN/exports/<format file>)")
    exp.add_argument("--reviewed", action="store_true",
                     help="apply 'selfinstruct review' decisions (RUN/review.sqlite): drop "
                          "rejected tasks, apply edits; default file exports/reviewed_<name>")
    exp.add_argument("--tags", action="store_true",
                     help="add per-row quality tags: a 'quality' object in each row "
                          "(quality_<name> columns in parquet and hf): the instruction's "
                          "max ROUGE-L and nearest pool instruction, the calibrated "
                          "classification margin, echo, word counts")
    add_hub_options(exp)
    exp.set_defaults(handler=handle_export)


def _existing_run_context(args: argparse.Namespace):
    if not str(args.run).strip():  # Path("") is the current directory: never meant
        raise UserError("RUN: the path is empty; give a run directory")
    run = Path(args.run)
    if not (run / "manifest.json").is_file():
        raise UserError(f"{run} is not a run directory (no manifest.json); "
                        "start one with 'selfinstruct generate --out DIR' or 'selfinstruct run'")
    args.out, args.force_new = str(run), False
    args.quiet = getattr(args, "quiet", True)
    return context_from_args(args)


def _read_only_run(args: argparse.Namespace):
    """The run to export, opened without writing to it; a warning when the run is being
    written now, or its last session did not finish (its tasks may be stale)."""
    from selfinstruct.run.context import open_run_readonly

    view = open_run_readonly(args.run)
    pid = view.writer_pid
    if pid is not None:
        who = f"process {pid}" if pid else "another process"
        _warn(f"{view.run.path} is being written by {who}; this export holds its tasks as "
              "they are now, and the run will replace them")
    elif view.manifest.get("status") == "running":
        _warn(f"{view.run.path} is marked running but no process is writing it (its last "
              "session was stopped); this export holds the tasks of its last completed "
              "'instances' stage; re-run it to finish")
    elif view.manifest.get("status") == "incomplete":
        _warn(f"{view.run.path} is incomplete: requests of its last session failed for good "
              "(failures.jsonl); this export lacks what they would have added; re-run the "
              "run to send them again")
    return view


def _warn(message: str) -> None:
    import sys

    print(f"selfinstruct: warning: {message}", file=sys.stderr)


def handle_generate(args: argparse.Namespace) -> int:
    from selfinstruct.stages.bootstrap import bootstrap

    ctx = context_from_args(args)
    try:
        with _stage_lines_on_give_up(ctx):
            result = bootstrap(ctx)
        ctx.save_manifest()
    finally:
        ctx.close()
    Console().print(f"kept {result.kept} instructions, rejected {result.rejected}, "
                    f"{result.requests} requests -> {ctx.run.instructions.path}")
    if _failed(ctx):
        return _incomplete(ctx)
    if not result.reached_target:  # the request cap (selfinstruct.run.request_cap)
        from collections import Counter

        from rich.markup import escape

        from selfinstruct.run.request_cap import cap_reason

        reasons = dict(Counter(r["reason"] for r in ctx.run.rejects.read()))
        reason = cap_reason(ctx.config, result.kept, result.requests, reasons)
        Console().print(f"[yellow]{escape(reason)}; raise --max-requests and re-run to "
                        "continue (exit code 3)[/yellow]", soft_wrap=True)
        return 3
    return 0


def handle_classify(args: argparse.Namespace) -> int:
    from selfinstruct.stages.classify import classify

    ctx = _existing_run_context(args)
    try:
        with _stage_lines_on_give_up(ctx):
            result = classify(ctx)
        ctx.save_manifest()
    finally:
        ctx.close()
    Console().print(f"classified {result.classified}: {result.classification} classification, "
                    f"{result.classified - result.classification} other; "
                    f"{result.failed} failed")
    return _incomplete(ctx) if _failed(ctx) else 0


def handle_instances(args: argparse.Namespace) -> int:
    from selfinstruct.stages.answers import answer
    from selfinstruct.stages.instances import generate_instances
    from selfinstruct.stages.postprocess import postprocess

    ctx = _existing_run_context(args)
    try:
        with _stage_lines_on_give_up(ctx):
            generate_instances(ctx)
            if ctx.config.recipe_settings.curate:
                answer(ctx)
        result = postprocess(ctx)
        ctx.save_manifest()
    finally:
        ctx.close()
    Console().print(f"{result.tasks} tasks with {result.instances} instances kept; "
                    f"{result.dropped_instances} instances and {result.dropped_tasks} tasks "
                    f"dropped -> {ctx.run.tasks_path}")
    return _incomplete(ctx) if _failed(ctx) else 0


def _failed(ctx) -> int:
    """Requests of this session that failed for good."""
    return sum(usage.failed for usage in ctx.stats.values())


def _incomplete(ctx) -> int:
    """The stage ran, but requests still failed after their retries: say so, one line per
    stage, and exit with code 4, as ``run`` does (re-running sends them again)."""
    import sys

    from selfinstruct.errors import EXIT_INCOMPLETE
    from selfinstruct.run.pipeline import stage_lines

    print(f"selfinstruct: incomplete: {_failed(ctx)} requests still failed after their "
          "retries (failures.jsonl); re-run the same command to send them again",
          file=sys.stderr)
    for line in stage_lines(ctx):
        print(f"selfinstruct:   {line}", file=sys.stderr)
    return EXIT_INCOMPLETE


@contextlib.contextmanager
def _stage_lines_on_give_up(ctx):
    """A server given up on (--give-up-after) ends the command with the stage lines."""
    from selfinstruct.errors import RunIncomplete
    from selfinstruct.run.pipeline import stage_lines

    try:
        yield
    except RunIncomplete as exc:
        exc.details = exc.details or stage_lines(ctx)
        raise


def handle_export(args: argparse.Namespace) -> int:
    from selfinstruct.progress import ambient
    from selfinstruct.records import Task
    from selfinstruct.stages.export import DEFAULT_NAMES, export

    hub_token = check_hub_args(args)  # before anything is written
    notes: list[str] = []
    if args.seeds is not None:
        return _export_seeds(args)
    if args.run is None:
        raise UserError("export: give a run directory (RUN) or --seeds")
    for name, *_ in OPTIONS:  # export changes no parameter: use the run's own
        setattr(args, name, None)
    ctx = _read_only_run(args)  # export writes its output file and nothing else
    try:
        tasks = [Task.from_json(r) for r in ctx.run.read_tasks()]
        name = DEFAULT_NAMES[args.format]
        if args.reviewed:
            from selfinstruct.review.store import apply_reviews

            tasks = apply_reviews(ctx.run.path, tasks)
            name = f"reviewed_{name}"
        target = args.output or ctx.run.exports / name
        _check_export_target(target, ctx.run.path, args.format)
        with ambient().stage(f"export {args.format}", None):
            if args.format == "hf":
                path, notes = export_hub(args, ctx.run.path, tasks, target, hub_token)
            else:
                from selfinstruct.rules.tags import read_run_tags

                run_tags = read_run_tags(ctx.run.path) if args.tags else None
                path = export(tasks, args.format, target, ctx.templates, ctx.config.seed,
                              ctx.config.recipe, run_tags)
    finally:
        ctx.close()
    rows = sum(len(t.instances) for t in tasks)
    Console().print(f"wrote {rows} instances from {len(tasks)} tasks as {args.format}: {path}")
    for note in notes:
        Console().print(note)
    return 0


def _check_export_target(target, run: Path, fmt: str) -> None:
    """The output rule (:func:`selfinstruct.files.check_outputs`): inside a run only its
    own ``exports/``; ``--format hf`` a folder this tool made, or a new or empty one."""
    legacy: Callable[[Path], bool] | None = None
    if fmt == "hf":
        from selfinstruct.stages.export_hub import hub_folder_before_markers

        legacy = hub_folder_before_markers
    check_outputs({"-o": target}, {"RUN": run}, owned=(run / "exports",),
                  folders=("-o",) if fmt == "hf" else (), legacy=legacy)


def _export_seeds(args: argparse.Namespace) -> int:
    from selfinstruct.stages.export import export_seed_tasks

    if args.run is not None:
        raise UserError("export: give either a run directory (RUN) or --seeds, not both")
    if args.output is None:
        raise UserError("export --seeds: give the output file with --output")
    if args.reviewed:
        raise UserError("export --seeds: --reviewed applies to a run, not to seed tasks")
    seeds = None if args.seeds == "bundled" else args.seeds
    check_outputs({"-o": args.output}, {"--seeds": seeds})
    path, tasks = export_seed_tasks(seeds, args.format, args.output, args.seed,
                                    tags=args.tags)
    rows = sum(len(t.instances) for t in tasks)
    Console().print(f"wrote {rows} instances from {len(tasks)} seed tasks as {args.format}: "
                    f"{path}")
    return 0
