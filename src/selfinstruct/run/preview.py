"""``selfinstruct run --preview``: what a run with these settings makes, in seconds, writing
nothing.

One bootstrap request, the run's first (the same prompt and sampling seed), filtered by
the bootstrap's own code; then the classification and the instances of the first few
instructions it kept, filtered as ``postprocess`` filters them. The backend is opened
directly (:func:`selfinstruct.backends.registry.open_backend`) and the requests go through
:func:`selfinstruct.backends.requests.run_requests` without a cache: no run directory, no cache
file, no manifest.

Where it differs from a run, on purpose: classification uses the paper's Yes/No rule even
when the recipe calibrates (a calibration scores about 150 seed tasks first, which is not
a preview); ``--answer-lora`` and ``--executor ray`` are ignored (the instances come from
the model itself, in this process).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from selfinstruct.backends.base import Backend, Request
from selfinstruct.backends.requests import run_requests
from selfinstruct.novelty.index import NoveltyIndex
from selfinstruct.prompts import PromptTemplates, classification_prompt, instance_prompt
from selfinstruct.records import Instance, Instruction, Reject
from selfinstruct.rules.classification import paper_rule
from selfinstruct.rules.parsing import parse_classification_instances, parse_generation_instances
from selfinstruct.run.config import RunConfig
from selfinstruct.run.randomness import derived_rng, derived_seed
from selfinstruct.seeds import load_seeds
from selfinstruct.stages.bootstrap import STAGE, _accept, _prompt_for
from selfinstruct.stages.postprocess import cap_instances, filter_task_instances

PREVIEW_TASKS = 3


@dataclass
class PreviewTask:
    """One kept instruction, as the rest of the pipeline would treat it."""

    id: str
    instruction: str
    is_classification: bool | None = None  # None: the classification request failed
    answer: str = ""  # the model's raw Yes/No answer
    instances: list[Instance] = field(default_factory=list)  # kept by the filters
    dropped: dict[str, int] = field(default_factory=dict)  # by the parser and the filters
    task_dropped: str | None = None  # the filters' reason for dropping the whole task
    error: str | None = None


@dataclass
class Preview:
    model: str
    seed: int
    candidates: int = 0
    kept: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (text, reason)
    tasks: list[PreviewTask] = field(default_factory=list)
    error: str | None = None  # the bootstrap request failed
    seconds: float = 0.0

    @property
    def rejected_by_reason(self) -> dict[str, int]:
        return dict(Counter(reason for _, reason in self.rejected).most_common())


@dataclass
class _StageView:
    """What the bootstrap's prompt builder and filter read from a RunContext."""

    config: RunConfig
    templates: PromptTemplates


class _Collect:
    """The bootstrap's record writer, in memory."""

    def __init__(self):
        self.kept_records: list[Instruction] = []
        self.rejected_records: list[Reject] = []
        self.failures: list[str] = []

    def kept(self, record: Instruction) -> None:
        self.kept_records.append(record)

    def rejected(self, record: Reject) -> None:
        self.rejected_records.append(record)

    def failed(self, request_id: str, reason: str) -> None:
        self.failures.append(reason)


def open_preview_backend(config: RunConfig) -> tuple[Backend, str]:
    from selfinstruct.backends.registry import open_backend

    c = config
    backend, info = open_backend(c.model, base_url=c.base_url, api_key_env=c.api_key_env,
                                 n_ctx=c.n_ctx, prefix_cache=c.prefix_cache,
                                 request_timeout=c.request_timeout, lora=c.lora)
    return backend, info.name


