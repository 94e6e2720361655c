"""``selfinstruct run --preview``: what a run with these settings makes, in seconds, writing
nothing.

The preview runs the run's own stages (:data:`selfinstruct.run.pipeline.STAGES`, every one
of them, in order) on an in-memory run (:class:`~selfinstruct.run.rundir.MemoryRunDir`),
with ``--num-instructions`` set to the number of tasks to show and the bootstrap held to
its first batch of requests. So the preview's instructions, classes and instances are the
first ones the run makes with the same seed and settings: the same prompts, the same
classification rule, the same answerer (``--answer-lora``), the same filters (demonstration
leaks, decontamination). Where it differs, it says so:

- the calibrated classification rule needs the scores of the seed tasks. The preview uses
  the calibration the package ships for the model (:mod:`selfinstruct.calibrations`), or
  the scores the shared cache holds from an earlier run of it; where there are neither, it
  does not score 1,440 prompts first: it uses the paper rule and says why.
- the responses are cached in memory only; nothing is written (no run directory, no
  cache file, no manifest, nothing added to the shared cache).
- a batched embedded model (``--max-concurrency`` above 1) decodes the preview's shorter
  request lists in other groups than the run does, which can change a completion's text.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

from selfinstruct.backends.base import Backend, Completion, Request, request_key
from selfinstruct.backends.cache import ResponseCache
from selfinstruct.errors import UserError
from selfinstruct.progress import Reporter, SilentReporter
from selfinstruct.prompts import PromptTemplates
from selfinstruct.records import Instance
from selfinstruct.run.config import RunConfig
from selfinstruct.run.context import RunContext
from selfinstruct.run.rundir import MemoryRunDir
from selfinstruct.seeds import load_seeds

PREVIEW_TASKS = 3


@dataclass
class PreviewTask:
    """One kept instruction, as the rest of the pipeline treated it."""

    id: str
    instruction: str
    is_classification: bool | None = None  # None: the classification request failed
    answer: str = ""  # the paper rule's raw answer, or the calibrated score (vs its threshold)
    instances: list[Instance] = field(default_factory=list)  # kept by the filters
    dropped: dict[str, int] = field(default_factory=dict)  # by the parser and the filters
    task_dropped: str | None = None  # the filters' reason for dropping the whole task
    error: str | None = None
    # the curated recipe's scores of each kept instance ("agreement 0.62, IFD 0.41"), in
    # the order of ``instances``; empty under the other recipes
    scores: list[str] = field(default_factory=list)


@dataclass
class Preview:
    model: str
    seed: int
    candidates: int = 0
    kept: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (text, reason)
    tasks: list[PreviewTask] = field(default_factory=list)
    error: str | None = None  # the bootstrap requests failed
    seconds: float = 0.0
    requests: int = 1  # bootstrap requests sent
    classification: dict = field(default_factory=dict)  # the manifest's calibration entry

    @property
    def rejected_by_reason(self) -> dict[str, int]:
        return dict(Counter(reason for _, reason in self.rejected).most_common())


class PreviewContext(RunContext):
    """A :class:`RunContext` over an in-memory run: responses cached in memory, the
    manifest kept in memory, and the shared cache read, never written."""

    @property
    def may_score_seeds(self) -> bool:
        return False

    def save_manifest(self) -> None:
        pass  # the manifest stays in memory (self.manifest)

    def ask_shared(self, stage: str, requests: Sequence[Request],
                   backend: Backend | None = None) -> Iterator[tuple[int, Completion]]:
        """What the shared cache holds for each request; a miss is a failed completion."""
        from selfinstruct.home import home_dir
        from selfinstruct.run.shared_cache import SHARED_CACHE_NAME, pins_weights

        path = home_dir() / SHARED_CACHE_NAME
        identity = (self.backend if backend is None else backend).identity
        shared = None
        if pins_weights(identity) and path.is_file():
            try:
                shared = ResponseCache(path, readonly=True)
            except UserError:  # unreadable: as if it held nothing
                shared = None
        try:
            for i, request in enumerate(requests):
                hit = shared.get(request_key(identity, request)) if shared else None
                yield i, hit or Completion.failed("not in the shared cache")
        finally:
            if shared is not None:
                shared.close()


def preview_config(config: RunConfig, tasks: int) -> RunConfig:
    """The run's configuration for a preview of ``tasks`` instructions: the bootstrap stops
    at that many, within its first batch of requests."""
    return replace(config, num_instructions=tasks,
                   max_requests=min(config.request_budget, config.request_batch_size))


def open_preview(config: RunConfig, *, tasks: int = PREVIEW_TASKS,
                 reporter: Reporter | None = None,
                 backend: Backend | None = None) -> PreviewContext:
    c = preview_config(config.validate(), tasks)
    ctx = PreviewContext(run=MemoryRunDir(), config=c, seeds=load_seeds(c.seeds),
                         templates=PromptTemplates.load(c.prompts),
                         reporter=reporter or SilentReporter(), manifest={})
    ctx._cache = ResponseCache(":memory:")
    if backend is not None:
        ctx._backend = backend
    return ctx


def run_preview(config: RunConfig, backend: Backend | None = None, *,
                tasks: int = PREVIEW_TASKS, model_name: str | None = None,
                reporter: Reporter | None = None) -> Preview:
    """The run's stages on an in-memory run, up to its first ``tasks`` instructions."""
    from selfinstruct.run.pipeline import STAGES

    started = time.perf_counter()
    ctx = open_preview(config, tasks=tasks, reporter=reporter, backend=backend)
    try:
        ctx.connect()  # the model loads (or the server answers) before the stages
        for stage in STAGES:
            stage.run(ctx)
        name = model_name or (ctx.manifest.get("model") or {}).get("name") or config.model
        preview = read_preview(ctx, name)
    finally:
        ctx.close()
    preview.seconds = time.perf_counter() - started
    return preview


