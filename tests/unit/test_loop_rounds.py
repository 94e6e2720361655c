"""The loop's round 0 (a seed fine-tune writes the instances) and training with the seeds:
the orchestration alone, with generation and fine-tuning replaced by recorders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfinstruct import loop
from selfinstruct.errors import UserError
from selfinstruct.loop import LoopOptions, ServedModel, run_config, run_loop


@pytest.fixture()
def recorded(monkeypatch, tmp_path):
    calls = {"finetune": [], "generate": [], "mixed": []}

    def fake_finetune(options, data, arm_dir, seed=None, mixed=False):
        seed = options.seed if seed is None else seed
        calls["mixed"].append(mixed)
        calls["finetune"].append((str(data), arm_dir.name) if seed == options.seed
                                 else (str(data), arm_dir.name, seed))
        out = loop.finetune_dir(arm_dir, seed, options)
        return ServedModel(options.model, str(out / "adapter.gguf"))

    def fake_generate(options, round_no, served, reporter, answer_lora=None):
        calls["generate"].append((round_no, answer_lora))
        path = tmp_path / f"round-{round_no}.json"
        path.write_text(json.dumps([{"instruction": f"made in round {round_no}",
                                     "input": "", "output": "x"}]))
        return path

    monkeypatch.setattr(loop, "_finetune", fake_finetune)
    monkeypatch.setattr(loop, "_generate", fake_generate)
    return calls


def test_round_zero_answers_with_the_seed_finetune_and_trains_with_seeds(recorded, tmp_path):
    result = run_loop(LoopOptions(out=str(tmp_path / "loop"), model="gemma-3-270m",
                                  round_zero=True, train_with_seeds=True,
                                  seeds_only_arm=True))
    seeds_adapter = str(tmp_path / "loop" / "seeds-only" / "finetune" / "adapter.gguf")
    assert recorded["generate"] == [(1, seeds_adapter)]
    assert recorded["finetune"][0][1] == "seeds-only"  # round 0 comes first
    train = recorded["finetune"][1][0]
    rows = json.loads(Path(train).read_text())
    assert rows[-1]["instruction"] == "made in round 1" and len(rows) == 234  # 233 seed rows
    assert set(result.arms) == {"base", "seeds-only", "seeds+round-1"}
    steps = [s["step"] for s in result.steps]
    assert steps[:2] == ["seeds-only finetune", "round-1 generate"]


def test_the_training_mix_goes_to_the_rounds_not_to_seeds_only(recorded, tmp_path):
    result = run_loop(LoopOptions(out=str(tmp_path / "loop"), model="gemma-3-270m", seed=1,
                                  round_zero=True, seeds_only_arm=True, seeds_upsample=3,
                                  synthetic_tag="[machine-written]",
                                  extra_finetune_seeds=[2]))
    # the round trains on its own export: the fine-tune adds the seeds 3 times and the tag
    assert recorded["finetune"][1] == (str(tmp_path / "round-1.json"), "round-1")
    assert recorded["mixed"] == [False, True, False, True]
    assert "seeds+round-1" in result.arms and "seeds+round-1@2" in result.arms


def test_without_round_zero_the_model_answers_and_trains_on_its_data_alone(recorded, tmp_path):
    result = run_loop(LoopOptions(out=str(tmp_path / "loop"), model="smollm2"))
    assert recorded["generate"] == [(1, None)]
    assert recorded["finetune"] == [(str(tmp_path / "round-1.json"), "round-1")]
    assert set(result.arms) == {"base", "round-1"}


def test_extra_finetune_seeds_train_every_fine_tuned_arm_again(recorded, tmp_path):
    result = run_loop(LoopOptions(out=str(tmp_path / "loop"), model="gemma-3-270m", seed=1,
                                  round_zero=True, train_with_seeds=True,
                                  seeds_only_arm=True, extra_finetune_seeds=[2, 3]))
    seeds_file, round_file = recorded["finetune"][0][0], recorded["finetune"][1][0]
    assert recorded["finetune"][2:] == [
        (seeds_file, "seeds-only", 2), (round_file, "round-1", 2),
        (seeds_file, "seeds-only", 3), (round_file, "round-1", 3)]
    # the data is made once, by the seed-1 fine-tune of the seed tasks
    seeds_adapter = str(tmp_path / "loop" / "seeds-only" / "finetune" / "adapter.gguf")
    assert recorded["generate"] == [(1, seeds_adapter)]
    assert list(result.arms) == ["base", "seeds-only", "seeds+round-1", "seeds-only@2",
                                 "seeds+round-1@2", "seeds-only@3", "seeds+round-1@3"]
    assert result.arms["seeds+round-1@3"].lora == str(
        tmp_path / "loop" / "round-1" / "finetune-seed-3" / "adapter.gguf")
    assert [s["step"] for s in result.steps][-1] == "seeds+round-1@3 finetune"


@pytest.mark.parametrize("extra", [[1, 2], [2, 2]])
def test_extra_finetune_seeds_are_new_and_distinct(tmp_path, extra):
    with pytest.raises(UserError, match="--extra-finetune-seeds"):
        LoopOptions(out=str(tmp_path / "x"), seed=1, extra_finetune_seeds=extra).validate()


def test_round_zero_needs_an_adapter(monkeypatch, tmp_path):
    monkeypatch.setattr(loop, "_finetune", lambda *a: ServedModel("transformers:x"))
    with pytest.raises(UserError, match="GGUF"):
        run_loop(LoopOptions(out=str(tmp_path / "loop"), model="transformers:x",
                             round_zero=True))


def test_run_config_carries_the_answering_adapter():
    options = LoopOptions(out="x", model="gemma-3-270m", run_overrides={"recipe": "refined"})
    config = run_config(options, 1, ServedModel("gemma-3-270m"), "a.gguf")
    assert config.answer_lora == "a.gguf" and config.recipe == "refined"
    assert run_config(options, 1, ServedModel("gemma-3-270m")).answer_lora is None


def test_user_oriented_answers_are_capped_at_the_loops_max_tokens(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from selfinstruct.evaluation import user_oriented

    data = tmp_path / "uo.jsonl"
    data.write_text(json.dumps({"id": "u1", "instruction": "Say hi.", "instances": [
        {"input": "", "output": "hi"}]}) + "\n")
    seen = {}

    def fake_run(backend, model, name, path, items, out, *, max_tokens, reporter):
        seen.update(name=name, items=len(items), max_tokens=max_tokens)
        return SimpleNamespace(path=Path(out) / "x.jsonl")

    monkeypatch.setattr(loop, "_open", lambda served, n_ctx: (
        None, SimpleNamespace(as_dict=dict)))
    monkeypatch.setattr(user_oriented, "run_user_oriented", fake_run)
    options = LoopOptions(out=str(tmp_path / "loop"), model="smollm2",
                          user_oriented=str(data), user_oriented_max_tokens=48)
    loop._evaluate_user_oriented(options, "base", ServedModel("smollm2"), None)
    assert seen == {"name": "base", "items": 1, "max_tokens": 48}
    with pytest.raises(UserError, match="--user-oriented-max-tokens"):
        LoopOptions(out=str(tmp_path / "x"), model="smollm2",
                    user_oriented_max_tokens=0).validate()
