"""Quality measures of a run's data: classification rate, echoes, label diversity, margins."""

from __future__ import annotations

import pytest

from selfinstruct.cli.render import quality_rows, sparkline
from selfinstruct.rules.quality import (
    classification_rate,
    echo_rate,
    is_echo,
    label_diversity,
    margin_histogram,
    mean_label_diversity,
    measure,
)

TASKS = [
    {"id": "a", "instruction": "Is the review positive or negative?", "is_classification": True,
     "instances": [{"input": "Loved it", "output": "Positive"},
                   {"input": "Hated it", "output": "positive"},
                   {"input": "Meh", "output": "Positive "},
                   {"input": "Great", "output": "Positive"}]},
    {"id": "b", "instruction": "Is the number even?", "is_classification": True,
     "instances": [{"input": "2", "output": "Yes"}, {"input": "3", "output": "No"}]},
    {"id": "c", "instruction": "Write a haiku about the sea.", "is_classification": False,
     "instances": [{"input": "", "output": "The sea"}, {"input": "", "output": "Waves fold "
                                                                               "into foam"}]},
]


@pytest.mark.parametrize("instruction,output,echo", [
    ("Is the review positive or negative?", "Positive", True),
    ("Is the review positive or negative?", "positive.", True),
    ("Write a haiku about the sea.", "The sea", True),          # 2 tokens, both in it
    ("Write a haiku about the sea.", "the sea waves", False),   # 3 tokens
    ("Is the number even?", "Yes", False),                      # not in the instruction
    ("Is the number even?", "...", False),                      # no word token at all
])
def test_echo(instruction, output, echo):
    assert is_echo(instruction, output) is echo


def test_classification_rate():
    records = [{"is_classification": True}, {"is_classification": False},
               {"is_classification": False}, {"is_classification": False}]
    assert classification_rate(records) == 0.25
    assert classification_rate([]) is None


def test_echo_rate_over_every_kept_instance():
    # a: "Positive" x3 and "positive" echo the instruction (4); b: none; c: "The sea" (1)
    assert echo_rate(TASKS) == pytest.approx(5 / 8)
    assert echo_rate([]) is None


def test_label_diversity_per_classification_task():
    # a: "Positive" (stripped) and "positive" are 2 distinct outputs of 4; b: 2 of 2
    assert label_diversity(TASKS) == {"a": 0.5, "b": 1.0}
    assert mean_label_diversity(TASKS) == 0.75
    assert mean_label_diversity(TASKS[2:]) is None


def test_margin_histogram_with_the_records_threshold():
    records = [{"margin": m, "threshold": 0.5} for m in (-2.0, -1.0, 0.5, 0.6, 2.0)]
    records += [{"margin": None}, {"margin": True}, {"margin": float("nan")}, {}]
    h = margin_histogram(records, bins=4)
    assert h.n == 5
    assert h.edges == (-2.0, -1.0, 0.0, 1.0, 2.0)
    assert h.counts == (1, 1, 2, 1)  # the top edge is in the last bin
    assert (h.threshold, h.above) == (0.5, 2)  # the rule says Yes above it: 0.6 and 2.0
    assert margin_histogram([{"is_classification": True}]) is None


def test_margin_histogram_without_threshold_or_spread():
    h = margin_histogram([{"margin": 1.0}, {"margin": 1.0}], bins=2)
    assert (h.threshold, h.above) == (None, None)
    assert h.edges == (0.5, 1.0, 1.5) and h.counts == (0, 2)
    # a threshold outside the margins widens the range to show it
    h = margin_histogram([{"margin": 1.0, "threshold": 3.0}, {"margin": 2.0}], bins=2)
    assert h.edges == (1.0, 2.0, 3.0) and h.counts == (1, 1) and h.above == 0


def test_measure_and_the_summary_rows():
    labels = [{"is_classification": True, "margin": 1.5, "threshold": 0.25},
              {"is_classification": False, "margin": -0.5, "threshold": 0.25}]
    q = measure(labels, TASKS)
    assert (q.classification_rate, q.echo_rate, q.mean_label_diversity) == (0.5, 5 / 8, 0.75)
    rows = dict(quality_rows(q))
    assert rows["classification rate"] == "50.0%"
    assert rows["echo rate (outputs of 1-2 instruction words)"] == "62.5%"
    assert rows["label diversity (mean over 2 classification tasks)"] == "0.75"
    assert rows["classification margin (Yes - No), median"] == "1.50 over 2"
    assert rows["  above the threshold"] == "1 (0.25)"
    assert rows["  histogram"].startswith("-0.5 █") and rows["  histogram"].endswith("█ 1.5")
    # the paper recipe's records: no margins, no margin rows
    assert [what for what, _ in quality_rows(measure([{"is_classification": False}], []))] == [
        "classification rate"]


def test_sparkline():
    assert sparkline([0, 1, 2, 8]) == " ▁▂█"
    assert sparkline([]) == "" and sparkline([0, 0]) == ""