def read_preview(ctx: PreviewContext, model_name: str) -> Preview:
    """The preview's records, from its in-memory run."""
    run = ctx.run
    assert isinstance(run, MemoryRunDir)
    kept = run.instructions.recover()
    rejects = run.rejects.recover()
    failures = {f["id"]: f["reason"] for f in run.failures.recover()}
    labels = {r["id"]: r for r in run.classifications.recover()}
    made = {r["id"]: r for r in run.instances.recover()}
    final = {t["id"]: t for t in run.read_tasks()}
    answered = {(r["id"], a["input"]): a for r in run.answers.recover()
                for a in r.get("instances", [])}
    dropped: dict[str, Counter] = {}
    task_dropped: dict[str, str] = {}
    for r in run.read_file(run.instance_rejects_path):
        if r.get("task"):
            task_dropped[r["id"]] = r["reason"]
        else:
            dropped.setdefault(r["id"], Counter())[r["reason"]] += 1
    preview = Preview(model=model_name, seed=ctx.config.seed, kept=len(kept),
                      candidates=len(kept) + len(rejects),
                      rejected=[(r["text"], r["reason"]) for r in rejects],
                      requests=len({r["id"].split(".")[0] for r in kept + rejects}
                                   | {i for i in failures if i.startswith("request-")}),
                      classification=dict(ctx.manifest.get("classification_calibration") or {}))
    bootstrap_failures = [reason for i, reason in failures.items() if i.startswith("request-")]
    if bootstrap_failures and not kept:
        preview.error = bootstrap_failures[0]
    for record in kept:
        task = PreviewTask(record["id"], record["instruction"], error=failures.get(record["id"]))
        label = labels.get(record["id"])
        if label is not None:
            task.is_classification = label["is_classification"]
            task.answer = (f"score {label['margin']:+.2f}" if "margin" in label
                           else label["raw_answer"].strip())
        reasons = Counter(d["reason"] for d in (made.get(record["id"]) or {}).get("dropped", []))
        reasons.update(dropped.get(record["id"], Counter()))
        task.dropped = dict(reasons)
        task.task_dropped = task_dropped.get(record["id"])
        if record["id"] in final:
            task.instances = [Instance(i["input"], i["output"])
                              for i in final[record["id"]]["instances"]]
            if answered:
                task.scores = [answer_scores(answered.get((record["id"], i.input), {}))
                               for i in task.instances]
        preview.tasks.append(task)
    return preview


