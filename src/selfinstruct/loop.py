"""The experiment loop: generate data with model M, fine-tune M on it, evaluate both.
(One data-generation run alone is :mod:`selfinstruct.run.pipeline`.)

``run_loop`` chains functions that each work alone and resume alone, in one directory::

    OUT/round-1/data/           the pipeline run (selfinstruct run) with M
    OUT/round-1/finetune/       M fine-tuned on round 1's export (selfinstruct finetune)
    OUT/seeds-only/             optional ablation: M fine-tuned on the seed tasks alone;
                                with ``round_zero`` also the adapter that writes instances
    OUT/*/finetune-seed-N/      the same fine-tune at another seed (``extra_finetune_seeds``)
    OUT/eval/<arm>/superni/     zero-shot SuperNI predictions of each arm
    OUT/eval/<arm>/user-oriented/   responses to the user-oriented tasks (optional)
    OUT/eval/judge/             a judge model's ratings of those responses (optional)
    OUT/comparison.json, .md    every arm on the same SuperNI instances, with CIs
    OUT/loop.json               options, the steps done and their wall times

Arms: ``base`` (M as it is), ``copy-input`` (the baseline), ``round-K`` (M fine-tuned
after round K; ``seeds+round-K`` when ``train_with_seeds`` adds the seed tasks to its
data) and ``seeds-only``. Every fine-tune is made at ``seed``; ``extra_finetune_seeds``
fine-tunes each fine-tuned arm again at those seeds (arms ``NAME@N``, evaluated like the
others), and the comparison adds the spread over seeds and the seed-averaged differences
(:mod:`selfinstruct.evaluation.seed_spread`). The data is generated once, and with
``round_zero`` the seed-tasks fine-tune at ``seed`` writes its instances.

``round_zero`` first fine-tunes M on the seed tasks ("round 0", which is the
``seeds-only`` arm) and lets that adapter write the instances of every round
(``--answer-lora``): the model still teaches itself, with its own adapter, but its answers
come from a version of it that has seen what an answer looks like. With ``rounds=2`` the fine-tuned model of round 1
writes round 2's data, and round 2 fine-tunes M on rounds 1 and 2 together: iterative
self-instruct, which the paper did not do. Fine-tuning always starts from M, so rounds
differ only in their data.

The generation rounds keep the loop's own evaluation sets out of their data: the
``superni`` and ``user_oriented`` files are passed as ``--decontaminate`` files
(:mod:`selfinstruct.rules.decontamination`) unless ``decontaminate_eval`` is off
(``--no-decontaminate-eval``).

How a fine-tuned model is served: when M is a GGUF model (a bundled name or a ``.gguf``
file), its LoRA adapter is exported to GGUF and runs on the embedded llama.cpp backend
(``--lora``). The point is fairness, not speed: the base weights are then exactly the
quantized ones the ``base`` arm ran, so the arms differ by the adapter alone (on a CPU it is
about as fast as batched transformers; see BENCHMARKS.md). Otherwise the merged weights run
on the transformers backend (``transformers:OUT/round-K/finetune/merged``).

Re-running the same command resumes: the pipeline, the fine-tunes and the evaluations
each skip what they already have.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from selfinstruct.errors import UserError
from selfinstruct.evaluation.seed_spread import SEED_MARK
from selfinstruct.files import atomic_write_text, now
from selfinstruct.progress import Reporter, SilentReporter


@dataclass(frozen=True)
class ServedModel:
    """How an arm's model is opened: a ``--model`` value and an optional ``--lora``."""

    model: str
    lora: str | None = None


