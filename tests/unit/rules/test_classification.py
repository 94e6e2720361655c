"""The calibrated classification rule: metrics, threshold fitting, the prompt ensemble,
the classify stage and `eval classify` on a scripted backend (pure logic)."""

from __future__ import annotations

import json
import math

import pytest
from paths import ORIGINAL

from selfinstruct.backends.base import Completion, scored
from selfinstruct.backends.fake import FakeBackend
from selfinstruct.backends.openai_compat import OpenAICompatBackend
from selfinstruct.errors import UserError
from selfinstruct.evaluation.classification import (
    LabelledTask,
    evaluate_classification,
    read_labelled_tasks,
)
from selfinstruct.progress import SilentReporter
from selfinstruct.prompts import PromptTemplates
from selfinstruct.records import Instruction
from selfinstruct.rules.classification import (
    NO,
    YES,
    build_template,
    calibrate,
    demonstrations,
    fit_threshold,
    held_out_tasks,
    leave_one_out,
    margin_of,
    metrics,
    paper_rule,
    scoring_templates,
)
from selfinstruct.run.config import RunConfig
from selfinstruct.run.context import RunContext
from selfinstruct.run.rundir import RunDir
from selfinstruct.seeds import load_seeds
from selfinstruct.stages.classify import classify


def scripted_scorer(marker: str = "Classify", logprobs: bool = True) -> FakeBackend:
    """Scores " Yes" high for instructions with a marker word, greedy-answers Yes always
    (like a small model); the fake backend keeps its requests."""

    def answer(r):
        if not r.choices or not logprobs:
            return Completion(" Yes", "stop", 10, 1)
        instruction = r.prompt[len(r.prefix):]
        yes = -0.5 if marker in instruction else -3.0
        # a prompt-dependent offset, which standardisation must remove
        offset = (len(r.prefix) % 7) / 10
        return scored({YES: yes + offset, NO: -1.5}, prompt_tokens=10)

    return FakeBackend(answer, name="scripted")


def test_metrics_confusion_and_balanced_accuracy():
    m = metrics([True, True, False, False, False], [True, False, False, False, True])
    assert (m.tp, m.fp, m.tn, m.fn) == (1, 1, 2, 1)
    assert m.recall == 0.5 and m.precision == 0.5
    assert m.balanced_accuracy == pytest.approx((0.5 + 2 / 3) / 2)
    always_no = metrics([False] * 10, [True] + [False] * 9)
    assert always_no.accuracy == 0.9 and always_no.balanced_accuracy == 0.5


def test_fit_threshold_separates_and_leave_one_out_scores_separable_data_perfectly():
    margins = [-3.0, -2.5, -2.0, -1.0, 1.0, 2.0]
    labels = [False, False, False, False, True, True]
    threshold = fit_threshold(margins, labels)
    assert -1.0 < threshold < 1.0
    assert metrics(leave_one_out(margins, labels), labels).balanced_accuracy == 1.0


def test_calibrate_standardises_each_prompt_and_averages():
    labels = [False, False, True]
    # the second prompt is the first shifted and scaled: the same information
    first = [-2.0, -1.0, 3.0]
    second = [10 + 2 * m for m in first]
    fitted = calibrate([first, second], labels)
    assert fitted.centres[1] == pytest.approx(10 + 2 * fitted.centres[0])
    assert fitted.scales[1] == pytest.approx(2 * fitted.scales[0])
    assert fitted.score([3.0, 16.0]) > fitted.threshold > fitted.score([-1.0, 8.0])
    assert fitted.auc == 1.0
    assert fitted.as_dict()["prompts"] == 2


def test_margin_and_paper_rule():
    assert margin_of(scored({YES: -1.0, NO: -3.0})) == pytest.approx(2.0)
    assert margin_of(Completion("Yes", "stop")) is None
    assert paper_rule(" Yes") and paper_rule("YES") and not paper_rule("Yes.")


def test_scoring_templates_rebuild_the_bundled_template_and_are_deterministic():
    templates = PromptTemplates.load()
    demos = demonstrations(templates.classification)
    assert len(demos) == 31 and sum(label for _, label in demos) == 12
    header = templates.classification.split("\n\n", 1)[0]
    assert build_template(header, demos) == templates.classification
    prompts = scoring_templates(templates)
    assert prompts == scoring_templates(templates)
    assert len(prompts) == 10 and prompts[0] == templates.classification
    assert len(set(prompts)) == 10
    for prompt in prompts[1:-1]:  # the same demonstrations, reordered
        assert sorted(demonstrations(prompt)) == sorted(demos)
    balanced = demonstrations(prompts[-1])
    assert sum(label for _, label in balanced) == len(balanced) // 2 == 12


def test_original_template_has_the_same_layout():
    if not ORIGINAL.is_dir():
        pytest.skip("the shared data directory is not there")
    templates = PromptTemplates.load(str(ORIGINAL / "prompts"))
    demos = demonstrations(templates.classification)
    header = templates.classification.split("\n\n", 1)[0]
    assert build_template(header, demos) == templates.classification


def test_held_out_seeds_are_the_labelled_ones_the_prompt_does_not_show():
    tasks = held_out_tasks(load_seeds(None), PromptTemplates.load())
    assert len(tasks) == 144
    assert sum(bool(t.is_classification) for t in tasks) == 14


def _labelled():
    return ([LabelledTask(f"Classify item {k} as good or bad.", True) for k in range(4)]
            + [LabelledTask(f"Write a poem about topic number {k}.", False) for k in range(12)])


