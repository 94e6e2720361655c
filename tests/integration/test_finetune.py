"""``selfinstruct finetune`` for real: LoRA on the bundled SmolLM2, on CPU, through the CLI.

One short training run (12 steps, a high learning rate, 16 seed tasks) is shared by the
tests of this module, since loading the model from GGUF dominates the time. A second
run of the same command with a higher ``--max-steps`` must continue from its checkpoint.
"""

from __future__ import annotations

import json

import pytest
from run_cli import cli

from selfinstruct.seeds import load_seeds

pytestmark = pytest.mark.slow

FIRST_STEPS = 12
MORE_STEPS = 14
TRAIN_ARGS = ["--lr", "1e-3", "--max-seq-len", "256", "--batch-size", "4",
              "--logging-steps", "2", "--save-steps", "6", "--quiet"]
LORA_TARGETS = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def short_seed_rows(count: int = 16) -> list[dict]:
    """Seed tasks with short answers, so a CPU step stays a few seconds."""
    rows = [{"instruction": t.instruction, "input": t.instances[0].input,
             "output": t.instances[0].output} for t in load_seeds()]
    rows = [r for r in rows if len(r["instruction"] + r["input"] + r["output"]) >= 60]
    return sorted(rows, key=lambda r: len(r["instruction"] + r["input"] + r["output"]))[:count]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("finetune")
    data = base / "alpaca.json"
    data.write_text(json.dumps(short_seed_rows(), indent=2), encoding="utf-8")
    out = base / "out"
    env = {"SELFINSTRUCT_HOME": str(tmp_path_factory.getbasetemp() / "selfinstruct-home")}
    command = ["finetune", "--data", str(data), "--out", str(out), *TRAIN_ARGS]
    proc = cli(*command, "--max-steps", str(FIRST_STEPS), env=env)
    manifest = json.loads((out / "finetune.json").read_text(encoding="utf-8"))
    return {"data": data, "out": out, "env": env, "command": command, "proc": proc,
            "manifest": manifest}


def test_loss_goes_down_and_the_manifest_says_what_was_done(trained):
    manifest = trained["manifest"]
    losses = [entry["loss"] for entry in manifest["train_loss"]]
    assert [entry["step"] for entry in manifest["train_loss"]] == list(range(2, 13, 2))
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2, losses
    assert manifest["status"] == "done" and manifest["steps"] == FIRST_STEPS
    assert manifest["data"]["format"] == "alpaca" and manifest["data"]["examples"] == 16
    assert manifest["data"]["truncated"] == 0 and manifest["data"]["dropped"] == 0
    assert manifest["base"]["spec"] == "smollm2"
    assert manifest["base"]["resolved"].endswith(".gguf")
    assert manifest["options"]["learning_rate"] == 1e-3 and manifest["method"] == "lora"
    assert manifest["device"] == "cpu" and manifest["versions"]["peft"]
    assert f"trained {FIRST_STEPS} steps" in trained["proc"].stdout


def test_adapter_covers_every_block_projection_and_nothing_else(trained):
    config = json.loads((trained["out"] / "adapter" / "adapter_config.json").read_text())
    assert set(config["target_modules"]) == LORA_TARGETS
    assert (trained["out"] / "adapter" / "adapter_model.safetensors").is_file()


