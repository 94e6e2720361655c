"""``selfinstruct eval ...``: SuperNI zero-shot ROUGE-L and the user-oriented evaluation.

::

    selfinstruct eval superni build          --tasks-dir DIR --split FILE -o FILE
    selfinstruct eval superni run            --model M --data FILE --out DIR [...]
    selfinstruct eval superni score          --data FILE --predictions FILE [-o FILE]
    selfinstruct eval superni compare        --data FILE --arm NAME=PREDICTIONS ... --out DIR
    selfinstruct eval user-oriented run      --model M --data FILE --out DIR
    selfinstruct eval user-oriented judge    --judge M --predictions A.jsonl [B.jsonl ...] --out DIR
    selfinstruct eval classify               --model M [--tasks FILE] [--json]

Each handler parses, calls one function of ``selfinstruct.evaluation``, and renders the
result; see docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from selfinstruct.cli.help import DefaultsFormatter
from selfinstruct.files import check_outputs


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval", help="evaluate a model: SuperNI ROUGE-L, user-oriented instructions",
        description="Evaluate any model the way the Self-Instruct paper does.")
    groups = parser.add_subparsers(dest="eval_suite", required=True, metavar="SUITE")

    superni = groups.add_parser("superni", help="SuperNI zero-shot evaluation (ROUGE-L)")
    steps = superni.add_subparsers(dest="eval_step", required=True, metavar="STEP")
    _register_superni_build(steps)
    _register_superni_run(steps)
    _register_superni_score(steps)
    _register_superni_compare(steps)

    _register_classify(groups)

    user = groups.add_parser("user-oriented", help="the 252 user-oriented instructions")
    steps = user.add_subparsers(dest="eval_step", required=True, metavar="STEP")
    _register_user_run(steps)
    _register_user_judge(steps)


_Formatter = DefaultsFormatter


def _formatter():
    return _Formatter


def _add_backend_options(parser: argparse.ArgumentParser, flag: str, default: str) -> None:
    from selfinstruct.cli.options import add_model_options

    add_model_options(parser, flag, default)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _open(args):
    from selfinstruct.backends.opening import open_model
    from selfinstruct.cli.options import model_options_from_args

    return open_model(model_options_from_args(args))


def _reporter(args):
    from selfinstruct.progress import RichReporter, SilentReporter

    return SilentReporter() if args.quiet else RichReporter()


def _warn(message: str) -> None:
    print(f"selfinstruct: warning: {message}", file=sys.stderr)


# --- classify --------------------------------------------------------------------------

def _register_classify(groups) -> None:
    p = groups.add_parser(
        "classify", formatter_class=_formatter(),
        help="accuracy of the classification-task rules on labelled tasks",
        description="Ask the model the classification prompt for each labelled task, with "
                    "the paper rule (greedy Yes/No) and the calibrated rule (Yes-No "
                    "log-probability margin above a threshold fitted on the held-out seed "
                    "tasks; leave-one-out when the tasks are those seeds), and print "
                    "balanced accuracy, accuracy, precision, recall and the confusion "
                    "matrix of each, beside the always-No baseline.")
    _add_backend_options(p, "--model", "smollm2")
    p.add_argument("--tasks", default=None, metavar="FILE",
                   help='JSONL of {"instruction", "is_classification"}; default: the seed '
                        "tasks the classification prompt does not show")
    p.add_argument("--seeds", default=None, metavar="FILE",
                   help="seed tasks file; default: the project's own")
    p.add_argument("--prompts", default=None, metavar="DIR",
                   help="directory of prompt templates; default: the project's own")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="keep a response cache and results.json here")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.set_defaults(handler=_handle_classify)


def _handle_classify(args) -> int:
    import tempfile

    from selfinstruct.evaluation.classification import (
        evaluate_classification,
        from_seeds,
        read_labelled_tasks,
    )
    from selfinstruct.prompts import PromptTemplates
    from selfinstruct.rules.classification import held_out_tasks
    from selfinstruct.seeds import load_seeds

    check_outputs({"--out": args.out}, {"--tasks": args.tasks, "--seeds": args.seeds},
                  directories=("--out",))
    templates = PromptTemplates.load(args.prompts)
    calibration = from_seeds(held_out_tasks(load_seeds(args.seeds), templates))
    tasks = read_labelled_tasks(args.tasks) if args.tasks else None
    backend, _ = _open(args)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.out) if args.out else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        result = evaluate_classification(
            backend, templates, tasks if tasks is not None else calibration,
            calibration if tasks is not None else None, folder,
            _reporter(argparse.Namespace(quiet=args.quiet or args.json)),
            max_concurrency=args.max_concurrency)
    if result.no_logprobs:
        _warn("the backend returns no log-probabilities: only the paper rule is reported")
    data = result.as_dict()
    if args.out:
        from selfinstruct.files import atomic_write_text

        atomic_write_text(Path(args.out) / "results.json", json.dumps(data, indent=2) + "\n")
    if args.json:
        print(json.dumps(data))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Classification-task identification: {args.model}, "
                        f"{result.tasks} tasks ({result.classification_tasks} classification)")
    for column in ("rule", "balanced acc.", "accuracy", "precision", "recall",
                   "tp", "fp", "tn", "fn"):
        table.add_column(column, justify="left" if column == "rule" else "right")
    for name in ("paper", "calibrated", "always_no"):
        m = result.rules.get(name)
        if m is None:
            continue
        table.add_row(name.replace("_", "-"), f"{m['balanced_accuracy']:.1%}",
                      f"{m['accuracy']:.1%}", f"{m['precision']:.1%}", f"{m['recall']:.1%}",
                      str(m["tp"]), str(m["fp"]), str(m["tn"]), str(m["fn"]))
    Console().print(table)
    if result.threshold is not None:
        print(f"calibrated threshold {result.threshold:+.3f} (Yes-No log-probability margin), "
              f"fitted on {result.threshold_fitted_on}; AUC {result.auc:.3f}")
    return 0


# --- superni ---------------------------------------------------------------------------

def _register_superni_build(steps) -> None:
    p = steps.add_parser(
        "build", formatter_class=_formatter(),
        help="build the test-set JSONL from a natural-instructions checkout",
        description="Write one line per test instance (task, category, definition, id, input, "
                    "outputs, input_language, output_language) from tasks/<task>.json of each "
                    "task in the split file, first --max-instances instances per task.")
    p.add_argument("--tasks-dir", required=True, help="natural-instructions/tasks")
    p.add_argument("--split", required=True, help="e.g. natural-instructions/splits/default/"
                                                  "test_tasks.txt")
    p.add_argument("-o", "--output", required=True, help="the JSONL file to write")
    p.add_argument("--max-instances", type=int, default=100, help="instances per task")
    p.set_defaults(handler=_handle_superni_build)


def _handle_superni_build(args) -> int:
    from selfinstruct.evaluation.superni_build import build, write

    check_outputs({"-o": args.output}, {"--split": args.split})
    records = build(args.tasks_dir, args.split, args.max_instances)
    write(records, args.output)
    tasks = len({r["task"] for r in records})
    print(f"wrote {len(records)} instances of {tasks} tasks to {args.output}")
    return 0


def _register_superni_run(steps) -> None:
    from selfinstruct.evaluation.superni_run import MAX_NEW_TOKENS, TEMPLATES, TRIMS

    p = steps.add_parser(
        "run", formatter_class=_formatter(),
        help="generate zero-shot predictions with any model, then score them",
        description="Prompt each instance with its task definition (Tk-Instruct zero-shot "
                    "layout), decode greedily, write DIR/predictions.jsonl (resumable) and "
                    "DIR/metrics.json.")
    _add_backend_options(p, "--model", "smollm2")
    p.add_argument("--data", required=True, help="superni_test_en.jsonl")
    p.add_argument("--out", required=True, help="output directory (created or resumed)")
    p.add_argument("--max-per-task", type=int, default=None,
                   help="only the first N instances of each task (all when not given)")
    p.add_argument("--tasks", default=None, help="comma-separated task names (all when not given)")
    p.add_argument("--template", choices=TEMPLATES, default="tk", help="prompt layout")
    p.add_argument("--trim", choices=TRIMS, default="paragraph",
                   help="how a completion becomes a prediction")
    p.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS,
                   help="max new tokens per prediction (Tk-Instruct: 128)")
    p.add_argument("--per-task", action="store_true", help="print per-task scores too")
    p.set_defaults(handler=_handle_superni_run)


def _handle_superni_run(args) -> int:
    from selfinstruct.evaluation.superni import load_instances
    from selfinstruct.evaluation.superni_run import SuperNIRunSettings, run_superni, select

    check_outputs({"--out": args.out}, {"--data": args.data}, directories=("--out",))
    settings = SuperNIRunSettings(template=args.template, trim=args.trim,
                                  max_new_tokens=args.max_new_tokens, chat=args.chat)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    chosen = select(load_instances(args.data), tasks, args.max_per_task)
    backend, info = _open(args)
    result = run_superni(backend, info.as_dict(), args.data, chosen, args.out, settings,
                         max_concurrency=args.max_concurrency, reporter=_reporter(args))
    print(f"{result.selected} instances: {result.already_done} already done, "
          f"{result.generated} generated, {result.failed} failed; "
          f"{result.wall_seconds:.1f} s")
    if result.truncated:
        print(f"{result.truncated} inputs were shortened to fit --n-ctx {args.n_ctx} "
              "(marked input_truncated in predictions.jsonl)")
    if result.failed:
        _warn(f"{result.failed} requests failed and are scored as empty (first: "
              f"{result.first_error}); re-run the same command to retry them")
    _print_superni(result.scores.as_dict(), f"SuperNI zero-shot: {args.model}", args.per_task)
    print(f"metrics: {Path(args.out) / 'metrics.json'}")
    return 0


def _register_superni_score(steps) -> None:
    p = steps.add_parser(
        "score", formatter_class=_formatter(),
        help="score a predictions file exactly like SuperNI's evaluation.py",
        description="ROUGE-L (rouge_score, Porter stemmer) and exact match, max over "
                    "references, mean x 100 overall, per category and per task. A missing "
                    "prediction scores as the empty string; unknown ids are ignored.")
    p.add_argument("--data", required=True, help="superni_test_en.jsonl")
    p.add_argument("--predictions", required=True, help='JSONL of {"id", "prediction"}')
    p.add_argument("-o", "--output", default="metrics.json", help="metrics file to write")
    p.add_argument("--per-task", action="store_true", help="print per-task scores too")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_handle_superni_score)


def _handle_superni_score(args) -> int:
    from selfinstruct.evaluation.superni import load_instances, load_predictions, score
    from selfinstruct.files import atomic_write_text

    check_outputs({"-o": args.output}, {"--data": args.data, "--predictions": args.predictions})
    instances = load_instances(args.data)
    predictions = load_predictions(args.predictions)
    with _reporter(args).stage("score", len(instances)) as bar:
        scores = score(instances, predictions, on_instance=bar.advance)
    if scores.unknown_ids:
        _warn(f"{len(scores.unknown_ids)} predictions have ids not in {args.data} and were "
              f"ignored, as SuperNI's evaluation.py ignores them (first: "
              f"{scores.unknown_ids[0]})")
    if scores.missing:
        _warn(f"{len(scores.missing)} of {len(instances)} instances have no prediction and "
              "score as the empty string")
    metrics = scores.as_dict()
    atomic_write_text(args.output, json.dumps(metrics, indent=2) + "\n")
    _print_superni(metrics, f"SuperNI: {args.predictions}", args.per_task)
    print(f"metrics: {args.output}")
    return 0


def _register_superni_compare(steps) -> None:
    p = steps.add_parser(
        "compare", formatter_class=_formatter(),
        help="compare models on the same instances, with bootstrap confidence intervals",
        description="Score each arm's predictions on the same selection of instances and "
                    "write DIR/comparison.json and DIR/comparison.md: ROUGE-L with a 95% "
                    "paired bootstrap interval, the difference to the first arm, and "
                    "per-category scores.")
    p.add_argument("--data", required=True, help="superni_test_en.jsonl")
    p.add_argument("--arm", action="append", required=True, metavar="NAME=PATH",
                   help="an arm: a predictions.jsonl, or an `eval superni run` directory; "
                        f"NAME={COPY_INPUT_ARM} is the copy-the-input baseline (no PATH). "
                        "Repeat it; the first arm is the reference. NAME@SEED is arm "
                        "NAME fine-tuned at another seed: the arms of one NAME get their "
                        "spread over seeds and a seed-averaged difference.")
    p.add_argument("--max-per-task", type=int, default=None,
                   help="only the first N instances of each task (as given to `run`)")
    p.add_argument("--tasks", default=None, help="comma-separated task names (all when not given)")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--out", required=True, help="directory for comparison.json and .md")
    p.set_defaults(handler=_handle_superni_compare)


COPY_INPUT_ARM = "copy-input"


def parse_arms(values: list[str]) -> dict[str, Path | None]:
    from selfinstruct.errors import UserError

    arms: dict[str, Path | None] = {}
    for value in values:
        name, sep, path = value.partition("=")
        name = name.strip()
        if name == COPY_INPUT_ARM and not path:
            arms[name] = None
            continue
        if not sep or not name or not path:
            raise UserError(f"--arm {value!r}: expected NAME=PATH (or {COPY_INPUT_ARM})")
        if name in arms:
            raise UserError(f"--arm: the name {name!r} is given twice")
        target = Path(path)
        if target.is_dir():
            target = target / "predictions.jsonl"
        if not target.is_file():
            raise UserError(f"--arm {name}: no predictions file at {target}")
        arms[name] = target
    return arms


def _handle_superni_compare(args) -> int:
    from selfinstruct.errors import UserError
    from selfinstruct.evaluation.compare import compare, render_markdown, write_comparison
    from selfinstruct.evaluation.superni import load_instances
    from selfinstruct.evaluation.superni_run import select

    if args.resamples < 1:
        raise UserError(f"--resamples must be at least 1, got {args.resamples}")
    arms = parse_arms(args.arm)
    check_outputs({"--out": args.out}, {"--data": args.data} | {
        f"--arm {name}": path for name, path in arms.items()}, directories=("--out",))
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    chosen = select(load_instances(args.data), tasks, args.max_per_task)
    result = compare(chosen, arms, resamples=args.resamples, seed=args.seed)
    json_path, md_path = write_comparison(result, args.out)
    print(render_markdown(result), end="")
    print(f"comparison: {json_path}, {md_path}")
    return 0


def _print_superni(metrics: dict, title: str, per_task: bool) -> None:
    from rich.console import Console, JustifyMethod
    from rich.table import Table

    table = Table(title=title, header_style="bold")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("group", "left"), ("instances", "right"), ("ROUGE-L", "right"), ("exact match", "right"))
    for name, justify in columns:
        table.add_column(name, justify=justify)
    table.add_row("[bold]all[/bold]", str(metrics["instances"]), f"{metrics['rougeL']:.2f}",
                  f"{metrics['exact_match']:.2f}", end_section=True)
    for name, m in metrics["per_category"].items():
        table.add_row(name, str(m["instances"]), f"{m['rougeL']:.2f}", f"{m['exact_match']:.2f}")
    if per_task:
        table.rows[-1].end_section = True
        for name, m in sorted(metrics["per_task"].items()):
            table.add_row(name, str(m["instances"]), f"{m['rougeL']:.2f}",
                          f"{m['exact_match']:.2f}")
    Console().print(table)


# --- user-oriented ---------------------------------------------------------------------

def _register_user_run(steps) -> None:
    from selfinstruct.evaluation.user_oriented import DEFAULT_MAX_TOKENS

    p = steps.add_parser(
        "run", formatter_class=_formatter(),
        help="generate one response per user-oriented instance",
        description="Prompt each instance in the layout of the original human-evaluation "
                    "predictions and write DIR/<name>_predictions.jsonl (the original "
                    "files' fields plus id), resumable.")
    _add_backend_options(p, "--model", "smollm2")
    p.add_argument("--data", required=True, help="user_oriented_instructions.jsonl")
    p.add_argument("--out", required=True, help="output directory (created or resumed)")
    p.add_argument("--name", default=None,
                   help="model name for the file name (default: from --model)")
    p.add_argument("--limit", type=int, default=None, help="only the first N instances")
    p.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS,
                   help="max new tokens per response")
    p.set_defaults(handler=_handle_user_run)


def _handle_user_run(args) -> int:
    from selfinstruct.evaluation.user_oriented import load_items, run_user_oriented, safe_name

    check_outputs({"--out": args.out}, {"--data": args.data}, directories=("--out",))
    items = load_items(args.data)[: args.limit] if args.limit else load_items(args.data)
    name = safe_name(args.name or args.model)
    backend, info = _open(args)
    result = run_user_oriented(backend, info.as_dict(), name, args.data, items, args.out,
                               max_tokens=args.max_tokens, chat=args.chat,
                               max_concurrency=args.max_concurrency, reporter=_reporter(args))
    print(f"{result.selected} instances: {result.already_done} already done, "
          f"{result.generated} generated, {result.failed} failed; "
          f"{result.wall_seconds:.1f} s")
    if result.failed:
        _warn(f"{result.failed} requests failed (first: {result.first_error}); re-run the "
              "same command to retry them")
    print(f"responses: {result.path}")
    return 0


def _register_user_judge(steps) -> None:
    from selfinstruct.evaluation.judge import JUDGE_MAX_TOKENS

    p = steps.add_parser(
        "judge", formatter_class=_formatter(),
        help="rate responses A/B/C/D with an LLM judge; table and ratings.png",
        description="Rate each response on the paper's scale (A valid and satisfying; B "
                    "acceptable with minor errors; C relevant but significant errors; D "
                    "irrelevant or invalid). Writes DIR/ratings.jsonl (rater judge:<model>) "
                    "and DIR/ratings.png. A file's model name is its stem minus "
                    "'_predictions'.")
    _add_backend_options(p, "--judge", "smollm2")
    p.add_argument("--predictions", required=True, nargs="+", metavar="FILE",
                   help="response files (ours or the original human_eval_predictions)")
    p.add_argument("--out", required=True, help="output directory (created or resumed)")
    p.add_argument("--limit", type=int, default=None,
                   help="only the first N responses of each file")
    p.add_argument("--max-tokens", type=int, default=JUDGE_MAX_TOKENS,
                   help="max new tokens per judge reply")
    p.add_argument("--no-plot", action="store_true", help="do not write ratings.png")
    p.set_defaults(handler=_handle_user_judge)


def _handle_user_judge(args) -> int:
    from selfinstruct.errors import UserError
    from selfinstruct.evaluation.judge import judge
    from selfinstruct.evaluation.ratings import distributions, ratings_log
    from selfinstruct.evaluation.user_oriented import load_responses

    check_outputs({"--out": args.out}, {
        f"--predictions {path}": path for path in args.predictions}, directories=("--out",))
    responses, models = [], []
    for path in args.predictions:
        loaded = load_responses(path)
        if loaded[0].model in models:
            raise UserError(f"--predictions: two files give the model name "
                            f"'{loaded[0].model}'; rename one")
        models.append(loaded[0].model)
        responses.extend(loaded[: args.limit] if args.limit else loaded)
    backend, info = _open(args)
    result = judge(backend, info.as_dict(), responses, args.out, max_tokens=args.max_tokens,
                   chat=args.chat, max_concurrency=args.max_concurrency,
                   reporter=_reporter(args))
    print(f"{len(responses)} responses: {result.already_rated} already rated, "
          f"{result.rated} rated ({result.unparsed} unparseable), {result.failed} failed; "
          f"{result.wall_seconds:.1f} s")
    if result.truncated:
        print(f"{result.truncated} responses were shortened to fit --n-ctx {args.n_ctx}")
    if result.failed:
        _warn(f"{result.failed} requests failed (first: {result.first_error}); re-run the "
              "same command to retry them")
    rater = f"judge:{info.name}"
    dists = distributions(ratings_log(args.out).recover(), rater, models)
    _print_ratings(dists, rater)
    print(f"ratings: {Path(args.out) / 'ratings.jsonl'}")
    if not args.no_plot:
        from selfinstruct.evaluation.plot import MATPLOTLIB_HINT, matplotlib_available, plot_ratings

        if matplotlib_available():
            png = plot_ratings(dists, Path(args.out) / "ratings.png",
                               f"User-oriented instructions, rated by {rater}")
            print(f"figure: {png}")
        else:
            print(f"ratings.png not written: matplotlib is not installed; {MATPLOTLIB_HINT}")
    return 0


def _print_ratings(dists, rater: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from selfinstruct.evaluation.ratings import LEVELS, UNPARSED

    table = Table(title=f"Ratings by {rater}", header_style="bold")
    table.add_column("model")
    for level in (*LEVELS, UNPARSED):
        table.add_column(level, justify="right")
    table.add_column("rated", justify="right")
    for d in dists:
        cells = [f"{d.counts[k]} ({100 * d.share(k):.0f}%)" for k in (*LEVELS, UNPARSED)]
        table.add_row(d.model, *cells, str(d.total))
    Console().print(table)
