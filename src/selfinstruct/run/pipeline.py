"""One data-generation run, stage after stage, over one run directory, and its summary.
(Generating, fine-tuning and evaluating in rounds is :mod:`selfinstruct.loop`.)

:func:`run_pipeline` runs the :data:`STAGES` (bootstrap → classify → instances →
answers, under the curated recipe → postprocess), then the exports.
Every stage resumes from what the run directory already holds, so the same call on an
interrupted run finishes it. :func:`summarize` reads the run directory (not in-memory
counters) so that it describes the whole run, however many sessions it took.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from selfinstruct.backends.budget import BudgetExhausted
from selfinstruct.errors import RunIncomplete
from selfinstruct.files import now
from selfinstruct.records import Task
from selfinstruct.rules.quality import QualityMeasures, measure
from selfinstruct.run.context import RunContext
from selfinstruct.stages.answers import answer
from selfinstruct.stages.bootstrap import BootstrapResult, bootstrap
from selfinstruct.stages.classify import classify
from selfinstruct.stages.export import DEFAULT_NAMES, export
from selfinstruct.stages.instances import generate_instances
from selfinstruct.stages.postprocess import postprocess

DEFAULT_EXPORTS = ("alpaca", "prompt-completion", "chat")


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[RunContext], object]


# The stages that make a run's records, in order; ``run`` runs them and then exports, and
# ``run --preview`` (:mod:`selfinstruct.run.preview`) runs the same list on an in-memory run.
STAGES: tuple[Stage, ...] = (
    Stage("generate", bootstrap),
    Stage("classify", classify),
    Stage("instances", generate_instances),
    Stage("answers", answer),  # the curated recipe's; nothing under the others
    Stage("postprocess", postprocess),
)


@dataclass
class Summary:
    generated: int
    kept: int
    rejected_by_reason: dict[str, int]
    failed_requests: int
    classification_tasks: int
    tasks: int
    instances: int
    dropped_instances_by_reason: dict[str, int]
    prompt_tokens: int
    completion_tokens: int
    cached_requests: int
    wall_seconds: float
    generation_seconds: float
    exports: dict[str, str] = field(default_factory=dict)
    reached_target: bool = True
    stop_reason: str | None = None  # why it stopped short of --num-instructions (request_cap)
    # requests still failed after their retries: status "incomplete", no exports, exit 4
    incomplete: bool = False
    stage_lines: list[str] = field(default_factory=list)  # asked, answered, failed per stage
    quality: QualityMeasures | None = None  # selfinstruct.rules.quality, over the same records

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.generation_seconds if self.generation_seconds else 0.0


def export_all(ctx: RunContext, formats=DEFAULT_EXPORTS,
               advance: Callable[[], None] | None = None) -> dict[str, str]:
    tasks = [Task.from_json(r) for r in ctx.run.read_tasks()]
    written = {}
    for fmt in formats:
        path = export(tasks, fmt, ctx.run.exports / DEFAULT_NAMES[fmt], ctx.templates,
                      ctx.config.seed, ctx.config.recipe)
        written[fmt] = str(path)
        if advance is not None:
            advance()
    return written


def run_pipeline(ctx: RunContext, formats=DEFAULT_EXPORTS) -> Summary:
    """Run every stage; on an error (a rejected key, a full disk, Ctrl-C) the manifest is
    never left saying ``running``: it keeps the status the run had before this session
    (a finished run stays finished: its tasks and exports are untouched), or says
    ``interrupted`` for a run that had none."""
    previous = ctx.manifest.get("status")
    try:
        return _run_pipeline(ctx, formats)
    except BudgetExhausted:
        raise
    except RunIncomplete as exc:  # the server stayed unreachable (--give-up-after)
        exc.details = exc.details or stage_lines(ctx)
        _mark_incomplete(ctx, str(exc))
        raise
    except BaseException as exc:
        if ctx.manifest.get("status") == "running":
            ctx.manifest["status"] = previous if previous not in (None, "running") \
                else "interrupted"
            sessions = ctx.manifest.get("sessions")
            if sessions:
                sessions[-1]["error"] = type(exc).__name__
            with contextlib.suppress(Exception):  # the error that stopped it matters more
                ctx.save_manifest()
        raise


def _run_pipeline(ctx: RunContext, formats=DEFAULT_EXPORTS) -> Summary:
    started = time.perf_counter()
    ctx.backend  # noqa: B018 - load the model (and fail on a bad one) before any progress is shown
    ctx.manifest["status"] = "running"
    ctx.save_manifest()
    results: dict[str, object] = {}
    try:
        for stage in STAGES:
            results[stage.name] = stage.run(ctx)
            ctx.save_manifest()
    except BudgetExhausted:
        ctx.manifest["status"] = "stopped_at_budget"
        ctx.manifest["spent"] = {"tokens": ctx.budget.tokens, "cost_usd": ctx.budget.cost}
        ctx.save_manifest()
        raise
    result = results["generate"]
    assert isinstance(result, BootstrapResult)
    failed = unresolved_failures(ctx.run)
    if failed:  # never exported as if complete; the next run sends them again
        summary = summarize(ctx, time.perf_counter() - started)
        summary.incomplete = True
        summary.stage_lines = stage_lines(ctx)
        summary.stop_reason = (f"{len(failed)} requests still failed after their retries "
                               "(failures.jsonl); the exports were not written; re-run the "
                               "same command to send them again")
        _mark_incomplete(ctx, summary.stop_reason)
        return summary
    with ctx.reporter.stage("export", len(formats)) as bar:
        exports = export_all(ctx, formats, bar.advance)
    wall = time.perf_counter() - started
    ctx.manifest["status"] = "finished" if result.reached_target else "stopped_at_request_budget"
    ctx.manifest["finished_at"] = now()
    ctx.manifest["wall_seconds"] = round(wall + ctx.manifest.get("wall_seconds", 0.0), 3)
    ctx.manifest["exports"] = exports
    ctx.manifest["spent"] = {"tokens": ctx.budget.tokens, "cost_usd": ctx.budget.cost}
    ctx.save_manifest()
    summary = summarize(ctx, wall)
    summary.exports = exports
    summary.reached_target = result.reached_target
    if not result.reached_target:
        from selfinstruct.run.request_cap import cap_reason

        summary.stop_reason = cap_reason(ctx.config, summary.kept, result.requests,
                                         summary.rejected_by_reason, summary.failed_requests)
        ctx.manifest["stop_reason"] = summary.stop_reason
        ctx.save_manifest()
    elif ctx.manifest.pop("stop_reason", None) is not None:  # an earlier session's
        ctx.save_manifest()
    return summary


def stage_lines(ctx: RunContext) -> list[str]:
    """One line per stage of this session: requests asked, answered, failed, the last
    error."""
    lines = []
    for name, usage in ctx.stats.items():
        line = (f"{name}: asked {usage.requests}, answered {usage.requests - usage.failed}, "
                f"failed {usage.failed}")
        if usage.last_error:
            line += f", last error: {usage.last_error}"
        lines.append(line)
    return lines


def _mark_incomplete(ctx: RunContext, reason: str) -> None:
    ctx.manifest["status"] = "incomplete"
    ctx.manifest["stop_reason"] = reason
    sessions = ctx.manifest.get("sessions")
    if sessions:
        sessions[-1]["error"] = "incomplete"
    ctx.save_manifest()


def unresolved_failures(run) -> list[dict]:
    """Failures not since answered: a resumed run sends failed requests again."""
    done = {
        "bootstrap": {r["id"].split(".")[0] for r in run.instructions.recover() + run.rejects.recover()},
        "classify": {r["id"] for r in run.classifications.recover()},
        "instances": {r["id"] for r in run.instances.recover()},
        "answers": {r["id"] for r in run.answers.recover()},
    }
    open_ = []
    for failure in run.failures.recover():
        key = failure["id"].removeprefix("request-") if failure["stage"] == "bootstrap" \
            else failure["id"]
        if key not in done.get(failure["stage"], set()):
            open_.append(failure)
    return open_


def summarize(ctx: RunContext, wall_seconds: float = 0.0) -> Summary:
    run = ctx.run
    kept = run.instructions.recover()
    rejects = run.rejects.recover()
    labels = run.classifications.recover()
    tasks = run.read_tasks() if Path(run.tasks_path).exists() else []
    dropped = []
    if run.instance_rejects_path.exists():
        from selfinstruct.run.rundir import JsonlLog

        dropped = JsonlLog(run.instance_rejects_path).recover()
    usage = list(ctx.stats.values())
    return Summary(
        generated=len(kept) + len(rejects),
        kept=len(kept),
        rejected_by_reason=dict(Counter(r["reason"] for r in rejects).most_common()),
        failed_requests=len(unresolved_failures(run)),
        classification_tasks=sum(1 for r in labels if r["is_classification"]),
        tasks=len(tasks),
        instances=sum(len(t["instances"]) for t in tasks),
        dropped_instances_by_reason=dict(Counter(r["reason"] for r in dropped).most_common()),
        prompt_tokens=sum(u.prompt_tokens for u in usage),
        completion_tokens=sum(u.completion_tokens for u in usage),
        cached_requests=sum(u.cached for u in usage),
        wall_seconds=wall_seconds,
        generation_seconds=sum(u.generation_seconds for u in usage),
        quality=measure(labels, tasks),
    )
