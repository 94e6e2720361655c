"""SuperNI scoring, identical to the official ``eval/automatic/evaluation.py`` (default track).

The official script (allenai/natural-instructions) scores each instance as follows, and
so does :func:`score`:

- **ROUGE-L**: ``rouge_score`` ``rougeL`` F-measure, default tokenizer (lowercase, runs
  of ``[a-z0-9]``), Porter stemming on, called as ``score(target=reference,
  prediction=prediction)``; the maximum over the instance's references.
- **Exact match**: SQuAD normalisation *without* removing articles: lowercase, drop
  ASCII punctuation (``string.punctuation``), collapse whitespace; 1 if equal to any
  reference after normalisation.
- **Aggregation**: the mean over instances x 100, overall, per category
  (``Categories[0]``) and per task, each rounded to 4 decimals.
- **Missing prediction**: scored as the empty string (0 on both metrics).
- **Unknown ids** (a prediction whose id is not in the data): ignored, as the official
  script ignores them; they are counted and reported so a typo does not go unnoticed.
- **Repeated ids** in the predictions: the last line wins, as in the official script's dict.

Check: copying each instance's input as its prediction gives ROUGE-L 14.20 on the
11,810-instance English test set, the "Copying Instance Input" baseline published in the
SuperNI paper and the Tk-Instruct README (tests/unit/evaluation/test_superni_score.py).

File formats (``superni_test_en.jsonl``): one instance per line with ``task``,
``category``, ``definition``, ``id``, ``input``, ``outputs`` (list of references),
``input_language``, ``output_language``. Predictions: ``{"id": ..., "prediction": ...}``
per line (the SuperNI format); other fields are ignored.

What it leaves out: the cross-lingual track (its GPT-2 tokenizer would need
``transformers``); this project evaluates the English track only.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path

from selfinstruct.errors import UserError
from selfinstruct.evaluation.jsonl import field, read_jsonl

METRICS_FORMAT_VERSION = 1
_PUNCTUATION = set(string.punctuation)


@dataclass(frozen=True)
class SuperNIInstance:
    """One test instance, the fields of one line of ``superni_test_en.jsonl``."""

    task: str
    category: str
    definition: str
    id: str
    input: str
    outputs: tuple[str, ...]
    input_language: tuple[str, ...] = ("English",)
    output_language: tuple[str, ...] = ("English",)

    def as_dict(self) -> dict:
        return {
            "task": self.task, "category": self.category, "definition": self.definition,
            "id": self.id, "input": self.input, "outputs": list(self.outputs),
            "input_language": list(self.input_language),
            "output_language": list(self.output_language),
        }


def _strings(where: str, record: dict, name: str, *, default=...) -> tuple[str, ...]:
    values = field(where, record, name, list, default=default)
    if any(not isinstance(v, str) for v in values):
        raise UserError(f"{where}: field '{name}' must be a list of strings")
    return tuple(values)


def load_instances(path: str | Path, option: str = "--data") -> list[SuperNIInstance]:
    """Read and validate a SuperNI data file; ids must be unique, references non-empty."""
    instances: list[SuperNIInstance] = []
    seen: dict[str, str] = {}
    for where, rec in read_jsonl(path, option):
        outputs = _strings(where, rec, "outputs")
        if not outputs:
            raise UserError(f"{where}: field 'outputs' is empty; an instance needs a reference")
        inst = SuperNIInstance(
            task=field(where, rec, "task"), category=field(where, rec, "category"),
            definition=field(where, rec, "definition"), id=field(where, rec, "id"),
            input=field(where, rec, "input"), outputs=outputs,
            input_language=_strings(where, rec, "input_language", default=["English"]),
            output_language=_strings(where, rec, "output_language", default=["English"]),
        )
        if inst.id in seen:
            raise UserError(f"{where}: field 'id' repeats '{inst.id}' from {seen[inst.id]}")
        seen[inst.id] = where
        instances.append(inst)
    if not instances:
        raise UserError(f"{option}: {path} holds no instances")
    return instances


def load_predictions(path: str | Path, option: str = "--predictions") -> dict[str, str]:
    """``{id: prediction}`` from a SuperNI predictions file; a repeated id keeps the last."""
    predictions: dict[str, str] = {}
    for where, rec in read_jsonl(path, option):
        predictions[field(where, rec, "id")] = field(where, rec, "prediction")
    return predictions


def normalize_answer(text: str) -> str:
    """Lowercase, drop ASCII punctuation, collapse whitespace (articles are kept)."""
    return " ".join("".join(ch for ch in text.lower() if ch not in _PUNCTUATION).split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


_SCORER = None


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure with the official settings (default tokenizer, Porter stemmer)."""
    global _SCORER
    if _SCORER is None:
        from rouge_score import rouge_scorer

        _SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return _SCORER.score(reference, prediction)["rougeL"].fmeasure  # (target, prediction)


