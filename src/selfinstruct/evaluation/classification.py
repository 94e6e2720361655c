"""``selfinstruct eval classify``: how well a model tells classification tasks apart.

Each labelled task (``instruction``, ``is_classification``) is asked twice with the
classification prompt: once greedily (the paper rule) and once scored (the margin of
``" Yes"`` over ``" No"``, the calibrated rule). The calibrated rule's threshold is fitted
on the held-out seed tasks; when the tasks evaluated *are* those seeds (the default),
each task is judged by a threshold fitted without it (leave-one-out). The always-No
baseline is reported beside both, since plain accuracy rewards it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from selfinstruct.backends.base import Backend, Request
from selfinstruct.errors import UserError
from selfinstruct.evaluation.answering import Tally, answers
from selfinstruct.progress import Reporter
from selfinstruct.prompts import PromptTemplates, classification_prompt
from selfinstruct.records import Task
from selfinstruct.rules.classification import (
    auc,
    calibrate,
    margin_of,
    metrics,
    paper_rule,
    scoring_requests,
    scoring_templates,
)
from selfinstruct.run.config import RunConfig


@dataclass
class LabelledTask:
    instruction: str
    is_classification: bool


@dataclass
class ClassifyEvaluation:
    tasks: int
    classification_tasks: int
    rules: dict[str, dict] = field(default_factory=dict)
    threshold: float | None = None
    threshold_fitted_on: str = ""
    auc: float | None = None
    no_logprobs: bool = False
    prompts: int = 0

    def as_dict(self) -> dict:
        return {"tasks": self.tasks, "classification_tasks": self.classification_tasks,
                **self.rules, "threshold": self.threshold,
                "threshold_fitted_on": self.threshold_fitted_on, "auc": self.auc,
                "prompts": self.prompts}


def read_labelled_tasks(path: str | Path) -> list[LabelledTask]:
    """JSONL with ``instruction`` and ``is_classification`` (a seed file qualifies)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise UserError(f"--tasks: file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--tasks: cannot read {path}: {exc}") from None
    tasks = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(data, dict) or not isinstance(data.get("instruction"), str):
            raise UserError(f"{path}:{number}: field 'instruction' must be a string")
        if not isinstance(data.get("is_classification"), bool):
            raise UserError(f"{path}:{number}: field 'is_classification' must be true or false")
        tasks.append(LabelledTask(data["instruction"], data["is_classification"]))
    if not tasks:
        raise UserError(f"{path}: no tasks")
    return tasks


def from_seeds(seeds: list[Task]) -> list[LabelledTask]:
    return [LabelledTask(t.instruction, bool(t.is_classification)) for t in seeds]


def _margins(backend: Backend, prompts: list[str], tasks: list[LabelledTask],
             folder: Path, reporter: Reporter, stage: str, max_concurrency: int,
             tally: Tally) -> list[list[float]] | None:
    """``margins[p][i]`` for prompt p and task i; None if the backend cannot score."""
    requests = scoring_requests(prompts, [t.instruction for t in tasks])
    flat: list[float | None] = [None] * len(requests)
    for i, completion in answers(backend, requests, folder, reporter, stage,
                                 max_concurrency, tally):
        flat[i] = margin_of(completion)
    if tally.failed:
        raise UserError(f"{tally.failed} requests failed ({tally.first_error}); re-run to "
                        "retry them")
    if any(m is None for m in flat):
        return None
    n = len(tasks)
    return [[float(m) for m in flat[p * n:(p + 1) * n] if m is not None]
            for p in range(len(prompts))]


def evaluate_classification(backend: Backend, templates: PromptTemplates,
                            tasks: list[LabelledTask], calibration: list[LabelledTask] | None,
                            folder: Path, reporter: Reporter, max_concurrency: int = 1,
                            ) -> ClassifyEvaluation:
    """``calibration`` None: the tasks are the calibration set, judged leave-one-out."""
    tally = Tally()
    labels = [t.is_classification for t in tasks]
    paper_requests = [
        Request(classification_prompt(templates, t.instruction),
                RunConfig().classification_sampling(), prefix=templates.classification)
        for t in tasks
    ]
    answers_paper: list[bool | None] = [None] * len(tasks)
    for i, completion in answers(backend, paper_requests, folder, reporter, "paper rule",
                                 max_concurrency, tally):
        answers_paper[i] = paper_rule(completion.text)
    if tally.failed:
        raise UserError(f"{tally.failed} requests failed ({tally.first_error}); re-run to "
                        "retry them")
    result = ClassifyEvaluation(tasks=len(tasks), classification_tasks=sum(labels))
    result.rules["paper"] = metrics([bool(a) for a in answers_paper], labels).as_dict()
    prompts = scoring_templates(templates)
    margins = _margins(backend, prompts, tasks, folder, reporter, "margins",
                       max_concurrency, tally)
    if margins is None:
        result.no_logprobs = True
    elif calibration is None:
        fitted = calibrate(margins, labels)
        result.rules["calibrated"] = fitted.held_out.as_dict()
        result.threshold = round(fitted.threshold, 6)
        result.threshold_fitted_on = "these tasks, each left out in turn"
        result.auc = round(fitted.auc, 6)
    else:
        cal_margins = _margins(backend, prompts, calibration, folder, reporter,
                               "calibration", max_concurrency, tally)
        if cal_margins is None:
            raise UserError("the calibration tasks could not all be scored; re-run")
        fitted = calibrate(cal_margins, [t.is_classification for t in calibration])
        scores = [fitted.score([row[i] for row in margins]) for i in range(len(tasks))]
        result.rules["calibrated"] = metrics([v > fitted.threshold for v in scores],
                                             labels).as_dict()
        result.threshold = round(fitted.threshold, 6)
        result.threshold_fitted_on = f"the {len(calibration)} held-out seed tasks"
        result.auc = round(auc(scores, labels), 6)
    result.rules["always_no"] = metrics([False] * len(tasks), labels).as_dict()
    result.prompts = len(prompts)
    return result