def test_eval_classify_reports_both_rules_and_the_baseline(tmp_path):
    backend = scripted_scorer()
    result = evaluate_classification(backend, PromptTemplates.load(), _labelled(), None,
                                     tmp_path, SilentReporter())
    assert result.rules["paper"]["recall"] == 1.0
    assert result.rules["paper"]["balanced_accuracy"] == 0.5
    assert result.rules["calibrated"]["balanced_accuracy"] == 1.0
    assert result.rules["always_no"]["tn"] == 12
    assert result.prompts == 10 and result.auc == 1.0
    data = result.as_dict()
    assert set(data["calibrated"]) == {"balanced_accuracy", "accuracy", "precision", "recall",
                                       "tp", "fp", "tn", "fn"}
    # a second run is answered from the cache
    before = len(backend.requests)
    evaluate_classification(backend, PromptTemplates.load(), _labelled(), None, tmp_path,
                            SilentReporter())
    assert len(backend.requests) == before


def test_eval_classify_fits_on_calibration_tasks_for_a_given_file(tmp_path):
    result = evaluate_classification(scripted_scorer(), PromptTemplates.load(), _labelled()[:6],
                                     _labelled(), tmp_path, SilentReporter())
    assert result.threshold_fitted_on == "the 16 held-out seed tasks"
    assert result.rules["calibrated"]["balanced_accuracy"] == 1.0


def test_eval_classify_without_logprobs_reports_the_paper_rule_only(tmp_path):
    result = evaluate_classification(scripted_scorer(logprobs=False), PromptTemplates.load(),
                                     _labelled(), None, tmp_path, SilentReporter())
    assert result.no_logprobs and "calibrated" not in result.rules


def test_read_labelled_tasks_names_the_line(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps({"instruction": "x", "is_classification": True}) + "\n"
                    + json.dumps({"instruction": "y", "is_classification": "yes"}) + "\n")
    with pytest.raises(UserError, match=r"tasks.jsonl:2: field 'is_classification'"):
        read_labelled_tasks(path)


def _context(tmp_path, backend, **config) -> RunContext:
    run = RunDir(tmp_path / "run")
    run.create()
    seeds = load_seeds(None)
    ctx = RunContext(run=run, config=RunConfig(**config), seeds=seeds,
                     templates=PromptTemplates.load(), _backend=backend)
    records = [Instruction(f"000000.{k:02d}", text, 0, k, [], 0.0, "")
               for k, text in enumerate(["Classify the zorblax tweet as happy or sad.",
                                         "Write a story about a lost dog in the city."])]
    run.instructions.append([r.to_json() for r in records])
    return ctx


def test_classify_stage_calibrated_records_margins_and_the_manifest(tmp_path):
    # the scripted scorer keys on a word no seed has: every seed scores alike, and the
    # machine instruction with the word scores above the fitted threshold
    ctx = _context(tmp_path, scripted_scorer(marker="zorblax"), recipe="refined")
    try:
        result = classify(ctx)
    finally:
        ctx.close()
    records = ctx.run.classifications.recover()
    assert result.classified == 2
    assert [r["is_classification"] for r in records] == [True, False]
    assert all(len(r["margins"]) == 10 and "threshold" in r for r in records)
    calibration = ctx.manifest["classification_calibration"]
    assert calibration["rule"] == "calibrated" and calibration["prompts"] == 10
    assert calibration["tasks"] == 144 and "balanced_accuracy" in calibration["held_out"]
    assert math.isfinite(calibration["threshold"])


def test_classify_stage_falls_back_to_the_paper_rule_without_logprobs(tmp_path):
    ctx = _context(tmp_path, scripted_scorer(logprobs=False), classifier="calibrated")
    try:
        classify(ctx)
    finally:
        ctx.close()
    assert ctx.manifest["classification_calibration"]["rule"] == "paper"
    assert all(r["is_classification"] for r in ctx.run.classifications.recover())


def test_paper_recipe_classifies_as_the_original(tmp_path):
    backend = scripted_scorer()
    ctx = _context(tmp_path, backend, recipe="paper")
    try:
        classify(ctx)
    finally:
        ctx.close()
    assert not any(r.choices for r in backend.requests)
    assert "classification_calibration" not in ctx.manifest


class _Top:
    def __init__(self, tops):
        self.top_logprobs = tops


class _Choice:
    def __init__(self, tops):
        self.logprobs = _Top(tops)
        self.text = " Yes"
        self.finish_reason = "length"


class _Response:
    def __init__(self, tops):
        self.choices = [_Choice(tops)]
        self.usage = None


def test_server_logprobs_are_read_from_the_first_token():
    from selfinstruct.rules.classification import scoring_request

    backend = OpenAICompatBackend.__new__(OpenAICompatBackend)
    request = scoring_request("Task:", "Classify it.")
    completion = backend._parse(_Response([{" Yes": -0.2, "Yes": -0.9, " no": -2.0}]),
                                request, 0.1)
    assert completion.choice_logprobs == {YES: -0.2, NO: -2.0}
    # " No" missing from the top list: the lowest listed value bounds it
    completion = backend._parse(_Response([{" Yes": -0.2, " Maybe": -4.0}]), request, 0.1)
    assert completion.choice_logprobs == {YES: -0.2, NO: -4.0}
    # no logprobs at all: no scores, so the caller falls back to the paper rule
    completion = backend._parse(_Response([]), request, 0.1)
    assert completion.choice_logprobs is None
