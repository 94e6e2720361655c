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
from selfinstruct.classification import (
    auc,
    fit_threshold,
    leave_one_out,
    margin_of,
    metrics,
    paper_rule,
    scoring_request,
)
from selfinstruct.config import RunConfig
from selfinstruct.errors import UserError
from selfinstruct.evaluation.answering import Tally, answers
from selfinstruct.progress import Reporter
from selfinstruct.prompts import PromptTemplates, classification_prompt
from selfinstruct.records import Task


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

    def as_dict(self) -> dict:
        return {"tasks": self.tasks, "classification_tasks": self.classification_tasks,
                **self.rules, "threshold": self.threshold,
                "threshold_fitted_on": self.threshold_fitted_on, "auc": self.auc}


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


def _margins(backend: Backend, templates: PromptTemplates, tasks: list[LabelledTask],
             folder: Path, reporter: Reporter, stage: str, max_concurrency: int,
             tally: Tally) -> list[float | None]:
    requests = [scoring_request(templates, t.instruction) for t in tasks]
    margins: list[float | None] = [None] * len(tasks)
    for i, completion in answers(backend, requests, folder, reporter, stage,
                                 max_concurrency, tally):
        margins[i] = margin_of(completion)
    return margins


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
    margins = _margins(backend, templates, tasks, folder, reporter, "margins",
                       max_concurrency, tally)
    if tally.failed:
        raise UserError(f"{tally.failed} requests failed ({tally.first_error}); re-run to "
                        "retry them")
    result = ClassifyEvaluation(tasks=len(tasks), classification_tasks=sum(labels))
    result.rules["paper"] = metrics([bool(a) for a in answers_paper], labels).as_dict()
    if any(m is None for m in margins):
        result.no_logprobs = True
    else:
        values = [float(m) for m in margins if m is not None]
        result.auc = round(auc(values, labels), 6)
        if calibration is None:
            predicted = leave_one_out(values, labels)
            result.threshold = round(fit_threshold(values, labels), 6)
            result.threshold_fitted_on = "these tasks, each left out in turn"
        else:
            cal_margins = _margins(backend, templates, calibration, folder, reporter,
                                   "calibration", max_concurrency, tally)
            if any(m is None for m in cal_margins):
                raise UserError("the calibration tasks could not all be scored; re-run")
            threshold = fit_threshold([float(m) for m in cal_margins if m is not None],
                                      [t.is_classification for t in calibration])
            predicted = [m > threshold for m in values]
            result.threshold = round(threshold, 6)
            result.threshold_fitted_on = f"the {len(calibration)} held-out seed tasks"
        result.rules["calibrated"] = metrics(predicted, labels).as_dict()
    result.rules["always_no"] = metrics([False] * len(tasks), labels).as_dict()
    return result
