"""The default recipe (``refined``) on the real embedded model, end to end: the calibrated
classification rule fitted, recorded in the manifest and on every record, and the seed
tasks' scores shared between runs of the model, so a second run pays nothing for them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from run_cli import cli
from short_prompts import short_prompts

from selfinstruct.prompts import PromptTemplates
from selfinstruct.rules.classification import held_out_tasks, scoring_templates
from selfinstruct.seeds import load_seeds

pytestmark = pytest.mark.slow


def _labelled_seeds(path: Path, templates: PromptTemplates) -> int:
    """4 classification and 6 other seed tasks that the prompt does not show: the fewest
    the calibrated rule is fitted on."""
    tasks = held_out_tasks(load_seeds(None), templates)
    chosen = ([t for t in tasks if t.is_classification][:4]
              + [t for t in tasks if not t.is_classification][:6])
    path.write_text("".join(json.dumps(t.to_json()) + "\n" for t in chosen))
    return len(chosen)


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_default_recipe_calibrates_once_per_model(tmp_path, monkeypatch):
    prompts = short_prompts(tmp_path / "prompts")
    templates = PromptTemplates.load(str(prompts))
    seeds = tmp_path / "seeds.jsonl"
    scored = _labelled_seeds(seeds, templates) * len(scoring_templates(templates))
    env = {"SELFINSTRUCT_HOME": str(tmp_path / "home")}
    args = ["--model", "smollm2", "--seeds", str(seeds), "--prompts", str(prompts),
            "--quiet", "--bootstrap-max-tokens", "256",
            "--instance-max-tokens-classification", "64",
            "--instance-max-tokens-generation", "64"]
    first, second = tmp_path / "first", tmp_path / "second"
    cli("run", "--out", str(first), "--seed", "3", "--num-instructions", "3", *args, env=env)
    # another run of the model, as far as its classification (where the calibration is)
    cli("generate", "--out", str(second), "--seed", "4", "--num-instructions", "1", *args,
        env=env)
    cli("classify", str(second), "--quiet", env=env)

    manifests = [json.loads((run / "manifest.json").read_text()) for run in (first, second)]
    assert [m["config"]["recipe"] for m in manifests] == ["refined", "refined"]
    calibration = manifests[0]["classification_calibration"]
    assert calibration["tasks"] == 10 and calibration["classification_tasks"] == 4
    assert calibration["prompts"] == len(scoring_templates(templates))
    # the first run scored the seed tasks; the second was answered from the shared cache
    # and refitted the same calibration
    sent = [m["usage"]["calibrate"]["requests"] - m["usage"]["calibrate"]["cached"]
            for m in manifests]
    assert sent == [scored, 0]
    assert manifests[1]["classification_calibration"] == calibration
    assert (tmp_path / "home" / "shared-cache.sqlite").is_file()
    for run, made in ((first, 3), (second, 1)):
        labels = _records(run / "classifications.jsonl")
        assert len(labels) == made
        for record in labels:
            assert record["is_classification"] == (record["margin"] > calibration["threshold"])
            assert record["threshold"] == calibration["threshold"]
            assert len(record["margins"]) == calibration["prompts"]
    # the preview on the real model is the beginning of the first run: its instructions,
    # calibrated labels (the seed scores from the shared cache, which it never writes) and
    # instances are the run's first ones
    from selfinstruct.run.config import RunConfig
    from selfinstruct.run.preview import run_preview

    monkeypatch.setenv("SELFINSTRUCT_HOME", env["SELFINSTRUCT_HOME"])
    cache = tmp_path / "home" / "shared-cache.sqlite"
    before = cache.read_bytes()
    preview = run_preview(RunConfig(
        model="smollm2", seeds=str(seeds), prompts=str(prompts), seed=3, num_instructions=3,
        bootstrap_max_tokens=256, instance_max_tokens_classification=64,
        instance_max_tokens_generation=64), tasks=2)
    kept = _records(first / "instructions.jsonl")[:2]
    labels = {r["id"]: r["is_classification"] for r in _records(first / "classifications.jsonl")}
    tasks = {t["id"]: [(i["input"], i["output"]) for i in t["instances"]]
             for t in _records(first / "tasks.jsonl")}
    assert [(t.id, t.instruction) for t in preview.tasks] == [(r["id"], r["instruction"])
                                                              for r in kept]
    assert [t.is_classification for t in preview.tasks] == [labels[r["id"]] for r in kept]
    assert [[(i.input, i.output) for i in t.instances] for t in preview.tasks] == \
        [tasks.get(r["id"], []) for r in kept]
    assert preview.classification["rule"] == "calibrated"
    assert cache.read_bytes() == before
