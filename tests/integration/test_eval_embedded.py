"""Evaluation end to end on the real embedded model (SmolLM2-135M-Instruct).

Quality is what it is for a 135M model; these tests check the plumbing: prompts reach the
real model, predictions and ratings are written in their formats, metrics are computed,
and a re-run resumes without asking the model again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfinstruct.cli import main

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared" / "data"
SUPERNI = SHARED / "superni-test" / "superni_test_en.jsonl"
PREDICTIONS = SHARED / "self-instruct-original" / "human_eval_predictions"
# Three tasks with short prompts, so that the test stays well under two minutes on 2 cores.
TASKS = ["task641_esnli_classification", "task202_mnli_contradiction_classification",
         "task670_ambigqa_question_generation"]


@pytest.mark.skipif(not SUPERNI.is_file(), reason=f"the shared SuperNI test set is not at "
                                                  f"{SUPERNI}")
def test_superni_run_three_tasks(tmp_path, capsys):
    out = tmp_path / "superni"
    args = ["eval", "superni", "run", "--data", str(SUPERNI), "--out", str(out),
            "--max-per-task", "1", "--tasks", ",".join(TASKS), "--quiet"]
    assert main(args) == 0
    predictions = [json.loads(line) for line in
                   (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(p["task"] for p in predictions) == sorted(TASKS)
    assert all(isinstance(p["prediction"], str) for p in predictions)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["instances"] == 3 and metrics["missing_predictions"] == 0
    assert set(metrics["per_task"]) == set(TASKS)
    assert 0.0 <= metrics["rougeL"] <= 100.0
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["settings"]["model"]["name"] == "smollm2"
    assert "3 instances: 0 already done, 3 generated, 0 failed" in capsys.readouterr().out
    # A re-run finds everything done and writes the same metrics.
    assert main(args) == 0
    assert "3 instances: 3 already done, 0 generated" in capsys.readouterr().out
    assert json.loads((out / "metrics.json").read_text())["rougeL"] == metrics["rougeL"]


@pytest.mark.skipif(not PREDICTIONS.is_dir(), reason=f"the original human-eval predictions "
                                                     f"are not at {PREDICTIONS}")
def test_judge_three_instances_of_two_original_files(tmp_path, capsys):
    files = [PREDICTIONS / "davinci-self-instruct_predictions.jsonl",
             PREDICTIONS / "text-davinci-003_predictions.jsonl"]
    args = ["eval", "user-oriented", "judge", "--predictions", *map(str, files),
            "--out", str(tmp_path), "--limit", "3", "--max-tokens", "48", "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Ratings by judge:smollm2" in out
    records = [json.loads(line) for line in (tmp_path / "ratings.jsonl").read_text().splitlines()]
    assert len(records) == 6
    assert {r["model"] for r in records} == {"davinci-self-instruct", "text-davinci-003"}
    assert {r["instance_id"] for r in records} == {f"user_oriented_task_{k}" for k in range(3)}
    for r in records:
        assert r["rater"] == "judge:smollm2"
        assert r["rating"] in ("A", "B", "C", "D", None)
        assert (r["rating"] is None) == (r["parse_error"] is not None)
        assert isinstance(r["judge_output"], str)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "pip install" in out
    else:
        assert (tmp_path / "ratings.png").read_bytes()[:4] == b"\x89PNG"
    # Resume: nothing is rated twice.
    assert main(args) == 0
    assert "6 already rated, 0 rated" in capsys.readouterr().out
    assert len((tmp_path / "ratings.jsonl").read_text().splitlines()) == 6


@pytest.mark.skipif(not SUPERNI.is_file(), reason=f"the shared SuperNI test set is not at "
                                                  f"{SUPERNI}")
def test_first_paragraph_early_stop_keeps_every_prediction():
    """The embedded backend's early stop after the first paragraph saves tokens and never
    changes a trimmed prediction: same prompts, with and without the hint, on the real model."""
    from dataclasses import replace

    from selfinstruct.backends.base import Request, Sampling
    from selfinstruct.backends.registry import open_backend
    from selfinstruct.evaluation.superni import load_instances
    from selfinstruct.evaluation.superni_run import build_prompt, select, trim

    chosen = select(load_instances(SUPERNI), TASKS, 2)
    backend, _ = open_backend("smollm2")
    full = Sampling(temperature=0.0, top_p=1.0, max_tokens=128)
    early = replace(full, first_paragraph_only=True)
    saved = 0
    for instance in chosen:
        prompt = build_prompt("tk", instance.definition, instance.input)
        [long] = backend.complete([Request(prompt, full)])
        [short] = backend.complete([Request(prompt, early)])
        assert trim(short.text, "paragraph") == trim(long.text, "paragraph")
        assert long.text.startswith(short.text)
        saved += long.completion_tokens - short.completion_tokens
    assert saved > 0, "no completion went past its first paragraph; pick other tasks"