@dataclass
class LoopOptions:
    out: str
    model: str = "smollm2"
    rounds: int = 1
    num_instructions: int = 100
    seed: int = 42
    run_overrides: dict = field(default_factory=dict)  # other RunConfig fields
    finetune_overrides: dict = field(default_factory=dict)  # FinetuneOptions fields
    seeds_only_arm: bool = False
    superni: str | None = None  # superni_test_en.jsonl; None skips SuperNI
    superni_max_per_task: int | None = 10
    superni_tasks: list[str] | None = None
    user_oriented: str | None = None  # user_oriented_instructions.jsonl; None skips it
    user_oriented_limit: int | None = None
    user_oriented_max_tokens: int = 512  # as `eval user-oriented run --max-tokens`
    judge_model: str | None = None  # rates the user-oriented responses when given
    n_ctx: int = 4096
    # keep the evaluation sets above out of the generated data (--decontaminate them)
    decontaminate_eval: bool = True
    # fine-tune M on the seed tasks first and let that adapter write the instances
    round_zero: bool = False
    # fine-tune each round on the seed tasks plus the generated data
    train_with_seeds: bool = False
    # fine-tune every fine-tuned arm again at these seeds (arms NAME@SEED)
    extra_finetune_seeds: list[int] = field(default_factory=list)
    # the training mix of the rounds' arms (training/mix.py): the seed tasks this many
    # times (instead of once with train_with_seeds), and a tag line on the generated data
    seeds_upsample: int = 0
    synthetic_tag: str | None = None

    def validate(self) -> LoopOptions:
        if self.rounds < 1:
            raise UserError(f"--rounds: must be at least 1, got {self.rounds}")
        if self.superni_max_per_task is not None and self.superni_max_per_task < 1:
            raise UserError("--superni-max-per-task: must be at least 1")
        for option, path in (("--superni", self.superni),
                             ("--user-oriented", self.user_oriented)):
            if path is not None and not Path(path).is_file():
                raise UserError(f"{option}: no such file: {path}")
        if self.user_oriented_max_tokens < 1:
            raise UserError("--user-oriented-max-tokens: must be at least 1")
        if self.judge_model and not self.user_oriented:
            raise UserError("--judge needs --user-oriented (the responses it rates)")
        seeds = self.extra_finetune_seeds
        if self.seed in seeds or len(set(seeds)) != len(seeds):
            raise UserError(f"--extra-finetune-seeds: each seed once, and not --seed "
                            f"({self.seed}), got {','.join(map(str, seeds))}")
        return self


@dataclass
class LoopResult:
    out: Path
    arms: dict[str, ServedModel]
    comparison: dict | None
    steps: list[dict]


def _timed(steps: list[dict], name: str, started: float, **details) -> None:
    steps.append({"step": name, "seconds": round(time.perf_counter() - started, 1), **details})


def run_config(options: LoopOptions, round_no: int, served: ServedModel,
               answer_lora: str | None = None):
    """The :class:`RunConfig` of one round's generation. Unless ``decontaminate_eval`` is
    off, the loop's own evaluation files (``superni``, ``user_oriented``) are added to any
    ``--decontaminate`` files, so the data cannot copy what the loop evaluates on."""
    from selfinstruct.run.config import RunConfig

    overrides = dict(options.run_overrides)
    if options.decontaminate_eval:
        files = [p for p in (overrides.get("decontaminate") or "").split(",") if p]
        files += [p for p in (options.superni, options.user_oriented)
                  if p is not None and p not in files]
        overrides["decontaminate"] = ",".join(files) or None
    if answer_lora is not None:
        overrides["answer_lora"] = answer_lora
    return RunConfig(**{**overrides, "num_instructions": options.num_instructions,
                        "seed": options.seed + round_no - 1, "model": served.model,
                        "lora": served.lora, "n_ctx": options.n_ctx})


def _generate(options: LoopOptions, round_no: int, served: ServedModel,
              reporter: Reporter, answer_lora: str | None = None) -> Path:
    """Run the pipeline for one round; returns its alpaca export."""
    from selfinstruct.run.context import open_context
    from selfinstruct.run.pipeline import run_pipeline

    config = run_config(options, round_no, served, answer_lora)
    ctx = open_context(Path(options.out) / f"round-{round_no}" / "data", config,
                       reporter=reporter)
    try:
        summary = run_pipeline(ctx)
    finally:
        ctx.close()
    return Path(summary.exports["alpaca"])


