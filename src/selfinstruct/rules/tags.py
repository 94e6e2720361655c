"""Per-row quality tags of an export (``selfinstruct export RUN --tags``): plain functions
over a run's records, so that data can be filtered downstream row by row.

Each exported row (one instance of one task) gets these tags, as a ``quality`` object
(Alpaca, prompt-completion and chat rows) or as ``quality_<name>`` columns (Parquet, ``hf``):

============================  ==============================================================
tag                           value
============================  ==============================================================
``max_rouge_l``               the instruction's highest ROUGE-L against the pool when the
                              bootstrap kept it (``instructions.jsonl``, ``most_similar[0]``)
``nearest_instruction``       the pool instruction it was nearest to
``classification_margin``     the calibrated classifier's score (``classifications.jsonl``,
                              ``margin``); the task is classification when it is above
``classification_threshold``  the threshold it was compared with
``answer_agreement``          the curated recipe: the mean ROUGE-L of the kept output (the
                              medoid) to the other sampled answers (``answers.jsonl``)
``ifd``                       the curated recipe: the output's loss after its prompt over its
                              loss alone (below 1: the instruction helps predict it)
``echo``                      the output echoes the instruction
                              (:func:`selfinstruct.rules.quality.is_echo`)
``instruction_words``         whitespace-separated words, as the report counts them
``input_words``               (:func:`selfinstruct.analysis.stats.word_count`)
``output_words``
============================  ==============================================================

The first six are null where the run has no value: seed tasks (``--include-seeds``), a
task without a record, the paper's classification rule (it writes no margin), a recipe
other than curated (no answers), a classification task (no sampled answers: no agreement). The tags
are the instance's own, so an instance exported twice carries the same tags twice.

What it leaves out: the model's log-probability of its output; no backend records it, and
a field that is always null would only mislead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from selfinstruct.analysis.stats import word_count
from selfinstruct.records import Instance, Task
from selfinstruct.rules.quality import is_echo

__all__ = ["COLUMN_PREFIX", "TAGS", "TAG_NAMES", "RunTags", "columns", "instance_tags",
           "read_run_tags"]

# (name, type) of each tag, in the order rows carry them; every one but echo and the word
# counts may be None
TAGS: tuple[tuple[str, type], ...] = (
    ("max_rouge_l", float),
    ("nearest_instruction", str),
    ("classification_margin", float),
    ("classification_threshold", float),
    ("answer_agreement", float),
    ("ifd", float),
    ("echo", bool),
    ("instruction_words", int),
    ("input_words", int),
    ("output_words", int),
)
TAG_NAMES = tuple(name for name, _ in TAGS)
COLUMN_PREFIX = "quality_"


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _nearest(record: dict) -> tuple[str, float] | None:
    """``most_similar[0]`` of an ``instructions.jsonl`` record: (text, score), or None."""
    similar = record.get("most_similar")
    if not isinstance(similar, list) or not similar:
        return None
    first = similar[0]
    if not isinstance(first, (list, tuple)) or len(first) != 2:
        return None
    text, score = first[0], _number(first[1])
    return (text, score) if isinstance(text, str) and score is not None else None


@dataclass(frozen=True)
class RunTags:
    """What a run's records say of each task, by task id: the nearest pool instruction
    with its ROUGE-L, and the classification (margin, threshold). Empty for seed tasks
    exported on their own (``export --seeds``)."""

    nearest: dict[str, tuple[str, float]] = field(default_factory=dict)
    classification: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    # (task id, input) -> (agreement, IFD), from the curated recipe's answers.jsonl
    answers: dict[tuple[str, str], tuple[float | None, float | None]] = field(
        default_factory=dict)

    @classmethod
    def from_records(cls, instructions: Iterable[dict], classifications: Iterable[dict],
                     answers: Iterable[dict] = ()) -> RunTags:
        """From ``instructions.jsonl``, ``classifications.jsonl`` and ``answers.jsonl``
        records (the last record of an id wins)."""
        nearest: dict[str, tuple[str, float]] = {}
        for record in instructions:
            found = _nearest(record)
            if found is not None and isinstance(record.get("id"), str):
                nearest[record["id"]] = found
        classification: dict[str, tuple[float, float | None]] = {}
        for record in classifications:
            margin = _number(record.get("margin"))
            if margin is not None and isinstance(record.get("id"), str):
                classification[record["id"]] = (margin, _number(record.get("threshold")))
        scores: dict[tuple[str, str], tuple[float | None, float | None]] = {}
        for record in answers:
            for entry in record.get("instances") or []:
                if isinstance(record.get("id"), str) and isinstance(entry, dict) \
                        and isinstance(entry.get("input"), str):
                    scores[(record["id"], entry["input"])] = (_number(entry.get("agreement")),
                                                              _number(entry.get("ifd")))
        return cls(nearest, classification, scores)


def read_run_tags(run_dir: str | Path) -> RunTags:
    """The run directory's tags, read without changing anything in it (an unfinished last
    line of a run being written is not read)."""
    from selfinstruct.run.rundir import RunDir

    run = RunDir(run_dir)
    return RunTags.from_records(run.instructions.read(), run.classifications.read(),
                                run.answers.read())


def instance_tags(task: Task, instance: Instance, tags: RunTags) -> dict:
    """The tags of one exported row, in :data:`TAGS` order."""
    nearest = tags.nearest.get(task.id)
    margin, threshold = tags.classification.get(task.id, (None, None))
    agreement, ifd = tags.answers.get((task.id, instance.input), (None, None))
    return {
        "max_rouge_l": nearest[1] if nearest else None,
        "nearest_instruction": nearest[0] if nearest else None,
        "classification_margin": margin,
        "classification_threshold": threshold,
        "answer_agreement": agreement,
        "ifd": ifd,
        "echo": is_echo(task.instruction, instance.output),
        "instruction_words": word_count(task.instruction),
        "input_words": word_count(instance.input),
        "output_words": word_count(instance.output),
    }


def columns(rows: Iterable[tuple[Task, Instance]], tags: RunTags) -> dict[str, list]:
    """The tags of ``rows`` as columns ``quality_<name>``, in :data:`TAGS` order."""
    values: dict[str, list] = {COLUMN_PREFIX + name: [] for name in TAG_NAMES}
    for task, instance in rows:
        for name, value in instance_tags(task, instance, tags).items():
            values[COLUMN_PREFIX + name].append(value)
    return values
