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


def _arm(tmp_path, name, instances, right):
    """Predictions that answer the instances whose index is in ``right`` and nothing else."""
    return _write(tmp_path / f"{name}.jsonl",
                  [{"id": x.id, "prediction": x.outputs[0] if i in right else "no"}
                   for i, x in enumerate(instances)])


def test_fine_tunes_at_several_seeds_get_their_spread_and_a_seed_averaged_difference(
        tmp_path, instances):
    arms = {"ref": _arm(tmp_path, "r1", instances, range(10)),
            "ref@2": _arm(tmp_path, "r2", instances, range(12)),
            "new": _arm(tmp_path, "n1", instances, range(14)),
            "new@2": _arm(tmp_path, "n2", instances, range(10)),
            "new@3": _arm(tmp_path, "n3", instances, range(18)),
            "copy-input": None}
    result = compare(instances, arms, resamples=200)
    ref, new = result["seed_spread"]
    assert ref["arm"] == "ref" and ref["rougeL"] == [50.0, 60.0]
    assert ref["mean"] == 55.0 and ref["sd"] == pytest.approx(7.07, abs=0.01)
    assert ref["versus"] == {}
    assert new["fine_tunes"] == ["new", "new@2", "new@3"]
    assert new["rougeL"] == [70.0, 50.0, 90.0] and new["mean"] == 70.0
    assert new["min"] == 50.0 and new["max"] == 90.0
    assert set(new["versus"]) == {"ref"}
    diff = new["versus"]["ref"]
    # per instance: new averages (3 of 3 right on 0-9, 2 of 3 on 10-13, 1 of 3 on 14-17),
    # ref (2 of 2 on 0-9, 1 of 2 on 10-11): a mean of 70 - 55
    assert diff["seed_averaged"]["delta"] == 15.0
    low, high = diff["seed_averaged"]["ci95"]
    assert 0 < low < 15.0 < high
    # seeds both were fine-tuned at pair up; new@3 has no partner
    assert diff["same_seed"]["first"]["delta"] == 20.0
    assert diff["same_seed"]["2"]["delta"] == -10.0
    low, high = diff["same_seed"]["2"]["ci95"]
    assert low < -10.0 < high <= 0.0
    assert set(diff["same_seed"]) == {"first", "2"}
    text = render_markdown(result)
    assert "| new | 3 | 70.00, 50.00, 90.00 | 70.00 | 20.00 |" in text
    assert "| new | ref | +15.00 (" in text
    assert "first: +20.00" in text and "2: -10.00 (" in text


def test_no_spread_without_a_second_fine_tune(tmp_path, instances):
    arms = {"a": _arm(tmp_path, "a", instances, range(5)), "b": _arm(tmp_path, "b",
                                                                     instances, range(9))}
    result = compare(instances, arms, resamples=50)
    assert "seed_spread" not in result
    assert "Spread over fine-tune seeds" not in render_markdown(result)