def _train_file(options: LoopOptions, round_no: int, exports: list[Path]) -> Path:
    """Round 1 trains on its own export; later rounds on every round's export so far;
    with ``train_with_seeds``, the seed tasks come first."""
    if options.train_with_seeds and not options.seeds_upsample:
        exports = [_seed_tasks_file(options), *exports]
    if len(exports) == 1:
        return exports[0]
    rows = [row for path in exports for row in json.loads(path.read_text())]
    path = Path(options.out) / f"round-{round_no}" / "train.json"
    atomic_write_text(path, json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
    return path


def _seed_tasks_file(options: LoopOptions) -> Path:
    from selfinstruct.stages.export import export_seed_tasks

    path = Path(options.out) / "seeds-only" / "seed_tasks.alpaca.json"
    return export_seed_tasks(options.run_overrides.get("seeds"), "alpaca", path,
                             options.seed)[0]


def finetune_dir(arm_dir: Path, seed: int, options: LoopOptions) -> Path:
    """Where an arm's fine-tune at ``seed`` goes: ``finetune`` at the loop's own seed,
    ``finetune-seed-N`` at another."""
    return arm_dir / ("finetune" if seed == options.seed else f"finetune-seed-{seed}")


def _finetune(options: LoopOptions, data: Path, arm_dir: Path,
              seed: int | None = None, mixed: bool = False) -> ServedModel:
    """Fine-tune M on ``data`` at ``seed`` (the loop's seed when None) into its folder of
    ``arm_dir``; returns how to serve the result."""
    from selfinstruct.training import FinetuneOptions, finetune

    seed = options.seed if seed is None else seed
    out = finetune_dir(arm_dir, seed, options)
    ft = FinetuneOptions(data=str(data), out=str(out), base=options.model, seed=seed,
                         **options.finetune_overrides)
    if mixed:
        ft = replace(ft, seeds_upsample=options.seeds_upsample,
                     synthetic_tag=options.synthetic_tag, seeds=options.run_overrides.get("seeds"))
    result = finetune(ft)
    if result.adapter_gguf is not None:  # a GGUF base: serve it on the embedded backend
        return ServedModel(options.model, str(result.adapter_gguf))
    return ServedModel(f"transformers:{result.merged}")


def _open(served: ServedModel, n_ctx: int):
    from selfinstruct.backends.opening import ModelOptions, open_model

    return open_model(ModelOptions(model=served.model, n_ctx=n_ctx, lora=served.lora))


def _evaluate_superni(options: LoopOptions, arm: str, served: ServedModel,
                      reporter: Reporter) -> Path:
    from selfinstruct.evaluation.superni import load_instances
    from selfinstruct.evaluation.superni_run import run_superni, select

    superni = options.superni
    assert superni is not None  # run_loop evaluates on SuperNI only with --superni
    chosen = select(load_instances(superni), options.superni_tasks,
                    options.superni_max_per_task)
    out = Path(options.out) / "eval" / arm / "superni"
    backend, info = _open(served, options.n_ctx)
    try:
        run_superni(backend, info.as_dict(), superni, chosen, out, reporter=reporter)
    finally:
        del backend
    return out / "predictions.jsonl"


def _evaluate_user_oriented(options: LoopOptions, arm: str, served: ServedModel,
                            reporter: Reporter) -> Path:
    from selfinstruct.evaluation.user_oriented import load_items, run_user_oriented

    user_oriented = options.user_oriented
    assert user_oriented is not None  # run_loop evaluates on them only with --user-oriented
    items = load_items(user_oriented)[: options.user_oriented_limit]
    out = Path(options.out) / "eval" / arm / "user-oriented"
    backend, info = _open(served, options.n_ctx)
    result = run_user_oriented(backend, info.as_dict(), arm, user_oriented, items,
                               out, max_tokens=options.user_oriented_max_tokens,
                               reporter=reporter)
    return result.path


def run_loop(options: LoopOptions, reporter: Reporter | None = None) -> LoopResult:
    options.validate()
    reporter = reporter or SilentReporter()
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    steps: list[dict] = []
    arms: dict[str, ServedModel] = {"base": ServedModel(options.model)}
    exports: list[Path] = []
    generator = arms["base"]
    answer_lora = None
    # each fine-tuned arm: its training data and its folder, for the extra seeds
    trained: dict[str, tuple[Path, Path]] = {}
    if options.seeds_only_arm or options.round_zero:
        started = time.perf_counter()
        seeds_file = _seed_tasks_file(options)
        seeds_only = _finetune(options, seeds_file, out / "seeds-only")
        _timed(steps, "seeds-only finetune", started)
        if options.round_zero:
            if seeds_only.lora is None:
                raise UserError("--round-zero serves the seed fine-tune as a llama.cpp "
                                "adapter, so --model must be a GGUF model")
            answer_lora = seeds_only.lora
        if options.seeds_only_arm:
            arms["seeds-only"] = seeds_only
            trained["seeds-only"] = (seeds_file, out / "seeds-only")
    prefix = "seeds+" if options.train_with_seeds or options.seeds_upsample else ""
    for round_no in range(1, options.rounds + 1):
        started = time.perf_counter()
        exports.append(_generate(options, round_no, generator, reporter, answer_lora))
        _timed(steps, f"round-{round_no} generate", started, model=asdict(generator),
               answer_lora=answer_lora)
        started = time.perf_counter()
        data = _train_file(options, round_no, exports)
        generator = _finetune(options, data, out / f"round-{round_no}", mixed=True)
        arms[f"{prefix}round-{round_no}"] = generator
        trained[f"{prefix}round-{round_no}"] = (data, out / f"round-{round_no}")
        _timed(steps, f"round-{round_no} finetune", started, data=str(data))
    for seed in options.extra_finetune_seeds:
        for arm, (data, arm_dir) in trained.items():
            started = time.perf_counter()
            arms[f"{arm}{SEED_MARK}{seed}"] = _finetune(options, data, arm_dir, seed,
                                                        mixed=arm != "seeds-only")
            _timed(steps, f"{arm}{SEED_MARK}{seed} finetune", started, seed=seed)

    comparison = None
    if options.superni:
        predictions: dict[str, Path | None] = {}
        for arm, served in arms.items():
            started = time.perf_counter()
            predictions[arm] = _evaluate_superni(options, arm, served, reporter)
            _timed(steps, f"{arm} superni", started)
        predictions["copy-input"] = None
        comparison = _compare(options, predictions)
    if options.user_oriented:
        responses = []
        for arm, served in arms.items():
            started = time.perf_counter()
            responses.append(_evaluate_user_oriented(options, arm, served, reporter))
            _timed(steps, f"{arm} user-oriented", started)
        if options.judge_model:
            started = time.perf_counter()
            _judge(options, responses, reporter)
            _timed(steps, "judge", started, judge=options.judge_model)
    manifest = {"command": "selfinstruct loop", "finished_at": now(),
                "options": asdict(options),
                "arms": {name: asdict(served) for name, served in arms.items()},
                "steps": steps}
    atomic_write_text(out / "loop.json", json.dumps(manifest, indent=2) + "\n")
    return LoopResult(out, arms, comparison, steps)


def _compare(options: LoopOptions, predictions: dict[str, Path | None]) -> dict:
    from selfinstruct.evaluation.compare import compare, write_comparison
    from selfinstruct.evaluation.superni import load_instances
    from selfinstruct.evaluation.superni_run import select

    assert options.superni is not None  # run_loop compares only with --superni
    chosen = select(load_instances(options.superni), options.superni_tasks,
                    options.superni_max_per_task)
    result = compare(chosen, predictions)
    write_comparison(result, options.out)
    return result


def _judge(options: LoopOptions, response_files: list[Path], reporter: Reporter) -> None:
    from selfinstruct.evaluation.judge import judge
    from selfinstruct.evaluation.user_oriented import load_responses

    responses = [r for path in response_files for r in load_responses(path)]
    assert options.judge_model is not None  # run_loop judges only with --judge-model
    backend, info = _open(ServedModel(options.judge_model), options.n_ctx)
    judge(backend, info.as_dict(), responses, Path(options.out) / "eval" / "judge",
          reporter=reporter)
