"""Each of the paper's rules, on both sides of its edge."""

import pytest

from selfinstruct.records import Instance
from selfinstruct.rules.filters import instance_reject_reason, instruction_reject_reason
from selfinstruct.stages.postprocess import filter_task_instances


@pytest.mark.parametrize("text,reason", [
    ("Sort the list", "too_short"),                          # 3 words
    ("Sort the given list", None),                           # 4 words
    (" ".join(["word"] * 150), None),
    (" ".join(["word"] * 151), "too_long"),
    ("Describe the image of a cat", "blacklisted"),
    ("Describe the IMAGES of cats", "blacklisted"),
    ("Describe the imagery of poems", None),                 # whole words only
    ("Tell me how to go to the station", "blacklisted"),
    ("Plot the numbers on a line", "blacklisted"),
    ("Write a program that sorts numbers", "write_a_program"),
    ("Write a poem that sorts numbers", None),
    ("- List three colours of the flag", "punctuation"),
    ("\"Quote\" the following short sentence", "punctuation"),
    ("Élaborate on the following topic please", "non_ascii"),
])
def test_instruction_rules(text, reason):
    assert instruction_reject_reason(text) == reason


@pytest.mark.parametrize("instance,reason", [
    (Instance("a", "a"), "input_equals_output"),
    (Instance("a", ""), "empty_output"),
    (Instance("Sentence:", "x"), "ends_with_colon"),
    (Instance("x", "The answer is:"), "ends_with_colon"),
    (Instance("", "fine"), None),
])
def test_instance_rules(instance, reason):
    assert instance_reject_reason(instance) == reason


def test_same_input_different_output_drops_the_task():
    kept, _, task_reason = filter_task_instances(
        [Instance("q", "a"), Instance("q", "b")])
    assert kept == [] and task_reason == "same_input_different_output"


def test_empty_inputs_may_have_different_outputs():
    kept, _, task_reason = filter_task_instances([Instance("", "a"), Instance("", "b")])
    assert task_reason is None and kept == [Instance("", "a"), Instance("", "b")]


def test_duplicates_keep_first_in_order():
    kept, dropped, _ = filter_task_instances(
        [Instance("x", "1"), Instance("y", "2"), Instance("x", "1")])
    assert kept == [Instance("x", "1"), Instance("y", "2")]
    assert dropped == [(Instance("x", "1"), "duplicate")]
