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
