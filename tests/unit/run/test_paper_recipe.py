"""The paper recipe's rules, and where the refined recipe differs: a truncated bootstrap
completion, the cap on instances per task, the prompt/completion export's inputs."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import pytest

from selfinstruct.backends.base import Completion, Request
from selfinstruct.novelty.index import NoveltyIndex
from selfinstruct.prompts import PromptTemplates
from selfinstruct.records import Instance, Task
from selfinstruct.rules.parsing import candidate_decisions
from selfinstruct.run.config import RunConfig
from selfinstruct.run.randomness import derived_rng
from selfinstruct.run.rundir import RunDir
from selfinstruct.stages.bootstrap import _accept
from selfinstruct.stages.export import finetuning_input, prompt_completion_rows, render
from selfinstruct.stages.postprocess import cap_instances, postprocess

COMPLETION = (" Sort the given list of numbers.\n10. Describe the image below in words."
              "\n11. Name three rivers in Europe.\n12. Translate the sentence into")


# 1. A bootstrap completion that hit max_tokens ---------------------------------------------
def test_a_finished_completion_gets_the_rule_filters_only():
    assert candidate_decisions(COMPLETION, "stop", True) == [
        ("Sort the given list of numbers.", None),
        ("Describe the image below in words.", "blacklisted"),
        ("Name three rivers in europe.", None),
        ("Translate the sentence into", None),
    ]


def test_paper_recipe_drops_a_truncated_completion_whole():
    decisions = candidate_decisions(COMPLETION, "length", drop_truncated_completion=True)
    assert [reason for _, reason in decisions] == ["truncated"] * 4


def test_refined_recipe_drops_only_the_truncated_last_candidate():
    decisions = candidate_decisions(COMPLETION, "length", drop_truncated_completion=False)
    assert [reason for _, reason in decisions] == [None, "blacklisted", None, "truncated"]


def test_no_candidates_no_decisions():
    assert candidate_decisions("  \n", "length", True) == []


def _run_accept(recipe: str, finish_reason: str):
    ctx = SimpleNamespace(config=RunConfig(recipe=recipe, num_instructions=10))
    kept, rejected = [], []
    writer = SimpleNamespace(kept=kept.append, rejected=rejected.append,
                             failed=lambda *a: pytest.fail(f"failed: {a}"))
    counts = _accept(ctx, 3, Request("prompt"), Completion(COMPLETION, finish_reason, 10, 90),
                     NoveltyIndex(use_stemmer=False), [], writer)
    return counts, kept, rejected


def test_bootstrap_stage_rejects_every_candidate_of_a_truncated_completion_under_paper():
    (k, r), kept, rejected = _run_accept("paper", "length")
    assert (k, r, kept) == (0, 4, [])
    assert [x.id for x in rejected] == ["000003.00", "000003.01", "000003.02", "000003.03"]
    assert {x.reason for x in rejected} == {"truncated"}
    assert all("paper recipe drops such a completion whole" in x.detail for x in rejected)


def test_bootstrap_stage_keeps_the_finished_candidates_under_refined():
    (k, r), kept, rejected = _run_accept("refined", "length")
    assert [x.instruction for x in kept] == ["Sort the given list of numbers.",
                                             "Name three rivers in europe."]
    assert [(x.id, x.reason) for x in rejected] == [("000003.01", "blacklisted"),
                                                    ("000003.03", "truncated")]
    assert (k, r) == (2, 2)


@pytest.mark.parametrize("recipe", ["paper", "refined"])
def test_a_finished_completion_is_decided_the_same_under_both_recipes(recipe):
    (k, r), kept, _ = _run_accept(recipe, "stop")
    assert (k, r) == (3, 1) and len(kept) == 3


# 3. At most 5 instances per task: a seeded random sample --------------------------------
INSTANCES = [Instance(f"in {k}", f"out {k}") for k in range(9)]


def test_cap_samples_as_random_sample_does_in_the_sampled_order():
    chosen, over = cap_instances(INSTANCES, 5, random.Random(7))
    assert chosen == random.Random(7).sample(INSTANCES, 5)
    assert chosen != INSTANCES[:5]  # the seed is chosen so that it is not the first five
    assert over == [i for i in INSTANCES if i not in chosen]  # in their order


def test_cap_leaves_a_task_within_the_limit_as_it_is():
    assert cap_instances(INSTANCES[:5], 5, random.Random(7)) == (INSTANCES[:5], [])


def _postprocess(tmp_path, recipe: str, seed: int = 42):
    tmp_path.mkdir()
    run = RunDir(tmp_path)
    run.instances.append([{
        "id": task_id, "instruction": f"Task {task_id}", "is_classification": False,
        "instances": [{"input": i.input, "output": i.output} for i in INSTANCES],
    } for task_id in ("000000.00", "000001.00")])
    ctx = SimpleNamespace(run=run, config=RunConfig(recipe=recipe, seed=seed), seeds=[],
                          templates=PromptTemplates.load())
    postprocess(ctx)
    tasks = [Task.from_json(r) for r in run.read_tasks()]
    rejects = [json.loads(line) for line in run.instance_rejects_path.read_text().splitlines()]
    return tasks, rejects


@pytest.mark.parametrize("recipe", ["paper", "refined"])
def test_postprocess_samples_five_per_task_from_the_seed_and_task_id(tmp_path, recipe):
    tasks, rejects = _postprocess(tmp_path / "a", recipe)
    for task in tasks:
        want = derived_rng(42, "instance-cap", task.id).sample(INSTANCES, 5)
        assert task.instances == want
        over = [(r["input"], r["output"]) for r in rejects
                if r["id"] == task.id and r["reason"] == "over_limit"]
        assert over == [(i.input, i.output) for i in INSTANCES if i not in want]
    assert tasks[0].instances != tasks[1].instances  # each task draws its own sample
    # deterministic: a re-run (or a resumed run) picks the same; another seed, others
    assert _postprocess(tmp_path / "b", recipe) == (tasks, rejects)
    assert _postprocess(tmp_path / "c", recipe, seed=43)[0] != tasks


# 4. The prompt/completion export's inputs, as prepare_for_finetuning.py -----------------
class _Draw:
    """A generator whose ``random()`` is fixed: below 0.5 rewrites the input."""

    def __init__(self, value: float):
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.mark.parametrize("text,paper,leading", [
    ("Sentence: It was fine.\n\nReally.", "It was fine.\nReally.", "It was fine.\nReally."),
    ("  plain text\n\nwith a blank line  ", "plain text\nwith a blank line",
     "plain text\nwith a blank line"),
    # two distinct field names: stripped only
    ("Question: Why?\nContext: none", "Question: Why?\nContext: none",
     "Question: Why?\nContext: none"),
    # the same field name twice is one distinct name: cut at the first colon
    ("A: 1\nA: 2", "1\nA: 2", "1\nA: 2"),
    # one "word:" not at the start: the paper's rule cuts content, the refined one does not
    # ... and at the first colon of the text, not the field name's
    ("def f(x):\n    # TODO: check x", "# TODO: check x", "def f(x):\n    # TODO: check x"),
    ("Ratio 3:1", "1", "Ratio 3:1"),
    ("https://example.com", "//example.com", "https://example.com"),
])
def test_finetuning_input_rewrites_as_the_original(text, paper, leading):
    assert finetuning_input(text, _Draw(0.49), "paper") == paper
    assert finetuning_input(text, _Draw(0.49), "leading") == leading
    # the other half of the time the input is left as it is
    assert finetuning_input(text, _Draw(0.5), "paper") == text


def test_finetuning_input_draws_once_per_instance():
    rng, reference = random.Random(3), random.Random(3)
    finetuning_input("Sentence: x", rng)
    reference.random()
    assert rng.random() == reference.random()


def _tasks():
    return [
        Task("t1", "Classify the sentiment.", [Instance(f"Sentence: text {k}", "positive")
                                               for k in range(30)]),
        Task("t2", "Name a colour.", [Instance("", "red")] * 3 + [Instance("", "blue")]),
    ]


def test_prompt_completion_rows_rewrite_half_the_inputs_dedupe_and_shuffle():
    templates = PromptTemplates.load()
    rows = prompt_completion_rows(_tasks(), templates, seed=5, recipe="paper")
    pairs = [(r["prompt"], r["completion"]) for r in rows]
    assert len(pairs) == len(set(pairs))  # repeated pairs dropped
    colour = [r for r in rows if "Name a colour." in r["prompt"]]
    assert 2 <= len(colour) <= 4  # the three "red" share a template only now and then
    sentiment = [r["prompt"] for r in rows if "Classify" in r["prompt"]]
    with_name = sum("Sentence:" in p for p in sentiment)
    assert 5 < with_name < 25  # about half keep the field name
    # shuffled: the order is not the tasks' order
    assert [("Classify" in r["prompt"]) for r in rows] != sorted(
        [("Classify" in r["prompt"]) for r in rows], reverse=True)
    # every choice from the seed: the same bytes again, other bytes with another seed
    assert render(_tasks(), "prompt-completion", templates, 5, "paper") == \
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    assert prompt_completion_rows(_tasks(), templates, seed=5, recipe="paper") == rows
    assert prompt_completion_rows(_tasks(), templates, seed=6, recipe="paper") != rows


def test_prompt_completion_rows_follow_the_recipe_field_name_rule():
    templates = PromptTemplates.load()
    tasks = [Task("t1", "Fix the code.", [Instance(f"x = {k}  # TODO: {k}", "ok")
                                          for k in range(20)])]
    paper = prompt_completion_rows(tasks, templates, seed=1, recipe="paper")
    refined = prompt_completion_rows(tasks, templates, seed=1, recipe="refined")
    assert any("x = " not in r["prompt"] for r in paper)  # the paper's rule cuts the code
    assert all("x = " in r["prompt"] for r in refined)
