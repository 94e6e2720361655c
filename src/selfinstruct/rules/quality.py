"""Quality measures of a run's data: plain functions over its records.

The paper's filters say what was dropped; these say what is wrong with what was kept,
where a small model's data usually goes wrong:

- :func:`classification_rate`: the share of kept instructions labelled classification
  (``classifications.jsonl``). The paper's GPT-3 data has about 10%; a rule that says Yes
  too often turns writing tasks into label tasks.
- :func:`echo_rate`: the share of kept instances (``tasks.jsonl``) whose output *echoes the
  instruction*: 1 or 2 word tokens, every one of which occurs in the instruction ("Is the
  review positive or negative?" -> "positive"). Word tokens are
  ``re.findall(r"[a-z0-9]+", s.lower())``; an output with no word token is not an echo.
- :func:`label_diversity`: for each classification task, distinct outputs / instances (1.0:
  every instance has its own label; 1/n: one label for all); :func:`mean_label_diversity`
  averages it over tasks. Outputs are compared exactly, after stripping.
- :func:`margin_histogram`: when classification records carry a numeric ``margin`` (the
  calibrated rule's log-probability margin of " Yes" over " No"), their histogram, with
  the rule's ``threshold`` when the records carry one.

:func:`measure` computes all of them; ``None`` wherever a measure has nothing to measure.
What it leaves out: reading files (the callers do) and drawing (``analysis.figures``).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["MarginHistogram", "QualityMeasures", "classification_rate", "echo_rate",
           "is_echo", "label_diversity", "margin_histogram", "mean_label_diversity",
           "measure"]

_WORD = re.compile(r"[a-z0-9]+")
ECHO_MAX_TOKENS = 2
MARGIN_BINS = 20


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def classification_rate(classifications: Iterable[dict]) -> float | None:
    """Share of labelled instructions with ``is_classification`` true (None: none labelled)."""
    labels = [bool(r.get("is_classification")) for r in classifications]
    return sum(labels) / len(labels) if labels else None


def is_echo(instruction: str, output: str) -> bool:
    """1 or 2 word tokens, all of which occur in the instruction."""
    words = _words(output)
    return 0 < len(words) <= ECHO_MAX_TOKENS and set(words) <= set(_words(instruction))


def echo_rate(tasks: Iterable[dict]) -> float | None:
    """Share of the tasks' instances whose output echoes the instruction (None: none)."""
    total = echoes = 0
    for task in tasks:
        for instance in task.get("instances", []):
            total += 1
            echoes += is_echo(task["instruction"], instance["output"])
    return echoes / total if total else None


def label_diversity(tasks: Iterable[dict]) -> dict[str, float]:
    """``{task id: distinct outputs / instances}`` for each classification task with
    instances, in task order."""
    found = {}
    for task in tasks:
        outputs = [i["output"].strip() for i in task.get("instances", [])]
        if task.get("is_classification") and outputs:
            found[task["id"]] = len(set(outputs)) / len(outputs)
    return found


def mean_label_diversity(tasks: Iterable[dict]) -> float | None:
    values = list(label_diversity(tasks).values())
    return sum(values) / len(values) if values else None


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class MarginHistogram:
    """Classification margins: ``counts[k]`` margins in ``[edges[k], edges[k+1])`` (the last
    bin closed), the threshold (None when the records carry none) and how many are above
    it (the calibrated rule says Yes at ``margin > threshold``)."""

    margins: tuple[float, ...]
    edges: tuple[float, ...]
    counts: tuple[int, ...]
    threshold: float | None
    above: int | None

    @property
    def n(self) -> int:
        return len(self.margins)


def margin_histogram(classifications: Iterable[dict],
                     bins: int = MARGIN_BINS) -> MarginHistogram | None:
    """The histogram of the records' numeric ``margin`` fields; None when none has one.
    The threshold is the records' most common numeric ``threshold``."""
    margins: list[float] = []
    thresholds: Counter[float] = Counter()
    for record in classifications:
        margin = _number(record.get("margin"))
        if margin is None:
            continue
        margins.append(margin)
        threshold = _number(record.get("threshold"))
        if threshold is not None:
            thresholds[threshold] += 1
    if not margins:
        return None
    threshold = thresholds.most_common(1)[0][0] if thresholds else None
    low, high = min(margins), max(margins)
    if threshold is not None:  # the threshold is always inside the drawn range
        low, high = min(low, threshold), max(high, threshold)
    if high == low:
        low, high = low - 0.5, high + 0.5
    width = (high - low) / bins
    edges = tuple(low + k * width for k in range(bins)) + (high,)
    counts = [0] * bins
    for margin in margins:
        counts[min(bins - 1, int((margin - low) / width))] += 1
    above = None if threshold is None else sum(m > threshold for m in margins)
    return MarginHistogram(tuple(margins), edges, tuple(counts), threshold, above)


@dataclass(frozen=True)
class QualityMeasures:
    classification_rate: float | None
    echo_rate: float | None
    label_diversity: dict[str, float]
    mean_label_diversity: float | None
    margins: MarginHistogram | None


def measure(classifications: list[dict], tasks: list[dict]) -> QualityMeasures:
    """Every measure above, from ``classifications.jsonl`` and ``tasks.jsonl`` records."""
    diversity = label_diversity(tasks)
    return QualityMeasures(
        classification_rate=classification_rate(classifications),
        echo_rate=echo_rate(tasks),
        label_diversity=diversity,
        mean_label_diversity=(sum(diversity.values()) / len(diversity) if diversity else None),
        margins=margin_histogram(classifications),
    )
