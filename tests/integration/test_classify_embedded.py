"""The calibrated classification rule on the real embedded model: scores are exact
log-probabilities, independent of what ran before, and `eval classify` reports both
rules through the CLI."""

from __future__ import annotations

import json
import math

import pytest
from short_prompts import short_prompts

from selfinstruct.backends.base import Request, Sampling
from selfinstruct.cli import main
from selfinstruct.prompts import PromptTemplates
from selfinstruct.rules.classification import NO, YES, held_out_tasks, scoring_request
from selfinstruct.seeds import load_seeds

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2():
    from selfinstruct.backends.registry import open_backend

    backend, _ = open_backend("smollm2")
    return backend


def test_scores_are_log_probabilities_independent_of_the_previous_call(smollm2):
    templates = PromptTemplates.load()
    request = scoring_request(templates.classification, "Classify the email as spam or not.")
    first = smollm2.complete([request])[0].choice_logprobs
    smollm2.complete([Request("Once upon a time", Sampling(max_tokens=8))])
    again = smollm2.complete([request])[0].choice_logprobs
    assert first == again
    assert set(first) == {YES, NO}
    assert all(v < 0 for v in first.values())
    assert math.exp(first[YES]) + math.exp(first[NO]) <= 1.0
    # a choice of several tokens is the sum of its tokens' log-probabilities: less likely
    longer = Request(request.prompt, Sampling(), prefix=request.prefix,
                     choices=(YES, " Yes, it is"))
    scores = smollm2.complete([longer])[0].choice_logprobs
    assert scores[YES] == pytest.approx(first[YES], abs=1e-3)
    assert scores[" Yes, it is"] < scores[YES]


def test_eval_classify_cli_reports_both_rules(tmp_path, capsys):
    prompts = short_prompts(tmp_path / "prompts")
    tasks = held_out_tasks(load_seeds(None), PromptTemplates.load(str(prompts)))
    positives = [t for t in tasks if t.is_classification][:5]
    negatives = [t for t in tasks if not t.is_classification][:5]
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps(t.to_json()) + "\n" for t in positives + negatives))
    probe = tmp_path / "probe.jsonl"
    probe.write_text(json.dumps({"instruction": "Label the review as positive or negative.",
                                 "is_classification": True}) + "\n"
                     + json.dumps({"instruction": "Write a limerick about a cat.",
                                   "is_classification": False}) + "\n")
    code = main(["eval", "classify", "--model", "smollm2", "--seeds", str(seeds),
                 "--prompts", str(prompts),
                 "--tasks", str(probe), "--json", "--out", str(tmp_path / "out")])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["tasks"] == 2 and result["classification_tasks"] == 1
    for rule in ("paper", "calibrated", "always_no"):
        assert result[rule]["tp"] + result[rule]["fn"] == 1
        assert result[rule]["tn"] + result[rule]["fp"] == 1
    assert result["threshold_fitted_on"] == "the 10 held-out seed tasks"
    assert result["prompts"] == 10
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == result
