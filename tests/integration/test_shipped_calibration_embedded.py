"""The shipped SmolLM2 calibration against the model itself: part of it recomputed (six
seed tasks, three of the ten prompts), each score compared with the shipped one within
:data:`selfinstruct.calibrations.TOLERANCE` (0.01 nats; scores differ in their low bits
from one CPU to another, and are equal on the machine that computed the file); and the
preview on the real model is the beginning of the real run."""

from __future__ import annotations

from dataclasses import replace

import pytest

from selfinstruct.calibrations import (
    TOLERANCE,
    calibration_key,
    disagreements,
    find_shipped,
    score_tasks,
)
from selfinstruct.prompts import PromptTemplates
from selfinstruct.rules.classification import held_out_tasks, scoring_templates
from selfinstruct.seeds import load_seeds

pytestmark = pytest.mark.slow

PROMPTS = (0, 4, 9)  # the template as shipped, a reordering, the balanced subset


@pytest.fixture(scope="module")
def smollm2():
    from selfinstruct.backends.registry import open_backend

    backend, _ = open_backend("smollm2")
    return backend


def test_part_of_the_shipped_calibration_recomputes_within_the_tolerance(smollm2):
    templates = PromptTemplates.load(None)
    tasks = held_out_tasks(load_seeds(None), templates)
    prompts = scoring_templates(templates)
    shipped = find_shipped(calibration_key(smollm2.identity, tasks, prompts))
    assert shipped is not None and shipped.name == "smollm2.json"
    # three classification tasks and three others
    chosen = ([i for i, t in enumerate(tasks) if t.is_classification][:3]
              + [i for i, t in enumerate(tasks) if not t.is_classification][:3])
    margins = score_tasks(smollm2, [prompts[p] for p in PROMPTS],
                          [tasks[i].instruction for i in chosen])
    recomputed = {(p, i): margins[a][b] for a, p in enumerate(PROMPTS)
                  for b, i in enumerate(chosen)}
    assert disagreements(shipped, recomputed) == []
    worst = max(abs(v - shipped.margins[p][i]) for (p, i), v in recomputed.items())
    print(f"largest difference from the shipped scores: {worst:.2e} (tolerance {TOLERANCE})")
    # the comparison can fail: every score of a file shifted by twice the tolerance, or one
    # task's scores swapped with another's, disagrees
    shifted = replace(shipped, margins=tuple(tuple(m + 2 * TOLERANCE for m in row)
                                             for row in shipped.margins))
    assert len(disagreements(shifted, recomputed)) == len(recomputed)
    a, b = chosen[0], chosen[3]
    swapped_rows = tuple(tuple(row[b] if k == a else row[a] if k == b else m
                               for k, m in enumerate(row)) for row in shipped.margins)
    assert disagreements(replace(shipped, margins=swapped_rows), recomputed)
