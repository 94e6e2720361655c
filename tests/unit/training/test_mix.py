"""The training mix: seeds upsampled in their own templates, machine-written examples
tagged, and a digest that names the mix."""

import json

from selfinstruct.prompts import PromptTemplates
from selfinstruct.records import Instance, Task
from selfinstruct.training.data import read_training_data
from selfinstruct.training.mix import mix, tag_prompt

SEEDS = [Task("seed_1", "Add the numbers.", [Instance("2 and 3", "5")]),
         Task("seed_2", "Name a color.", [Instance("", "Blue")])]


def _data(tmp_path):
    path = tmp_path / "run.alpaca.json"
    path.write_text(json.dumps([{"instruction": "Reverse the word.", "input": "cat",
                                 "output": "tac"}]))
    return read_training_data(path, PromptTemplates.load(), 1)


def test_seeds_upsampled_and_synthetic_tagged(tmp_path):
    data = _data(tmp_path)
    mixed = mix(data, SEEDS, 3, "[machine-written]", PromptTemplates.load(), 1)
    assert len(mixed.examples) == 1 + 3 * 2
    first = mixed.examples[0]
    assert first.prompt == tag_prompt("[machine-written]", data.examples[0].prompt)
    assert first.prompt.startswith("[machine-written]\n") and first.completion.strip().startswith("tac")
    seeds = mixed.examples[1:]
    assert not any(e.prompt.startswith("[machine-written]") for e in seeds)
    # every copy of a seed instance holds its instruction and output...
    adds = [e for e in seeds if "Add the numbers." in e.prompt]
    assert len(adds) == 3 and all(e.completion.strip().startswith("5") for e in adds)
    # ...and the mix has its own digest, so a fine-tune on it is not the untagged one
    assert mixed.sha256 != data.sha256
    assert mix(data, SEEDS, 3, None, PromptTemplates.load(), 1).sha256 != mixed.sha256


def test_no_mix_is_the_data_itself(tmp_path):
    data = _data(tmp_path)
    assert mix(data, SEEDS, 0, None, PromptTemplates.load(), 1) is data


def test_the_mix_options_are_checked_with_one_line(tmp_path, capsys):
    from selfinstruct.cli import main

    data = _data(tmp_path).path
    for args, expected in ((["--with-seeds", "-1"], "--with-seeds: must be between 0 and 100"),
                           (["--synthetic-tag", " "], "--synthetic-tag: the tag is empty"),
                           (["--with-seeds", "1", "--seeds", str(tmp_path / "none.jsonl")],
                            "--seeds: file not found")):
        code = main(["finetune", "--data", str(data), "--out", str(tmp_path / "ft"), *args])
        err = capsys.readouterr().err
        assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "ft").exists()
