"""Is an instruction a classification task? Two rules, and how to measure them.

- The **paper** rule asks the few-shot Yes/No prompt for 3 greedy tokens and counts
  ``Yes`` (any of ``Yes``/``yes``/``YES``, space stripped) as classification. Small models
  answer Yes to most tasks: Gemma 3 270M says Yes to 79% of our held-out seed tasks,
  of which 10% are classification tasks.
- The **calibrated** rule scores the same prompt: the log-probability margin of
  ``" Yes"`` over ``" No"`` as the next token. A task is classification when its margin
  is above a threshold fitted on labelled tasks the prompt does not show (the held-out
  seed tasks), chosen for the best balanced accuracy.

Balanced accuracy, the mean of the recall on each class, is the measure: only about 1 in
10 tasks is a classification task, so plain accuracy rewards answering No to everything.
The figure reported for the calibrated rule on the seeds is leave-one-out: each task is
judged by a threshold fitted without it.

Everything here is pure logic over margins and labels; the classify stage and
``selfinstruct eval classify`` send the requests.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from selfinstruct.backends.base import Completion, Request, Sampling
from selfinstruct.prompts import PromptTemplates, classification_prompt
from selfinstruct.records import Task

YES, NO = " Yes", " No"
CHOICES = (YES, NO)
PAPER_YES = {"Yes", "yes", "YES"}
_DEMONSTRATION = re.compile(r"Task:\s*(.+?)\s*\nIs it classification\?\s*(Yes|No)\b")


def paper_rule(answer: str) -> bool:
    """The original code's test of the greedy answer."""
    return answer.strip() in PAPER_YES


def margin_of(completion: Completion) -> float | None:
    """log P(" Yes") - log P(" No") after the prompt, or None if the backend cannot score."""
    scores = completion.choice_logprobs
    if not scores or YES not in scores or NO not in scores:
        return None
    return scores[YES] - scores[NO]


def scoring_request(templates: PromptTemplates, instruction: str) -> Request:
    """The few-shot classification prompt, asking for the two choices' log-probabilities."""
    return Request(classification_prompt(templates, instruction), Sampling(temperature=0.0),
                   prefix=templates.classification, choices=CHOICES)


def demonstrations(template: str) -> list[tuple[str, bool]]:
    """The (instruction, is classification) pairs a classification template shows."""
    return [(m.group(1).strip(), m.group(2) == "Yes") for m in _DEMONSTRATION.finditer(template)]


def held_out_tasks(seeds: Sequence[Task], templates: PromptTemplates) -> list[Task]:
    """Seed tasks with a label that the classification prompt does not show."""
    shown = {_normalise(text) for text, _ in demonstrations(templates.classification)}
    return [t for t in seeds
            if t.is_classification is not None and _normalise(t.instruction) not in shown]


def _normalise(text: str) -> str:
    return " ".join(text.split()).lower()


@dataclass(frozen=True)
class Metrics:
    balanced_accuracy: float
    accuracy: float
    precision: float
    recall: float
    tp: int
    fp: int
    tn: int
    fn: int

    def as_dict(self) -> dict:
        return asdict(self)


def metrics(predicted: Sequence[bool], labels: Sequence[bool]) -> Metrics:
    if len(predicted) != len(labels):
        raise ValueError("predicted and labels differ in length")
    tp = sum(1 for p, y in zip(predicted, labels) if p and y)
    fp = sum(1 for p, y in zip(predicted, labels) if p and not y)
    tn = sum(1 for p, y in zip(predicted, labels) if not p and not y)
    fn = sum(1 for p, y in zip(predicted, labels) if not p and y)
    recall = tp / (tp + fn) if tp + fn else 0.0
    specificity = tn / (tn + fp) if tn + fp else 0.0
    n = len(labels)
    return Metrics(
        balanced_accuracy=(recall + specificity) / 2,
        accuracy=(tp + tn) / n if n else 0.0,
        precision=tp / (tp + fp) if tp + fp else 0.0,
        recall=recall, tp=tp, fp=fp, tn=tn, fn=fn,
    )


def fit_threshold(margins: Sequence[float], labels: Sequence[bool]) -> float:
    """The threshold (a task is classification when its margin is above it) with the best
    balanced accuracy on these tasks. Candidates are midpoints between neighbouring
    distinct margins; among equally good ones the middle one is taken."""
    if not margins:
        raise ValueError("no margins to fit a threshold on")
    values = sorted(set(margins))
    candidates = ([values[0] - 1.0]
                  + [(a + b) / 2 for a, b in zip(values, values[1:])]
                  + [values[-1] + 1.0])
    scored = [(metrics([m > t for m in margins], labels).balanced_accuracy, t)
              for t in candidates]
    best = max(score for score, _ in scored)
    ties = [t for score, t in scored if score == best]
    return ties[len(ties) // 2]


def leave_one_out(margins: Sequence[float], labels: Sequence[bool]) -> list[bool]:
    """Each task's prediction by a threshold fitted on all the other tasks."""
    predicted = []
    for i, value in enumerate(margins):
        rest_m = [m for j, m in enumerate(margins) if j != i]
        rest_y = [y for j, y in enumerate(labels) if j != i]
        predicted.append(value > fit_threshold(rest_m, rest_y))
    return predicted


def auc(margins: Sequence[float], labels: Sequence[bool]) -> float:
    """Probability that a classification task has a higher margin than another task."""
    pos = [m for m, y in zip(margins, labels) if y]
    neg = [m for m, y in zip(margins, labels) if not y]
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


@dataclass(frozen=True)
class Calibration:
    """A fitted threshold and how well it does on the tasks it was fitted on, left out
    one at a time. Stored in the manifest of a run that uses the calibrated rule."""

    threshold: float
    tasks: int
    classification_tasks: int
    held_out: Metrics
    auc: float

    def as_dict(self) -> dict:
        return {"threshold": round(self.threshold, 6), "tasks": self.tasks,
                "classification_tasks": self.classification_tasks,
                "held_out": self.held_out.as_dict(), "auc": round(self.auc, 6)}


def calibrate(margins: Sequence[float], labels: Sequence[bool]) -> Calibration:
    return Calibration(
        threshold=fit_threshold(margins, labels),
        tasks=len(labels),
        classification_tasks=sum(labels),
        held_out=metrics(leave_one_out(margins, labels), labels),
        auc=auc(margins, labels),
    )
