"""The ratings file: one rating of one response, by one rater, per line.

``ratings.jsonl`` is shared by every kind of rater: the LLM judge
(:mod:`selfinstruct.evaluation.judge`) writes ``rater = "judge:<model>"``; a human-rating
app writes the same records with ``rater = "human:<name>"``. Format (version 1)::

    {
      "format_version": 1,
      "model": "text-davinci-003",        # whose response: the predictions file's model name
      "instance_id": "user_oriented_task_0",
      "rater": "judge:smollm2",           # "judge:<model>" or "human:<name>"
      "rating": "A",                      # "A" | "B" | "C" | "D", or null when unparseable
      "reasoning": "The rewrite is ...",  # the rater's justification ("" if none)
      "parse_error": null,                # why rating is null, else null
      "judge_output": " A\\nReasoning: ...",  # a judge's raw reply (absent for humans)
      "rated_at": "2025-01-01T00:00:00+00:00"
    }

The scale is the paper's (Wang et al. 2023, Sec. 4.4): A valid and satisfying;
B acceptable with minor errors or imperfections; C relevant, responds to the instruction,
but with significant errors in the content; D irrelevant or completely invalid.

The file is append-only; a (rater, model, instance_id) triple is rated once. What this
module leaves out: who produces ratings (see ``judge.py``) and drawing them (``plot.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from selfinstruct.files import now
from selfinstruct.run.rundir import JsonlLog

RATINGS_FORMAT_VERSION = 1
LEVELS = ("A", "B", "C", "D")
LEVEL_MEANINGS = {
    "A": "valid and satisfying",
    "B": "acceptable, minor errors or imperfections",
    "C": "relevant, but significant errors in the content",
    "D": "irrelevant or completely invalid",
}
UNPARSED = "unparsed"


def rating_record(model: str, instance_id: str, rater: str, rating: str | None,
                  reasoning: str, parse_error: str | None = None,
                  judge_output: str | None = None) -> dict:
    record = {
        "format_version": RATINGS_FORMAT_VERSION, "model": model, "instance_id": instance_id,
        "rater": rater, "rating": rating, "reasoning": reasoning, "parse_error": parse_error,
    }
    if judge_output is not None:
        record["judge_output"] = judge_output
    record["rated_at"] = now()
    return record


def ratings_log(folder: str | Path) -> JsonlLog:
    return JsonlLog(Path(folder) / "ratings.jsonl")


def rated_keys(records: Iterable[dict]) -> set[tuple[str | None, str | None, str | None]]:
    return {(r.get("rater"), r.get("model"), r.get("instance_id")) for r in records}


@dataclass
class Distribution:
    """How one rater rated one model's responses."""

    model: str
    counts: dict[str, int] = field(default_factory=lambda: {k: 0 for k in (*LEVELS, UNPARSED)})

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def share(self, level: str) -> float:
        return self.counts[level] / self.total if self.total else 0.0


def distributions(records: Iterable[dict], rater: str,
                  models: Iterable[str] | None = None) -> list[Distribution]:
    """Per-model counts of A/B/C/D/unparsed for ``rater``, in ``models`` order if given."""
    models = list(models) if models is not None else None
    table: dict[str, Distribution] = {}
    for name in models or ():
        table[name] = Distribution(name)
    for rec in records:
        if rec.get("rater") != rater:
            continue
        if models is not None and rec.get("model") not in table:
            continue
        dist = table.setdefault(rec["model"], Distribution(rec["model"]))
        rating = rec.get("rating")
        dist.counts[rating if rating in LEVELS else UNPARSED] += 1
    return list(table.values())
