"""Demonstration leaks: instances that copy an example of their own instance prompt."""

from __future__ import annotations

import dataclasses
import json

import pytest
from paths import ORIGINAL, require_shared

from selfinstruct.prompts import PromptTemplates
from selfinstruct.records import Instance
from selfinstruct.rules.leaks import LeakDetector, demonstrations
from selfinstruct.run.config import RunConfig
from selfinstruct.run.context import RunContext
from selfinstruct.run.rundir import RunDir
from selfinstruct.stages.postprocess import postprocess, screen_instances

INPUT_FIRST = """Write examples.

Task: Write a polite message asking my landlord to fix a leaking faucet.
Output:
Hi Mr. Lopez,
The kitchen faucet in apartment 4B has started leaking. Could you please repair it?
Thank you,
Dana

Task: Convert the measurement to metric units.
Example 1
Measurement: 5 miles
Output: 5 miles is about 8.05 kilometers.
Example 2
Measurement: 12 ounces
Output: 12 ounces is about 340 grams.

Task:"""

OUTPUT_FIRST = """Write an input for each label.

Task: Decide whether the sentiment of this product review is Positive or Negative.
Class label: Positive
Review: Absolutely love this backpack. My laptop fits perfectly.
Class label: Negative
Review: I returned these headphones after two days.

Task:"""

LETTER = ("Hi Mr. Lopez,\nThe kitchen faucet in apartment 4B has started leaking. Could you "
          "please repair it?\nThank you,\nDana")


@pytest.fixture(scope="module")
def templates():
    return dataclasses.replace(PromptTemplates.load(), instance_input_first=INPUT_FIRST,
                               instance_output_first=OUTPUT_FIRST)


def test_demonstrations_are_parsed_with_the_instance_parsers():
    found = demonstrations(INPUT_FIRST, classification=False)
    assert [(d.task[:13], d.field, d.text[:13]) for d in found if d.field == "instruction"] == [
        ("Write a polit", "instruction", "Write a polit"),
        ("Convert the m", "instruction", "Convert the m"),
    ]
    found = [d for d in found if d.field != "instruction"]
    assert [(d.task[:13], d.field, d.text) for d in found] == [
        ("Write a polit", "output", LETTER),
        ("Convert the m", "input", "Measurement: 5 miles"),
        ("Convert the m", "output", "5 miles is about 8.05 kilometers."),
        ("Convert the m", "input", "Measurement: 12 ounces"),
        ("Convert the m", "output", "12 ounces is about 340 grams."),
    ]
    labels = demonstrations(OUTPUT_FIRST, classification=True)
    assert [(d.field, d.text) for d in labels if d.field != "instruction"] == [
        ("input", "Review: Absolutely love this backpack. My laptop fits perfectly."),
        ("output", "Positive"),
        ("input", "Review: I returned these headphones after two days."),
        ("output", "Negative"),
    ]


def test_a_copied_letter_is_a_leak_naming_the_demonstration(templates):
    detector = LeakDetector(templates)
    # the model changed the signature: 19 of 20 tokens in order, ROUGE-L 0.95
    copied = Instance("", LETTER.replace("Dana", "Sam"))
    reason, detail = detector.leak(copied, classification=False)
    assert reason == "demonstration_leak"
    assert detail.startswith("output has ROUGE-L 0.9")
    assert ('the output of the input-first demonstration "Write a polite message asking my '
            'landlord to fix a leaking faucet."') in detail
    # its own letter is no leak
    assert detector.leak(Instance("", "Dear Ms. Park, the heating in my flat has failed "
                                      "since Monday. Please send someone."), False) is None


def test_short_texts_and_the_other_template_are_not_compared(templates):
    detector = LeakDetector(templates)
    # a label shared with a demonstration is not a leak (fewer than 4 tokens)
    assert detector.leak(Instance("Review: The strap broke on day one.", "Positive"),
                         True) is None
    # "Measurement: 5 miles" (3 tokens) is too short to be indexed or checked
    assert detector.leak(Instance("Measurement: 5 miles", "8 km"), False) is None
    # an input copied from the output-first template leaks in a classification task only
    copied = Instance("Review: Absolutely love this backpack. My laptop fits perfectly.", "Yes")
    assert detector.leak(copied, True)[1].startswith("input has ROUGE-L 1.0000 with the "
                                                     "input of the output-first")
    assert detector.leak(copied, False) is None


