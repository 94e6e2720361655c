"""Checks on the seed tasks and prompt templates that ship inside the package.

The files are located through ``importlib.resources`` so the test exercises what an installed
package actually contains (``pip install .`` or ``pip install -e .``). When the package cannot be
imported at all (a bare checkout), the ``src/`` tree is used instead.
"""

from __future__ import annotations

import itertools
import json
import re
from importlib import resources

import pytest
from paths import ORIGINAL, REPO

ORIGINAL_PROMPTS = ORIGINAL / "prompts"

TEMPLATE_FILES = [
    "instruction_gen_header.txt",
    "instruction_gen_header_classification.txt",
    "clf_task_identification_template_1.txt",
    "instance_gen_input_first_for_gen.txt",
    "instance_gen_output_first_for_clf.txt",
    "finetuning_templates.json",
]


def _package_root():
    try:
        return resources.files("selfinstruct")
    except ModuleNotFoundError:
        return REPO / "src" / "selfinstruct"


def _read(*parts: str) -> str:
    node = _package_root()
    for part in parts:
        node = node / part
    return node.read_text(encoding="utf-8")


def _template(name: str) -> str:
    return _read("prompts", "templates", name)


@pytest.fixture(scope="module")
def seeds() -> list[dict]:
    lines = _read("seeds", "seed_tasks.jsonl").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _demo_blocks(text: str) -> list[str]:
    """Demonstration blocks of a template: everything after the first line, split on blank lines,
    without the final bare ``Task:`` that the query is appended to."""
    blocks = text.split("\n\n")
    assert blocks[-1] == "Task:"
    return blocks[1:-1]


# ---------------------------------------------------------------- seed tasks


def test_seed_count_and_ids(seeds):
    assert len(seeds) == 175
    assert [t["id"] for t in seeds] == [f"seed_task_{k}" for k in range(175)]
    names = [t["name"] for t in seeds]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)*", n) for n in names)


def test_seed_schema(seeds):
    for t in seeds:
        assert set(t) == {"id", "name", "instruction", "instances", "is_classification"}
        assert isinstance(t["is_classification"], bool)
        assert isinstance(t["instruction"], str) and t["instruction"].strip() == t["instruction"]
        assert 4 <= len(t["instruction"].split()) <= 60, t["name"]
        assert t["instances"], t["name"]
        for inst in t["instances"]:
            assert set(inst) == {"input", "output"}


def test_seed_classification_share(seeds):
    n_clf = sum(t["is_classification"] for t in seeds)
    assert 24 <= n_clf <= 28


def test_seed_instance_mix(seeds):
    two = sum(len(t["instances"]) == 2 for t in seeds)
    assert 45 <= two <= 70  # about a third of the tasks have two instances
    instances = [i for t in seeds for i in t["instances"]]
    empty = sum(i["input"] == "" for i in instances)
    assert 0.3 <= empty / len(instances) <= 0.5


def test_seed_outputs_nonempty_and_differ_from_input(seeds):
    for t in seeds:
        for inst in t["instances"]:
            assert inst["output"].strip(), t["name"]
            assert inst["output"] != inst["input"], t["name"]


def test_seed_instructions_unique(seeds):
    instructions = [t["instruction"] for t in seeds]
    assert len(set(instructions)) == len(instructions)


def test_seed_instructions_not_near_duplicates(seeds):
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    too_close = []
    for a, b in itertools.combinations(seeds, 2):
        f = scorer.score(a["instruction"], b["instruction"])["rougeL"].fmeasure
        if f > 0.7:
            too_close.append((round(f, 3), a["id"], b["id"]))
    assert not too_close


# ---------------------------------------------------------------- templates


@pytest.mark.parametrize("name", TEMPLATE_FILES)
def test_templates_are_ascii(name):
    text = _template(name)
    assert text.isascii(), name


@pytest.mark.parametrize(
    "name", ["instruction_gen_header.txt", "instruction_gen_header_classification.txt"]
)
def test_headers_are_one_line(name):
    text = _template(name)
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert text.count("\n") == 1
    assert text.strip()


