"""Parsers on real model output (fixtures) and on the tricky cases of the original code."""

import json

from paths import FIXTURES

from selfinstruct.records import Instance
from selfinstruct.rules.parsing import (
    parse_classification_instances,
    parse_generation_instances,
    split_instructions,
)

REAL = json.loads((FIXTURES / "smollm2_completions.json").read_text())


def test_split_real_bootstrap_completion():
    pieces = split_instructions(REAL["bootstrap"][0])
    assert pieces[0] == "Write a song about the power of nature."
    assert len(pieces) == 7
    assert all(not p[0].isdigit() for p in pieces)


def test_split_collapses_whitespace_and_capitalizes_like_the_original():
    text = "  give me   three\tideas for NASA\n10. list   fruits\n11 . x\n\n"
    # str.capitalize lowercases the rest: the original's behaviour, kept on purpose.
    assert split_instructions(text) == ["Give me three ideas for nasa", "List fruits", "X"]


def test_split_ignores_empty_pieces():
    assert split_instructions("\n10. \n11. ") == []


def test_generation_examples_real_fixture():
    parsed = parse_generation_instances(REAL["generation_instances"][0]["text"], truncated=False)
    assert parsed.instances == [Instance("", "24 / 2 = 12")]


def test_generation_examples_blocks_and_truncation():
    text = ("Example 1\nSentence: I love it.\nOutput: positive\n"
            "Example 2\nInput: It is bad.\nOutput: negative\nExample 3\nSentence: It is ok")
    parsed = parse_generation_instances(text, truncated=True)
    assert parsed.instances == [Instance("Sentence: I love it.", "positive"),
                                Instance("It is bad.", "negative")]
    assert parsed.dropped == [(Instance("", "Sentence: It is ok"), "truncated")]


def test_generation_output_keeps_first_pair_only():
    parsed = parse_generation_instances("Input: a\nOutput: b\nInput: c\nOutput: d", False)
    assert parsed.instances == [Instance("a", "b")]


def test_generation_unparseable():
    parsed = parse_generation_instances("just some text", truncated=False)
    assert parsed.instances == [] and parsed.dropped == [(None, "unparseable")]


def test_classification_blocks_real_fixture():
    record = REAL["classification_instances"][0]
    parsed = parse_classification_instances(record["text"], record["finish_reason"] == "length")
    assert parsed.instances, record["text"]
    assert all(i.output for i in parsed.instances)


def test_classification_label_without_input():
    parsed = parse_classification_instances("Class label: Red\nClass label: Blue", False)
    assert parsed.instances == [Instance("", "Red"), Instance("", "Blue")]


def test_classification_without_label_marker():
    parsed = parse_classification_instances("Positive\nNegative", False)
    assert parsed.dropped == [(None, "unparseable")]
