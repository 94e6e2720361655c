"""The paper recipe decides as the original Self-Instruct code does, on all 10,266 recorded
cases of ``../shared/data/original-decisions/decisions.jsonl`` (see its README.md).

- ``bootstrap``: the candidates :func:`candidate_decisions` keeps under the paper recipe
  are the instructions ``post_process_gpt3_response`` kept, in order.
- ``instances``: the parser, then :func:`filter_task_instances`, give the same distinct
  input/output pairs as the original's parse + ``filter_invalid_instances`` +
  ``filter_duplicate_instances`` (nothing at all when one input has two outputs).
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from paths import SHARED

from selfinstruct.rules.parsing import (
    candidate_decisions,
    parse_classification_instances,
    parse_generation_instances,
)
from selfinstruct.run.recipes import RECIPES
from selfinstruct.stages.postprocess import filter_task_instances

DECISIONS = SHARED / "data" / "original-decisions" / "decisions.jsonl"
PAPER = RECIPES["paper"]


@pytest.fixture(scope="module")
def cases() -> list[dict]:
    if not DECISIONS.is_file():  # a missing fidelity check is a failure, never a skip
        pytest.fail(f"the original code's recorded decisions are not there: {DECISIONS} "
                    "(the shared data belongs beside the repository)")
    with DECISIONS.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def kept_instructions(case: dict) -> list[str]:
    return [text for text, reason in candidate_decisions(
        case["text"], case["finish_reason"], PAPER.drop_truncated_completion) if reason is None]


def kept_instances(case: dict) -> list[list[str]]:
    parse = (parse_classification_instances if case["is_classification"]
             else parse_generation_instances)
    parsed = parse(case["text"], case["finish_reason"] == "length")
    kept, _, task_reason = filter_task_instances(parsed.instances)
    if task_reason is not None:
        return []
    return sorted([i.input, i.output] for i in kept)


def test_every_recorded_case_is_decided_as_the_original_did(cases):
    counts: Counter = Counter()
    disagreements = []
    for number, case in enumerate(cases, 1):
        counts[case["kind"]] += 1
        if case["kind"] == "bootstrap":
            got, want = kept_instructions(case), case["original_kept"]
        else:
            got, want = kept_instances(case), case["original_instances"]
        if got != want:
            disagreements.append((number, case["kind"], case["finish_reason"], got, want))
    # all of the file, both kinds, was read
    assert sum(counts.values()) == len(cases) == 10_266
    assert counts["bootstrap"] and counts["instances"]
    assert not disagreements, (
        f"{len(disagreements)} of {len(cases)} cases disagree; first: line, kind, "
        f"finish_reason, ours, original's = {disagreements[0]}")


def test_the_file_exercises_truncation_and_both_task_kinds(cases):
    """The cases cover what the recipe's rules branch on, so agreement means something."""
    bootstrap = [c for c in cases if c["kind"] == "bootstrap"]
    instances = [c for c in cases if c["kind"] == "instances"]
    # truncated completions that would keep something if they had not hit max_tokens
    truncated_with_keepers = [
        c for c in bootstrap if c["finish_reason"] == "length"
        and any(reason is None for _, reason in candidate_decisions(c["text"], "stop", True))]
    assert len(truncated_with_keepers) > 1000
    assert {c["is_classification"] for c in instances} == {True, False}
    assert {c["finish_reason"] for c in instances} == {"stop", "length"}
    assert any(c["original_instances"] for c in instances)