def run_preview(config: RunConfig, backend: Backend, *, tasks: int = PREVIEW_TASKS,
                model_name: str | None = None) -> Preview:
    """The run's first bootstrap request, then classification and instances of the first
    ``tasks`` instructions it kept."""
    started = time.perf_counter()
    c = config.validate()
    seeds = load_seeds(c.seeds)
    templates = PromptTemplates.load(c.prompts)
    view = _StageView(config=c, templates=templates)
    pool = [t.instruction for t in seeds if t.is_classification or not c.classification_only]
    index = NoveltyIndex(use_stemmer=False)
    for text in pool:
        index.add(text)
    preview = Preview(model=model_name or c.model, seed=c.seed)

    request = Request(_prompt_for(view, 0, pool, []),
                      c.bootstrap_sampling(derived_seed(c.seed, STAGE, 0)), chat=c.chat)
    [(_, completion)] = list(run_requests(backend, [request]))
    writer = _Collect()
    _accept(view, 0, request, completion, index, [], writer)
    if writer.failures:
        preview.error = writer.failures[0]
    preview.kept = len(writer.kept_records)
    preview.candidates = preview.kept + len(writer.rejected_records)
    preview.rejected = [(r.text, r.reason) for r in writer.rejected_records]
    preview.tasks = [PreviewTask(r.id, r.instruction) for r in writer.kept_records[:tasks]]

    _classify(preview.tasks, backend, c, templates)
    _instances(preview.tasks, backend, c, templates)
    preview.seconds = time.perf_counter() - started
    return preview


def _classify(tasks: list[PreviewTask], backend: Backend, c: RunConfig,
              templates: PromptTemplates) -> None:
    requests = [Request(classification_prompt(templates, t.instruction),
                        c.classification_sampling(), prefix=templates.classification,
                        chat=c.chat) for t in tasks]
    for offset, completion in run_requests(backend, requests,
                                           max_concurrency=c.max_concurrency):
        task = tasks[offset]
        if not completion.ok:
            task.error = completion.error
            continue
        task.answer = completion.text.strip()
        task.is_classification = paper_rule(completion.text)


def _instances(tasks: list[PreviewTask], backend: Backend, c: RunConfig,
               templates: PromptTemplates) -> None:
    todo = [t for t in tasks if t.is_classification is not None]
    requests = []
    for task in todo:
        clf = bool(task.is_classification)
        template = templates.instance_output_first if clf else templates.instance_input_first
        requests.append(Request(instance_prompt(templates, task.instruction, clf),
                                c.instance_sampling(clf), prefix=template, chat=c.chat))
    for offset, completion in run_requests(backend, requests,
                                           max_concurrency=c.max_concurrency):
        task = todo[offset]
        if not completion.ok:
            task.error = completion.error
            continue
        parse = (parse_classification_instances if task.is_classification
                 else parse_generation_instances)
        parsed = parse(completion.text, completion.finish_reason == "length")
        kept, dropped, task_reason = filter_task_instances(parsed.instances)
        kept, over = cap_instances(kept, c.max_instances_per_task,
                                   derived_rng(c.seed, "instance-cap", task.id))
        reasons = Counter(reason for _, reason in parsed.dropped)
        reasons.update(reason for _, reason in dropped)
        reasons.update("over_limit" for _ in over)
        if task_reason is None and not kept:
            task_reason = "no_valid_instances"
        task.instances = [] if task_reason else kept
        task.task_dropped = task_reason
        task.dropped = dict(reasons)


# --- rendering ---------------------------------------------------------------------------

def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def preview_summary(preview: Preview) -> str:
    rejected = ", ".join(f"{reason} {n}" for reason, n in preview.rejected_by_reason.items())
    return (f"1 bootstrap request: {preview.candidates} candidates, {preview.kept} kept"
            + (f", rejected: {rejected}" if rejected else "")
            + f"; {preview.seconds:.1f} s; nothing written")


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
        lines = [f"• {_short(i.input, 80) or '(no input)'} → {_short(i.output, 80)}"
                 for i in task.instances]
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
    for text, reason in preview.rejected[:5]:
        console.print(f"  rejected ({reason}): {_short(text, 100)}")
    if not preview.tasks and not preview.error:
        console.print("[yellow]the request kept no instruction; a run sends more requests "
                      "(see the rejected candidates above)[/yellow]")
