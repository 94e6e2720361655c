"""Shipped classification calibrations: each bundled model's, computed once and shipped.

The calibrated classification rule (:mod:`selfinstruct.rules.classification`) is fitted on
the scores of the held-out seed tasks under 10 prompts: 1,440 scorings, five minutes on
two cores for SmolLM2. Those scores depend only on the model's weights, the seed tasks and
the classification template, so for the bundled models and the bundled seeds and templates
they are computed once (``scripts/ship_calibration.py``) and shipped here as
``<model>.json``: every score (``margins[prompt][task]``), the labels, and the fitted
calibration at full precision.

A file applies to a run when its key matches: the llama.cpp backend with these weights
(their sha256, no adapter), the seed tasks the calibration scores (their instructions and
labels) and the prompts it scores them under (derived from the classification template).
Any other model, seed file or template calibrates as before, through the shared cache
(:mod:`selfinstruct.run.shared_cache`).

The scores differ in their low bits from one CPU to another; a shipped file holds this
machine's, and ``tests/integration/test_shipped_calibration.py`` checks that a fresh
scoring of some of them agrees within a stated tolerance.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from selfinstruct.records import Task
from selfinstruct.rules.classification import Calibration, scoring_request

FORMAT_VERSION = 1
SHIPPED_DIR = Path(__file__).parent


def _digest(value: object) -> str:
    blob = json.dumps(value, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def seeds_digest(tasks: Sequence[Task]) -> str:
    """The digest of what calibration reads from the seeds: each scored task's instruction
    and label, in order."""
    return _digest([[t.instruction, t.is_classification] for t in tasks])


def templates_digest(prompts: Sequence[str]) -> str:
    """The digest of the prompts the tasks are scored under (the classification template,
    its reorderings and its balanced subset) and of the scoring request's form."""
    form = scoring_request("{template}", "{instruction}")
    return _digest({"prompts": list(prompts), "form": form.prompt,
                    "choices": list(form.choices or ()), "prefix": form.prefix})


def calibration_key(identity: dict, tasks: Sequence[Task], prompts: Sequence[str]) -> dict | None:
    """The key a shipped file must match, or None for a backend that cannot have one (a
    server, a transformers model, an adapter: only the embedded model's weights are known
    by their sha256 and scored the way the shipped file was)."""
    if identity.get("backend") != "llama.cpp" or not identity.get("sha256") \
            or identity.get("lora_sha256"):
        return None
    return {"format": FORMAT_VERSION, "backend": "llama.cpp",
            "model_sha256": identity["sha256"], "seeds_sha256": seeds_digest(tasks),
            "templates_sha256": templates_digest(prompts)}


@dataclass(frozen=True)
class ShippedCalibration:
    name: str  # the file's name in the package
    key: dict
    model: str
    margins: tuple[tuple[float, ...], ...]  # margins[prompt][task]
    labels: tuple[bool, ...]
    instructions: tuple[str, ...]
    calibration: Calibration
    computed: dict  # when, where, how long, the load


def read_calibration(path: str | Path) -> ShippedCalibration:
    path = Path(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    return ShippedCalibration(
        name=path.name, key=data["key"], model=data["model"],
        margins=tuple(tuple(float(m) for m in row) for row in data["margins"]),
        labels=tuple(bool(y) for y in data["labels"]),
        instructions=tuple(data["instructions"]),
        calibration=Calibration.from_json(data["calibration"]),
        computed=data.get("computed", {}),
    )


def calibration_document(model: str, key: dict, tasks: Sequence[Task],
                         margins: Sequence[Sequence[float]], calibration: Calibration,
                         computed: dict) -> dict:
    """What a shipped file holds (``scripts/ship_calibration.py`` writes it)."""
    return {"format": FORMAT_VERSION, "model": model, "key": key, "computed": computed,
            "calibration": calibration.to_json(),
            "instructions": [t.instruction for t in tasks],
            "labels": [bool(t.is_classification) for t in tasks],
            "margins": [list(row) for row in margins]}


def shipped_files(folder: Path | None = None) -> list[Path]:
    return sorted((folder or SHIPPED_DIR).glob("*.json"))


def find_shipped(key: dict | None, folder: Path | None = None) -> ShippedCalibration | None:
    """The shipped calibration whose key is ``key``, or None."""
    if key is None:
        return None
    for path in shipped_files(folder or SHIPPED_DIR):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # pragma: no cover - a damaged install
            continue
        if data.get("key") == key:
            return read_calibration(path)
    return None


def score_tasks(backend, prompts: Sequence[str], instructions: Sequence[str], *,
                on_each=None) -> list[list[float]]:
    """``margins[p][i]``: the margin of instruction i under prompt p, asked directly (no
    cache), prompt-major as the classify stage asks them."""
    from selfinstruct.backends.requests import run_requests
    from selfinstruct.rules.classification import margin_of, scoring_requests

    requests = scoring_requests(prompts, instructions)
    margins = [[0.0] * len(instructions) for _ in prompts]
    for offset, completion in run_requests(backend, requests):
        margin = margin_of(completion) if completion.ok else None
        if margin is None:
            raise ValueError(f"request {offset} gave no score: {completion.error}")
        p, i = divmod(offset, len(instructions))
        margins[p][i] = margin
        if on_each is not None:
            on_each()
    return margins


# Scores recomputed on another CPU differ from the shipped ones in their low bits (other
# SIMD kernels sum in another order; about 1e-4 nats); on the machine that computed a file
# they are equal. Each prompt's scale (the spread of its margins over the seed tasks) is
# 0.43 to 0.68 nats on SmolLM2, so 0.01 nats is 2% of a scale: below what moves more than
# a task sitting on the threshold, and far above the low-bit noise.
TOLERANCE = 0.01


def disagreements(shipped: ShippedCalibration, recomputed: dict[tuple[int, int], float],
                  tolerance: float = TOLERANCE) -> list[str]:
    """Each (prompt, task) whose recomputed margin is more than ``tolerance`` from the
    shipped one, described; empty when they agree."""
    out = []
    for (p, i), value in sorted(recomputed.items()):
        expected = shipped.margins[p][i]
        if abs(value - expected) > tolerance:
            out.append(f"prompt {p}, task {i} ({shipped.instructions[i][:50]!r}): "
                       f"{value:+.4f}, shipped {expected:+.4f}")
    return out
