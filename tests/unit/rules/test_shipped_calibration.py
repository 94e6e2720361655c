"""The calibrations shipped in the package: each file's key is what a run of its model on
the bundled seeds and templates computes, and its fit is the fit of its scores. (The
scores themselves are checked against the model in
tests/integration/test_shipped_calibration.py.)"""

from __future__ import annotations

from dataclasses import replace

import pytest

from selfinstruct.calibrations import (
    calibration_key,
    disagreements,
    find_shipped,
    read_calibration,
    shipped_files,
)
from selfinstruct.prompts import PromptTemplates
from selfinstruct.rules.classification import calibrate, held_out_tasks, scoring_templates
from selfinstruct.seeds import load_seeds

FILES = shipped_files()


def _inputs():
    templates = PromptTemplates.load(None)
    tasks = held_out_tasks(load_seeds(None), templates)
    return tasks, scoring_templates(templates)


def test_the_default_model_ships_its_calibration():
    assert "smollm2.json" in [p.name for p in FILES]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_a_shipped_file_matches_the_bundled_seeds_and_templates(path):
    shipped = read_calibration(path)
    tasks, prompts = _inputs()
    identity = {"backend": "llama.cpp", "sha256": shipped.key["model_sha256"]}
    assert shipped.key == calibration_key(identity, tasks, prompts)
    assert find_shipped(shipped.key).name == path.name
    assert list(shipped.instructions) == [t.instruction for t in tasks]
    assert list(shipped.labels) == [bool(t.is_classification) for t in tasks]
    assert len(shipped.margins) == len(prompts)
    assert all(len(row) == len(tasks) for row in shipped.margins)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_a_shipped_fit_is_the_fit_of_its_scores(path):
    shipped = read_calibration(path)
    assert calibrate(shipped.margins, shipped.labels) == shipped.calibration


def test_a_key_does_not_match_other_seeds_templates_or_backends():
    tasks, prompts = _inputs()
    shipped = read_calibration(FILES[0])
    identity = {"backend": "llama.cpp", "sha256": shipped.key["model_sha256"]}
    assert find_shipped(calibration_key(identity, tasks[1:], prompts)) is None
    assert find_shipped(calibration_key(identity, tasks, prompts[:-1])) is None
    flipped = [*tasks[:-1], replace(tasks[-1],
                                    is_classification=not tasks[-1].is_classification)]
    assert find_shipped(calibration_key(identity, flipped, prompts)) is None
    assert calibration_key({**identity, "backend": "transformers"}, tasks, prompts) is None
    assert calibration_key({**identity, "lora_sha256": "ab"}, tasks, prompts) is None
    assert calibration_key({"backend": "llama.cpp"}, tasks, prompts) is None


def test_disagreements_name_each_score_beyond_the_tolerance():
    shipped = read_calibration(FILES[0])
    same = {(p, i): shipped.margins[p][i] + 0.005 for p in (0, 3) for i in (0, 5)}
    assert disagreements(shipped, same) == []
    off = dict(same)
    off[(3, 5)] = shipped.margins[3][5] + 0.2
    [line] = disagreements(shipped, off)
    assert line.startswith("prompt 3, task 5")


def test_the_calibration_files_are_package_data():
    from paths import REPO

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert "calibrations/*.json" in data["tool"]["setuptools"]["package-data"]["selfinstruct"]