def test_screening_keeps_the_papers_reasons_first(templates):
    detector = LeakDetector(templates)
    leak = Instance("", LETTER)
    same = Instance(LETTER, LETTER)  # input == output: the paper's rule names it
    fine = Instance("", "Roses are red.")
    kept, dropped = screen_instances([leak, same, fine], False, [detector.leak])
    assert kept == [same, fine]
    assert [(i, r) for i, r, _ in dropped] == [(leak, "demonstration_leak")]
    assert screen_instances([leak], False, []) == ([leak], [])


def _ctx(tmp_path, templates, **config):
    run = RunDir(tmp_path / "run")
    run.create()
    records = [
        {"id": "000000.00", "instruction": "Write a note to my landlord.",
         "is_classification": False,
         "instances": [{"input": "", "output": LETTER}]},
        {"id": "000000.01", "instruction": "Convert the distance to kilometers.",
         "is_classification": False,
         "instances": [{"input": "Distance: 3 miles", "output": "About 4.8 kilometers."},
                       {"input": "Measurement: 5 miles",
                        "output": "5 miles is about 8.05 kilometers."}]},
    ]
    run.instances.append(records)
    return RunContext(run=run, config=RunConfig(**config), seeds=[], templates=templates)


def test_postprocess_drops_leaks_under_the_refined_recipe_only(tmp_path, templates):
    ctx = _ctx(tmp_path / "refined", templates, recipe="refined")
    result = postprocess(ctx)
    assert (result.tasks, result.instances) == (1, 1)
    rejects = [json.loads(line) for line in
               ctx.run.instance_rejects_path.read_text().splitlines()]
    assert [(r["id"], r["reason"]) for r in rejects] == [
        ("000000.00", "demonstration_leak"), ("000000.00", "no_valid_instances"),
        ("000000.01", "demonstration_leak")]
    assert "Write a polite message" in rejects[0]["detail"]
    assert "Convert the measurement" in rejects[2]["detail"]

    paper = _ctx(tmp_path / "paper", templates, recipe="paper")  # nothing beyond the paper
    assert postprocess(paper).instances == 3
    assert paper.run.instance_rejects_path.read_text() == ""


def test_the_bundled_templates_letter_is_found():
    detector = LeakDetector(PromptTemplates.load())
    texts = [d.text for d in detector.demonstrations(False)]
    letter = next(t for t in texts if "apartment 4B" in t)
    assert detector.leak(Instance("", letter), False)[0] == "demonstration_leak"
    bundled = PromptTemplates.load()
    assert len({d.task for d in demonstrations(bundled.instance_input_first, False)}) == 11
    assert len({d.task for d in demonstrations(bundled.instance_output_first, True)}) == 16
    # 3 classification demonstrations have only short texts ("Animal: Dolphin", "mammal")
    assert len({d.task for d in detector.demonstrations(True)}) == 13


def test_the_original_templates_parse():
    require_shared()
    original = PromptTemplates.load(ORIGINAL / "prompts")
    detector = LeakDetector(original)
    assert len({d.task for d in detector.demonstrations(False)}) >= 10
    assert len({d.task for d in detector.demonstrations(True)}) >= 10
    demo = detector.demonstrations(False)[0]
    assert detector.leak(Instance("", demo.text), False)[0] == "demonstration_leak"


def test_a_copy_of_most_of_a_demonstrations_words_is_a_leak_even_when_short():
    detector = LeakDetector(PromptTemplates.load())
    demo = next(d for d in demonstrations(PromptTemplates.load().instance_input_first, False)
                if d.field == "instruction")
    # a demonstration's instruction given as the answer: ROUGE-L F with the (longer)
    # demonstration outputs is low, but every word is the instruction's
    reason, detail = detector.leak(Instance("", demo.task), False)
    assert reason == "demonstration_leak" and "instruction" in detail
    # a sentence of common words that merely shares some of them is not
    assert detector.leak(Instance("", "I like to walk in the park with my dog on sunny days."),
                         False) is None


def test_no_original_seed_instance_counts_as_a_leak_of_our_templates():
    from selfinstruct.seeds import load_seeds

    if not ORIGINAL.is_dir():
        pytest.skip("the shared data directory is not there")
    detector = LeakDetector(PromptTemplates.load())
    seeds = load_seeds(str(ORIGINAL / "seed_tasks.jsonl"))
    assert not [i for s in seeds for i in s.instances
                if detector.leak(i, bool(s.is_classification))]