def test_merged_model_reloads_and_generates(trained):
    from selfinstruct.backends.hf_models import load_causal_lm

    model, tokenizer = load_causal_lm(str(trained["out"] / "merged"), device="cpu")
    prompt = "Give me a word that rhymes with cat.\nOutput:"
    ids = tokenizer(prompt, return_tensors="pt")
    generated = model.generate(**ids, max_new_tokens=16, do_sample=False)
    text = tokenizer.decode(generated[0][ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert text.strip()


def test_labels_on_the_real_tokenizer_are_the_completion_and_eos(trained):
    from transformers import AutoTokenizer

    from selfinstruct.training.data import Example
    from selfinstruct.training.tokenize import IGNORE_INDEX, encode_examples

    tokenizer = AutoTokenizer.from_pretrained(str(trained["out"] / "merged"))
    encoded = encode_examples([Example("Name a fruit.\nOutput:", " A pear.<|endoftext|>"),
                               Example("Name a fruit.", "A pear.", chat=True)], tokenizer, 256)
    for feature in encoded.features:
        learned = [t for t, label in zip(feature["input_ids"], feature["labels"])
                   if label != IGNORE_INDEX]
        assert learned == [t for t in feature["labels"] if t != IGNORE_INDEX]
        assert tokenizer.decode(learned).strip() == f"A pear.{tokenizer.eos_token}"
    chat_text = tokenizer.decode(encoded.features[1]["input_ids"])
    assert "<|im_start|>user\nName a fruit.<|im_end|>" in chat_text  # SmolLM2's chat template


def test_other_options_into_the_same_directory_are_refused(trained):
    proc = cli(*trained["command"][:-1], "--lr", "5e-4", "--quiet", env=trained["env"],
               check=False)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert "learning_rate: 0.001 -> 0.0005" in proc.stderr and "--force-new" in proc.stderr


@pytest.fixture(scope="module")
def resumed(trained):
    """The fine-tune extended to MORE_STEPS, once, whichever test asks first (the tests
    that need it name it, so any order works)."""
    out = trained["out"]
    # mark the history stored in the last checkpoint: only a resumed run can report it
    state_path = out / "checkpoints" / f"checkpoint-{FIRST_STEPS}" / "trainer_state.json"
    state = json.loads(state_path.read_text())
    state["log_history"][0]["loss"] = 123.0
    state_path.write_text(json.dumps(state))
    proc = cli(*trained["command"], "--max-steps", str(MORE_STEPS), env=trained["env"])
    return {**trained, "proc": proc}


def test_rerun_with_more_steps_resumes_from_the_checkpoint(resumed):
    out, proc = resumed["out"], resumed["proc"]
    manifest = json.loads((out / "finetune.json").read_text(encoding="utf-8"))
    assert manifest["steps"] == MORE_STEPS and manifest["resumed_from_step"] == FIRST_STEPS
    assert manifest["train_loss"][0] == {"step": 2, "loss": 123.0}
    assert [e["step"] for e in manifest["train_loss"]] == list(range(2, MORE_STEPS + 1, 2))
    assert f"resumed from step {FIRST_STEPS}" in proc.stdout
    assert (out / "checkpoints" / f"checkpoint-{MORE_STEPS}").is_dir()


def test_fine_tuned_model_serves_on_both_backends(trained):
    """The merged weights on the transformers backend and the GGUF adapter on the embedded
    llama.cpp backend are the same fine-tuned model: on a training prompt both answer with
    the same first words, and the adapter changes what the base model says."""
    from selfinstruct.backends.base import Request, Sampling
    from selfinstruct.backends.registry import open_backend
    from selfinstruct.prompts import PromptTemplates, finetuning_example

    out = trained["out"]
    manifest = json.loads((out / "finetune.json").read_text(encoding="utf-8"))
    assert manifest["adapter_gguf"] == str(out / "adapter.gguf")
    row = json.loads(trained["data"].read_text(encoding="utf-8"))[0]
    prompt, _ = finetuning_example(PromptTemplates.load(), row["instruction"], row["input"],
                                   row["output"], __import__("random").Random(0))
    request = Request(prompt, Sampling(max_tokens=12))
    merged_backend = open_backend(f"transformers:{out / 'merged'}")[0]
    adapted_backend = open_backend("smollm2", lora=str(out / "adapter.gguf"))[0]
    [merged] = merged_backend.complete([request])
    [adapted] = adapted_backend.complete([request])
    [base] = open_backend("smollm2")[0].complete([request])
    first_words = [c.text.split()[:2] for c in (merged, adapted)]
    assert first_words[0] and first_words[0] == first_words[1], (merged.text, adapted.text)
    assert adapted.text != base.text
    # scoring (the calibrated classifier's request) agrees across the two backends, up to
    # the quantization of the llama.cpp weights
    from selfinstruct.rules.classification import scoring_request

    scoring = scoring_request(PromptTemplates.load().classification, row["instruction"])
    [torch_scores] = merged_backend.complete([scoring])
    [cpp_scores] = adapted_backend.complete([scoring])
    for choice, value in torch_scores.choice_logprobs.items():
        assert value < 0
        assert abs(value - cpp_scores.choice_logprobs[choice]) < 1.0, (
            torch_scores.choice_logprobs, cpp_scores.choice_logprobs)


def test_rerun_of_a_finished_fine_tune_does_nothing(resumed):
    """After the resume: the same command with the same schedule loads no model."""
    trained = resumed
    out = trained["out"]
    before = (out / "finetune.json").read_bytes()
    proc = cli(*trained["command"], "--max-steps", str(MORE_STEPS), env=trained["env"])
    assert "already finished" in proc.stdout
    assert (out / "finetune.json").read_bytes() == before