def answer_scores(entry: dict) -> str:
    """``agreement 0.62, IFD 0.41`` of an answers-record entry (what it has of them)."""
    parts = []
    if entry.get("agreement") is not None:
        parts.append(f"agreement {entry['agreement']:.2f}")
    if entry.get("ifd") is not None:
        parts.append(f"IFD {entry['ifd']:.2f}")
    return ", ".join(parts)


# --- rendering ---------------------------------------------------------------------------

def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def preview_summary(preview: Preview) -> str:
    rejected = ", ".join(f"{reason} {n}" for reason, n in preview.rejected_by_reason.items())
    requests = f"{preview.requests} bootstrap request" + ("s" if preview.requests != 1 else "")
    return (f"{requests}: {preview.candidates} candidates, {preview.kept} kept"
            + (f", rejected: {rejected}" if rejected else "")
            + f"; {preview.seconds:.1f} s; nothing written")


def classification_line(preview: Preview) -> str | None:
    """Which classification rule the preview used, and with which calibration."""
    entry = preview.classification
    if not entry:
        return None
    if entry.get("rule") == "paper":
        note = str(entry.get("note", "")).removesuffix("; the paper rule was used")
        return f"classification: the paper rule, not the calibrated one: {note}"
    source = {"shipped": f"shipped with the package ({entry.get('file', '')})",
              "scored": "the seed-task scores in the shared cache"}.get(
        entry.get("source", ""), entry.get("source", ""))
    held_out = (entry.get("held_out") or {}).get("balanced_accuracy")
    accuracy = f", held-out balanced accuracy {held_out:.1%}" if held_out is not None else ""
    return (f"classification: calibrated (threshold {entry.get('threshold', 0):+.3f}), "
            f"the calibration {source}{accuracy}")


def preview_table(preview: Preview):
    """The kept instructions with their class and instances, as a rich Table."""
    from rich.table import Table

    title = f"preview: {preview.model}, seed {preview.seed}"
    table = Table(title=title, show_header=True, header_style="bold", show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("instruction", ratio=2)
    table.add_column("classification")
    table.add_column("instances (input → output)", ratio=3)
    for k, task in enumerate(preview.tasks, start=1):
        if task.is_classification is None:
            label = "failed"
        else:
            label = f"{'yes' if task.is_classification else 'no'} ({task.answer or '-'})"
        scores = task.scores or [""] * len(task.instances)
        lines = [f"• {_short(i.input, 80) or '(no input)'} → {_short(i.output, 80)}"
                 + (f" ({score})" if score else "")
                 for i, score in zip(task.instances, scores)]
        if task.dropped:
            lines.append("dropped: " + ", ".join(f"{r} {n}" for r, n in task.dropped.items()))
        if task.task_dropped:
            lines.append(f"task dropped: {task.task_dropped}")
        if task.error:
            lines.append(f"failed: {_short(task.error, 100)}")
        table.add_row(str(k), _short(task.instruction), label, "\n".join(lines) or "(none)")
    return table


def print_preview(preview: Preview, console=None) -> None:
    from rich.console import Console

    console = console or Console()
    if preview.error:
        console.print(f"[red]the bootstrap request failed: {preview.error}[/red]")
    console.print(preview_table(preview))
    console.print(preview_summary(preview), soft_wrap=True)
    line = classification_line(preview)
    if line:
        console.print(line, soft_wrap=True, markup=False)
    for text, reason in preview.rejected[:5]:
        console.print(f"  rejected ({reason}): {_short(text, 100)}")
    if not preview.tasks and not preview.error:
        console.print("[yellow]the first batch of requests kept no instruction; a run sends "
                      "more requests (see the rejected candidates above)[/yellow]")