def max_over_references(metric: Callable[[str, str], float], prediction: str,
                        references: Iterable[str]) -> float:
    return max(metric(prediction, reference) for reference in references)


@dataclass
class Tally:
    """Running sums for one group of instances."""

    instances: int = 0
    rouge_l: float = 0.0
    exact_match: float = 0.0

    def add(self, rouge: float, em: float) -> None:
        self.instances += 1
        self.rouge_l += rouge
        self.exact_match += em

    def as_dict(self) -> dict:
        n = max(self.instances, 1)
        return {
            "rougeL": round(100.0 * self.rouge_l / n, 4),
            "exact_match": round(100.0 * self.exact_match / n, 4),
            "instances": self.instances,
        }


@dataclass
class SuperNIScores:
    overall: Tally = dc_field(default_factory=Tally)
    per_category: dict[str, Tally] = dc_field(default_factory=dict)
    per_task: dict[str, Tally] = dc_field(default_factory=dict)
    task_category: dict[str, str] = dc_field(default_factory=dict)
    missing: list[str] = dc_field(default_factory=list)
    unknown_ids: list[str] = dc_field(default_factory=list)

    def as_dict(self) -> dict:
        """The ``metrics.json`` object."""
        overall = self.overall.as_dict()
        per_task = {}
        for task, tally in self.per_task.items():
            per_task[task] = {**tally.as_dict(), "category": self.task_category[task]}
        return {
            "format_version": METRICS_FORMAT_VERSION,
            "rougeL": overall["rougeL"],
            "exact_match": overall["exact_match"],
            "instances": overall["instances"],
            "missing_predictions": len(self.missing),
            "unknown_prediction_ids": len(self.unknown_ids),
            "per_category": {k: v.as_dict() for k, v in sorted(self.per_category.items())},
            "per_task": per_task,
            "scoring": "SuperNI eval/automatic/evaluation.py, default track: rouge_score rougeL "
                       "(Porter stemmer) and exact match, max over references, mean x 100",
        }


def score_instance(prediction: str, references: Iterable[str]) -> tuple[float, float]:
    """``(rougeL, exact_match)`` of one prediction, each in [0, 1]."""
    refs = list(references)
    return (max_over_references(rouge_l, prediction, refs),
            max_over_references(exact_match, prediction, refs))


def score(instances: Iterable[SuperNIInstance], predictions: dict[str, str],
          on_instance: Callable[[], None] | None = None) -> SuperNIScores:
    """Score every instance; a missing prediction counts as the empty string."""
    result = SuperNIScores()
    known: set[str] = set()
    for inst in instances:
        known.add(inst.id)
        prediction = predictions.get(inst.id)
        if prediction is None:
            result.missing.append(inst.id)
            prediction = ""
        rouge, em = score_instance(prediction, inst.outputs)
        result.overall.add(rouge, em)
        result.per_category.setdefault(inst.category, Tally()).add(rouge, em)
        result.per_task.setdefault(inst.task, Tally()).add(rouge, em)
        result.task_category[inst.task] = inst.category
        if on_instance:
            on_instance()
    result.unknown_ids = [i for i in predictions if i not in known]
    return result
