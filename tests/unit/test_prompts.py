"""Prompts built with the original templates must be byte-identical to the original code's.

The reference strings below are assembled the way the original implementation does it
(described in ../shared/.../prompts/README.md), independently of our builders.
"""

import json
import random
import re

import pytest
from paths import require_shared

from selfinstruct.prompts import (
    PromptTemplates,
    bootstrap_prompt,
    classification_prompt,
    finetuning_example,
    instance_prompt,
)
from selfinstruct.seeds import load_seeds


@pytest.fixture(scope="module")
def original():
    folder = require_shared() / "prompts"
    return PromptTemplates.load(folder), folder


def _raw(folder, name):
    with open(folder / name, encoding="utf-8", newline="") as handle:
        return handle.read()


def test_bootstrap_prompt_is_byte_identical(original):
    templates, folder = original
    seeds = [t.instruction for t in load_seeds(folder.parent / "seed_tasks.jsonl")]
    rng = random.Random(0)
    for _ in range(50):
        chosen = rng.sample(seeds, 8)
        chosen[0] = chosen[0] + "  with   extra\nspace:: "
        expected = _raw(folder, "instruction_gen_header.txt")
        for k, inst in enumerate(chosen):
            inst = re.sub(r"\s+", " ", inst).strip().rstrip(":")
            expected += f"{k + 1}. {inst}\n"
        expected += "9."
        assert bootstrap_prompt(templates, chosen) == expected


def test_bootstrap_prompt_classification_header(original):
    templates, folder = original
    prompt = bootstrap_prompt(templates, ["A b c d"], classification=True)
    assert prompt == _raw(folder, "instruction_gen_header_classification.txt") + "1. A b c d\n2."


def test_classification_prompt_is_byte_identical(original):
    templates, folder = original
    expected = (_raw(folder, "clf_task_identification_template_1.txt") + " "
                + "Find the odd one out." + "\n" + "Is it classification?")
    assert classification_prompt(templates, "  Find the odd one out. \n") == expected


@pytest.mark.parametrize("clf,name", [(True, "instance_gen_output_first_for_clf.txt"),
                                      (False, "instance_gen_input_first_for_gen.txt")])
def test_instance_prompt_is_byte_identical(original, clf, name):
    templates, folder = original
    expected = _raw(folder, name) + " " + "Sort the list." + "\n"
    assert instance_prompt(templates, " Sort the list.", clf) == expected


def test_original_templates_keep_their_quirks(original):
    templates, _ = original
    assert "Task:  Does the information" in templates.instance_output_first
    assert "Input 2 - List:" in templates.instance_input_first
    assert templates.classification.endswith("Task:")


def test_finetuning_formats_match_the_original_json(original):
    templates, folder = original
    data = json.loads((folder / "finetuning_and_eval_templates.json").read_text())
    rng = random.Random(1)
    prompt, completion = finetuning_example(templates, " Add. ", " 1, 2 ", " 3 ", rng)
    pairs = [(p.format(instruction="Add.", input="1, 2"), c.format(output="3"))
             for p, c in data["finetuning_templates_with_input"]]
    assert (prompt, completion) in pairs
    assert completion.endswith("<|endoftext|>")


def test_bundled_templates_load_and_differ_from_the_original(original):
    ours = PromptTemplates.load()
    theirs, _ = original
    assert ours.classification.endswith("Task:")
    assert ours.classification != theirs.classification
    assert ours.instance_input_first.count("\n\nTask:") == theirs.instance_input_first.count("\n\nTask:")


def test_missing_template_file_is_a_user_error(tmp_path):
    from selfinstruct.errors import UserError

    with pytest.raises(UserError, match="instruction_gen_header.txt is missing"):
        PromptTemplates.load(tmp_path)
