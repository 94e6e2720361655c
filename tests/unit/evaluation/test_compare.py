"""The SuperNI comparison: same instances for every arm, paired bootstrap intervals."""

from __future__ import annotations

import json

import pytest

from selfinstruct.cli.evaluate import parse_arms
from selfinstruct.errors import UserError
from selfinstruct.evaluation.compare import bootstrap_interval, compare, render_markdown
from selfinstruct.evaluation.superni import SuperNIInstance


def _instance(i: int, category: str, output: str, input_text: str) -> SuperNIInstance:
    return SuperNIInstance(id=f"t{i % 2}-{i}", task=f"task{i % 2}", category=category,
                           definition="Answer.", input=input_text, outputs=(output,))


@pytest.fixture()
def instances():
    return [_instance(i, "A" if i % 2 else "B", f"answer {i}", f"question {i}")
            for i in range(20)]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_perfect_arm_beats_copy_input_with_a_paired_interval(tmp_path, instances):
    perfect = _write(tmp_path / "p.jsonl",
                     [{"id": x.id, "prediction": x.outputs[0]} for x in instances])
    result = compare(instances, {"copy-input": None, "perfect": perfect}, resamples=200)
    by_name = {a["name"]: a for a in result["arms"]}
    assert by_name["perfect"]["rougeL"] == 100.0
    assert by_name["perfect"]["ci95"] == [100.0, 100.0]
    # "question i" vs "answer i" share the number: ROUGE-L F = 0.5 on every instance
    assert by_name["copy-input"]["rougeL"] == 50.0
    delta = by_name["perfect"]["minus_copy-input"]
    assert delta["delta"] == 50.0 and delta["ci95"] == [50.0, 50.0]
    assert result["category_instances"] == {"A": 10, "B": 10}
    assert "| perfect | 100.00 |" in render_markdown(result)


def test_a_missing_prediction_scores_zero_and_is_counted(tmp_path, instances):
    half = _write(tmp_path / "h.jsonl",
                  [{"id": x.id, "prediction": x.outputs[0]} for x in instances[:10]])
    result = compare(instances, {"half": half}, resamples=100)
    [arm] = result["arms"]
    assert arm["missing"] == 10 and arm["rougeL"] == 50.0
    low, high = arm["ci95"]
    assert low < 50.0 < high


def test_bootstrap_interval_brackets_the_mean():
    values = [float(v) for v in range(100)]
    draws = [[(7 * k + j * 13) % 100 for j in range(100)] for k in range(50)]
    low, high = bootstrap_interval(values, draws)
    assert low <= 49.5 <= high


def test_arm_parsing(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "predictions.jsonl").write_text("")
    arms = parse_arms(["base=" + str(run), "copy-input"])
    assert arms == {"base": run / "predictions.jsonl", "copy-input": None}
    with pytest.raises(UserError, match="NAME=PATH"):
        parse_arms(["base"])
    with pytest.raises(UserError, match="no predictions file"):
        parse_arms([f"x={tmp_path / 'nothing'}"])
    with pytest.raises(UserError, match="given twice"):
        parse_arms([f"a={run}", f"a={run}"])
