"""``selfinstruct loop`` end to end on the real embedded model, CI-sized.

Round 1's data is the session's reference run (copied in, so the pipeline resumes it and
asks the model for nothing: the loop must treat it as its own). Then, for real: a LoRA
fine-tune of SmolLM2 on that export and on the seed tasks (a few steps each), both
adapters exported to GGUF and served by llama.cpp, zero-shot SuperNI predictions of
every arm on the same instances, user-oriented responses, a judge's ratings, the
comparison, and a re-run that resumes without training or generating again.
"""

from __future__ import annotations

import json
import shutil

import pytest
from paths import SHARED
from run_cli import SMALL, cli

pytest.importorskip("peft")

pytestmark = pytest.mark.slow

SUPERNI = SHARED / "data" / "superni-test" / "superni_test_en.jsonl"
USER_ORIENTED = SHARED / "data" / "self-instruct-original" / "user_oriented_instructions.jsonl"
TASKS = "task641_esnli_classification,task670_ambigqa_question_generation"


@pytest.mark.skipif(not SUPERNI.is_file(), reason="the shared SuperNI test set is missing")
def test_loop_end_to_end(reference_run, tmp_path):
    run, _ = reference_run
    out = tmp_path / "loop"
    shutil.copytree(run, out / "round-1" / "data")
    args = ["loop", "--out", str(out), *SMALL, "--seeds-only-arm",
            "--max-steps", "2", "--batch-size", "2", "--max-seq-len", "256",
            "--superni", str(SUPERNI), "--superni-max-per-task", "1", "--superni-tasks", TASKS,
            "--user-oriented", str(USER_ORIENTED), "--user-oriented-limit", "1",
            "--user-oriented-max-tokens", "48",
            "--judge", "smollm2",
            # the reference run was made without decontamination; resuming it needs the same
            "--no-decontaminate-eval"]
    first = cli(*args, timeout=1500)

    manifest = json.loads((out / "loop.json").read_text())
    assert set(manifest["arms"]) == {"base", "round-1", "seeds-only"}
    for arm in ("round-1", "seeds-only"):
        served = manifest["arms"][arm]
        assert served["model"] == "smollm2" and served["lora"].endswith("adapter.gguf")
        finetune = json.loads((out / arm / "finetune" / "finetune.json").read_text())
        assert finetune["status"] == "done" and finetune["steps"] == 2
    # every arm answered the same SuperNI instances, and the comparison has them all
    comparison = json.loads((out / "comparison.json").read_text())
    assert comparison["instances"] == 2 and comparison["tasks"] == 2
    assert [a["name"] for a in comparison["arms"]] == ["base", "seeds-only", "round-1",
                                                        "copy-input"]
    assert all(a["missing"] == 0 for a in comparison["arms"])
    for arm in ("base", "round-1", "seeds-only"):
        ids = [json.loads(line)["id"] for line in
               (out / "eval" / arm / "superni" / "predictions.jsonl").read_text().splitlines()]
        assert len(ids) == 2
    assert "| round-1 |" in (out / "comparison.md").read_text()
    ratings = (out / "eval" / "judge" / "ratings.jsonl").read_text().splitlines()
    assert len(ratings) == 3  # one user-oriented task, three arms
    # the reference run was resumed as round 1's data, not regenerated
    data_manifest = json.loads((out / "round-1" / "data" / "manifest.json").read_text())
    assert data_manifest["status"] == "finished"
    assert "round-1 generate" in first.stdout

    # a re-run resumes everything: no training step and no new prediction
    adapter = (out / "round-1" / "finetune" / "adapter.gguf").read_bytes()
    second = cli(*args, timeout=900)
    assert "| base |" in second.stdout
    assert (out / "round-1" / "finetune" / "adapter.gguf").read_bytes() == adapter
    assert json.loads((out / "comparison.json").read_text()) == comparison


def test_loop_refuses_a_server_model(tmp_path):
    proc = cli("loop", "--out", str(tmp_path / "x"), "--base-url", "http://127.0.0.1:9",
               "--model", "m", check=False)
    assert proc.returncode == 2
    assert "local model" in proc.stderr and "Traceback" not in proc.stderr
