"""The filter funnel of a run: what each step let through, what it dropped, and why.

Counted from the run directory's records, never from in-memory counters, so the funnel
describes the whole run however many sessions it took::

    candidates generated  = kept + rejected               (instructions.jsonl + rejects.jsonl)
      rejected, by reason                                  (rejects.jsonl)
    instructions kept
      classification / other                               (classifications.jsonl)
    instructions with instances                            (instances.jsonl)
      instances parsed; dropped by the parser, by reason   (instances.jsonl "dropped")
      instances dropped by the filters, by reason          (instance_rejects.jsonl)
      tasks dropped whole, by reason                       (instance_rejects.jsonl, "task")
    final tasks and instances                              (tasks.jsonl)

What it leaves out: reading files (:func:`selfinstruct.analysis.report.load_run` does)
and drawing (:mod:`selfinstruct.analysis.figures`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Funnel:
    generated: int
    kept: int
    rejected_by_reason: dict[str, int]
    classification: int
    non_classification: int
    unclassified: int
    with_instances: int
    instances_parsed: int
    parser_drops_by_reason: dict[str, int]
    instance_drops_by_reason: dict[str, int]
    task_drops_by_reason: dict[str, int]
    final_tasks: int
    final_instances: int
    final_classification: int
    failed_requests_by_stage: dict[str, int] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())

    def steps(self) -> list[tuple[str, int]]:
        """The funnel's main line, for the bar chart: (label, count), widest first."""
        return [
            ("candidates generated", self.generated),
            ("instructions kept", self.kept),
            ("with instances", self.with_instances),
            ("final tasks", self.final_tasks),
        ]


def _by_reason(records) -> dict[str, int]:
    return dict(Counter(r["reason"] for r in records).most_common())


def compute_funnel(instructions: list[dict], rejects: list[dict], classifications: list[dict],
                   instances: list[dict], instance_rejects: list[dict], tasks: list[dict],
                   failures: Sequence[dict] = ()) -> Funnel:
    """Count the funnel from the run's records (see the module docstring)."""
    kept_ids = {r["id"] for r in instructions}
    labels = {r["id"]: r["is_classification"] for r in classifications if r["id"] in kept_ids}
    parser_drops = [d for r in instances for d in r.get("dropped", [])]
    return Funnel(
        generated=len(instructions) + len(rejects),
        kept=len(instructions),
        rejected_by_reason=_by_reason(rejects),
        classification=sum(1 for v in labels.values() if v),
        non_classification=sum(1 for v in labels.values() if not v),
        unclassified=len(kept_ids) - len(labels),
        with_instances=len(instances),
        instances_parsed=sum(len(r["instances"]) for r in instances),
        parser_drops_by_reason=_by_reason(parser_drops),
        instance_drops_by_reason=_by_reason(r for r in instance_rejects if not r.get("task")),
        task_drops_by_reason=_by_reason(r for r in instance_rejects if r.get("task")),
        final_tasks=len(tasks),
        final_instances=sum(len(t["instances"]) for t in tasks),
        final_classification=sum(1 for t in tasks if t.get("is_classification")),
        failed_requests_by_stage=dict(Counter(f.get("stage", "?") for f in failures)),
    )
