"""Is an instruction a classification task? Two rules, and how to measure them.

- The **paper** rule asks the few-shot Yes/No prompt for 3 greedy tokens and counts
  ``Yes`` (any of ``Yes``/``yes``/``YES``, space stripped) as classification. Small models
  answer Yes to most tasks: Gemma 3 270M says Yes to 79% of our held-out seed tasks,
  of which 10% are classification tasks.
- The **calibrated** rule scores the prompt: the log-probability margin of ``" Yes"``
  over ``" No"`` as the next token. A single ordering of the demonstrations swings the
  margin a lot (on Gemma 3 270M, leave-one-out balanced accuracy from 65% to 87% across
  nine orderings of the same 31 demonstrations), so the rule averages several prompts:
  the bundled template, the same demonstrations in 8 seeded orders, and a class-balanced
  subset (:func:`scoring_templates`). Each prompt's margin is standardised with its mean
  and spread over the calibration tasks, the standardised margins are averaged, and a
  task is classification when that score is above a threshold fitted on labelled tasks
  the prompt does not show (the held-out seed tasks), chosen for the best balanced
  accuracy. ``benchmarks/classification_rules.py`` measures every variant.

Balanced accuracy, the mean of the recall on each class, is the measure: only about 1 in
10 tasks is a classification task, so plain accuracy rewards answering No to everything.
The figure reported for the calibrated rule on the seeds is leave-one-out: each task is
judged by a threshold fitted without it.

Everything here is pure logic over margins and labels; the classify stage and
``selfinstruct eval classify`` send the requests.
"""

from __future__ import annotations

import itertools
import random
import re
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from selfinstruct.backends.base import Completion, Request, Sampling
from selfinstruct.prompts import PromptTemplates
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


ORDERINGS = 8


def scoring_request(template: str, instruction: str) -> Request:
    """A classification prompt asking for the two choices' log-probabilities; the
    template (everything before the instruction) is the shared prefix."""
    return Request(f"{template} {instruction.strip()}\nIs it classification?",
                   Sampling(temperature=0.0), prefix=template, choices=CHOICES)


def demonstrations(template: str) -> list[tuple[str, bool]]:
    """The (instruction, is classification) pairs a classification template shows."""
    return [(m.group(1).strip(), m.group(2) == "Yes") for m in _DEMONSTRATION.finditer(template)]


def build_template(header: str, demos: Sequence[tuple[str, bool]]) -> str:
    """A classification template in the bundled (and original) layout."""
    body = "".join(f"Task: {text}\nIs it classification? {'Yes' if label else 'No'}\n\n"
                   for text, label in demos)
    return f"{header}\n\n{body}Task:"


def scoring_templates(templates: PromptTemplates, orderings: int = ORDERINGS) -> list[str]:
    """The prompts the calibrated rule averages: the template as it is, its demonstrations
    in ``orderings`` seeded orders, and a class-balanced subset (as many No as Yes
    demonstrations, alternating). Deterministic: the same templates give the same list."""
    text = templates.classification
    demos = demonstrations(text)
    if not demos:
        return [text]
    header = text.split("\n\n", 1)[0]
    out = [text]
    for k in range(orderings):
        shuffled = list(demos)
        random.Random(k).shuffle(shuffled)
        out.append(build_template(header, shuffled))
    yes = [d for d in demos if d[1]]
    no = [d for d in demos if not d[1]][: len(yes)]
    if yes and no:
        out.append(build_template(header, [d for pair in zip(yes, no) for d in pair]))
    return out


def scoring_requests(prompts: Sequence[str], instructions: Sequence[str]) -> list[Request]:
    """Every (prompt, instruction) pair, prompt-major, so that a backend with prefix reuse
    evaluates each prompt's demonstrations once."""
    return [scoring_request(p, text) for p in prompts for text in instructions]


def combine(margins: Sequence[Sequence[float]], centres: Sequence[float],
            scales: Sequence[float]) -> list[float]:
    """The mean over prompts of each task's standardised margin. ``margins[p][i]``: prompt
    p, task i."""
    n = len(margins[0])
    return [statistics.fmean((margins[p][i] - centres[p]) / scales[p]
                             for p in range(len(margins))) for i in range(n)]


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
                  + [(a + b) / 2 for a, b in itertools.pairwise(values)]
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
    """How to turn a task's margins (one per prompt) into a decision, fitted on labelled
    tasks: each prompt's centre and scale, and the threshold on the averaged score; with
    how well it does on those tasks, each left out in turn. Stored in the manifest of a
    run that uses the calibrated rule."""

    threshold: float
    centres: tuple[float, ...]
    scales: tuple[float, ...]
    tasks: int
    classification_tasks: int
    held_out: Metrics
    auc: float

    def score(self, margins: Sequence[float]) -> float:
        """One task's averaged standardised margin; ``margins[p]`` from prompt p."""
        return combine([[m] for m in margins], self.centres, self.scales)[0]

    def as_dict(self) -> dict:
        return {"threshold": round(self.threshold, 6), "prompts": len(self.centres),
                "centres": [round(c, 6) for c in self.centres],
                "scales": [round(c, 6) for c in self.scales], "tasks": self.tasks,
                "classification_tasks": self.classification_tasks,
                "held_out": self.held_out.as_dict(), "auc": round(self.auc, 6)}

    def to_json(self) -> dict:
        """Every field at full precision (a shipped calibration file's)."""
        return {"threshold": self.threshold, "centres": list(self.centres),
                "scales": list(self.scales), "tasks": self.tasks,
                "classification_tasks": self.classification_tasks,
                "held_out": self.held_out.as_dict(), "auc": self.auc}

    @classmethod
    def from_json(cls, data: dict) -> Calibration:
        return cls(threshold=float(data["threshold"]),
                   centres=tuple(float(c) for c in data["centres"]),
                   scales=tuple(float(s) for s in data["scales"]),
                   tasks=int(data["tasks"]),
                   classification_tasks=int(data["classification_tasks"]),
                   held_out=Metrics(**data["held_out"]), auc=float(data["auc"]))


def calibrate(margins: Sequence[Sequence[float]], labels: Sequence[bool]) -> Calibration:
    """Fit on labelled tasks; ``margins[p][i]``: prompt p, task i. The centres and scales
    use no labels; the threshold does, so the held-out figure refits it without each
    task."""
    centres = tuple(statistics.fmean(row) for row in margins)
    scales = tuple(statistics.pstdev(row) or 1.0 for row in margins)
    scores = combine(margins, centres, scales)
    return Calibration(
        threshold=fit_threshold(scores, labels),
        centres=centres,
        scales=scales,
        tasks=len(labels),
        classification_tasks=sum(labels),
        held_out=metrics(leave_one_out(scores, labels), labels),
        auc=auc(scores, labels),
    )