def test_clf_identification_template(seeds):
    text = _template("clf_task_identification_template_1.txt")
    assert text.endswith("Task:")
    assert text.split("\n")[1] == ""  # question line, then a blank line
    blocks = _demo_blocks(text)
    assert len(blocks) == 31
    assert text.count("Task:") == 32  # 31 demonstrations plus the trailing one
    answers = []
    by_instruction = {t["instruction"]: t for t in seeds}
    for block in blocks:
        m = re.fullmatch(r"Task: (.+)\nIs it classification\? (Yes|No)", block)
        assert m, block
        answers.append(m.group(2))
        seed = by_instruction.get(m.group(1))
        assert seed is not None, f"demonstration not drawn from the seeds: {m.group(1)}"
        assert seed["is_classification"] == (m.group(2) == "Yes")
    assert answers.count("Yes") == 12
    assert answers.count("No") == 19


def test_instance_template_input_first(seeds):
    text = _template("instance_gen_input_first_for_gen.txt")
    assert text.endswith("Task:")
    assert text.split("\n")[1] == ""
    blocks = _demo_blocks(text)
    assert len(blocks) == 11
    non_clf = {t["instruction"] for t in seeds if not t["is_classification"]}
    for block in blocks:
        assert block.startswith("Task: ")
        assert "Output:" in block
        assert block.split("\n")[0][len("Task: "):] in non_clf


def test_instance_template_output_first(seeds):
    text = _template("instance_gen_output_first_for_clf.txt")
    assert text.endswith("Task:")
    assert text.split("\n")[1] == ""
    blocks = _demo_blocks(text)
    assert len(blocks) == 16
    clf = {t["instruction"] for t in seeds if t["is_classification"]}
    for block in blocks:
        lines = block.split("\n")
        assert lines[0].startswith("Task: ")
        assert lines[0][len("Task: "):] in clf
        assert lines[1].startswith("Class label: ")


def test_finetuning_templates():
    data = json.loads(_template("finetuning_templates.json"))
    assert set(data) == {
        "_note",
        "finetuning_templates_with_input",
        "finetuning_templates_without_input",
        "finetuning_fixed_template_when_random_template_false",
        "human_eval_prompt_with_input",
        "human_eval_prompt_without_input",
    }
    assert len(data["finetuning_templates_with_input"]) == 7
    assert len(data["finetuning_templates_without_input"]) == 6
    fields = {"instruction": "I", "input": "X", "output": "Y"}
    for prompt, completion in data["finetuning_templates_with_input"]:
        assert "{instruction}" in prompt and "{input}" in prompt
        assert (prompt + completion).format(**fields)
    for prompt, completion in data["finetuning_templates_without_input"]:
        assert "{instruction}" in prompt and "{input}" not in prompt
        assert completion.endswith("{output}<|endoftext|>")
    prompt, completion = data["finetuning_fixed_template_when_random_template_false"]
    assert (prompt + completion).format(**fields)
    assert "{input}" in data["human_eval_prompt_with_input"]
    assert "{input}" not in data["human_eval_prompt_without_input"]


def _task_lines(text: str) -> set[str]:
    return {
        " ".join(line[len("Task:"):].split())
        for line in text.splitlines()
        if line.startswith("Task:") and line[len("Task:"):].strip()
    }


def test_templates_do_not_reuse_original_demonstrations():
    if not ORIGINAL_PROMPTS.is_dir():
        pytest.skip(f"original Self-Instruct prompt files not found at {ORIGINAL_PROMPTS}")
    originals: set[str] = set()
    for path in ORIGINAL_PROMPTS.glob("*.txt"):
        originals |= _task_lines(path.read_text(encoding="utf-8"))
    assert originals, "original templates contain no Task: lines"
    for name in TEMPLATE_FILES:
        if name.endswith(".txt"):
            overlap = _task_lines(_template(name)) & originals
            assert not overlap, (name, sorted(overlap))
