"""Each stage called directly, as a function over records, on the package's fake backend.

The stages run on a real run directory (opened by ``open_context``); only the model is
fake: a function of the request, so what each stage decides from each answer is checked
without loading a model."""

from __future__ import annotations

import hashlib
import json
import sys

import pytest

from selfinstruct.backends import registry
from selfinstruct.backends.base import Completion, Request, scored
from selfinstruct.backends.fake import FakeBackend
from selfinstruct.backends.registry import ModelInfo
from selfinstruct.records import Task
from selfinstruct.run.config import RunConfig
from selfinstruct.run.context import open_context
from selfinstruct.stages.bootstrap import bootstrap
from selfinstruct.stages.classify import classify
from selfinstruct.stages.export import export
from selfinstruct.stages.instances import generate_instances
from selfinstruct.stages.postprocess import postprocess

NEW = [
    "List three colors of the rainbow and say which one you like most.",
    "Tell whether the sentiment of the given movie review is positive or negative.",
    "Write a short poem about a lighthouse keeper who never sleeps at night.",
    # the rules drop this one (it asks for a picture)
    "Draw a picture of the lighthouse and its keeper at dawn.",
    "Explain how a bicycle gear changes the effort of pedalling up a hill.",
]


def answer(request: Request) -> Completion | str:
    prompt = request.prompt
    if request.sampling.temperature > 0:  # a bootstrap request: the next instructions
        return " " + "\n".join(f"{9 + k}. {text}" if k else text for k, text in enumerate(NEW))
    if request.choices:  # a calibrated classification score
        yes = -0.2 if "positive or negative" in prompt[len(request.prefix or ""):] else -3.0
        return scored({" Yes": yes, " No": -1.0})
    if prompt.endswith("Is it classification?"):
        return " Yes" if prompt.rstrip().count("positive or negative") else " No"
    if "Class label:" in (request.prefix or ""):
        return ("Class label: Positive\nSentence: I loved every minute of it.\n"
                "Class label: Negative\nSentence: Dull, long and badly acted.")
    return ("Example 1\nInput: a hill of 8 percent\nOutput: A lower gear turns the wheel "
            "less per pedal stroke, so each stroke needs less force.\n"
            "Example 2\nOutput: Red, orange and blue; I like blue most.")


@pytest.fixture
def fake_model(monkeypatch):
    backend = FakeBackend(answer)
    monkeypatch.setitem(registry._BY_PREFIX, "fake",
                        lambda name, **_: (backend, ModelInfo(name=name, backend="fake")))
    return backend


@pytest.fixture
def ctx(tmp_path, fake_model):
    context = open_context(tmp_path / "run", RunConfig(model="fake:stages", num_instructions=4,
                                                       request_batch_size=1, recipe="paper"))
    yield context
    context.close()


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_bootstrap_keeps_new_instructions_and_rejects_with_reasons(ctx, fake_model):
    result = bootstrap(ctx)
    kept = [r["instruction"] for r in ctx.run.instructions.recover()]
    rejects = {r["text"]: r["reason"] for r in ctx.run.rejects.recover()}
    assert result.kept == 4 and result.reached_target
    assert NEW[3] not in kept and rejects[NEW[3]] == "blacklisted"
    assert kept == [NEW[0], NEW[1], NEW[2], NEW[4]]
    # the second request proposes the same instructions: too similar to the kept ones
    assert result.requests == 1 and len(fake_model.requests) == 1


def test_bootstrap_twice_writes_nothing_twice(ctx, fake_model):
    bootstrap(ctx)
    before = ctx.run.instructions.path.read_bytes(), ctx.run.rejects.path.read_bytes()
    bootstrap(ctx)
    assert (ctx.run.instructions.path.read_bytes(), ctx.run.rejects.path.read_bytes()) == before
    assert len(fake_model.requests) == 1  # the second pass was answered by the cache


def test_classify_paper_rule_reads_the_greedy_answer(ctx):
    bootstrap(ctx)
    result = classify(ctx)
    labels = {r["instruction"]: r["is_classification"] for r in ctx.run.classifications.recover()}
    assert result.classified == 4 and result.classification == 1
    assert labels[NEW[1]] is True and labels[NEW[0]] is False


def test_classify_calibrated_records_margins_and_the_calibration(tmp_path, fake_model):
    config = RunConfig(model="fake:stages", num_instructions=4, request_batch_size=1,
                       classifier="calibrated")
    context = open_context(tmp_path / "run", config)
    try:
        bootstrap(context)
        classify(context)
        records = context.run.classifications.recover()
        manifest = json.loads((context.run.path / "manifest.json").read_text())
    finally:
        context.close()
    assert manifest["classification_calibration"]["rule"] == "calibrated"
    assert all("margin" in r and len(r["margins"]) == 10 for r in records)


def _classify_with(tmp_path, **settings) -> dict:
    """Bootstrap and classify under ``settings``; the manifest afterwards."""
    context = open_context(tmp_path / "run", RunConfig(model="fake:stages", num_instructions=4,
                                                       request_batch_size=1, **settings))
    try:
        bootstrap(context)
        classify(context)
        assert all("margin" not in r for r in context.run.classifications.recover())
        return json.loads((context.run.path / "manifest.json").read_text())
    finally:
        context.close()


def test_the_default_recipe_falls_back_to_the_paper_rule_on_unlabelled_seeds(tmp_path,
                                                                             fake_model):
    from selfinstruct.errors import UserError
    from selfinstruct.seeds import load_seeds

    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps(t.to_json()) + "\n" for t in load_seeds(None)
                             if not t.is_classification))
    manifest = _classify_with(tmp_path, seeds=str(seeds))
    assert manifest["config"]["recipe"] == "refined"
    calibration = manifest["classification_calibration"]
    assert calibration["rule"] == "paper"
    assert "labelled seed tasks of both kinds" in calibration["note"]
    assert not any(r.choices for r in fake_model.requests)  # nothing was scored
    with pytest.raises(UserError, match="^--classifier calibrated needs at least 10"):
        _classify_with(tmp_path / "asked", seeds=str(seeds), classifier="calibrated")


def test_a_backend_without_log_probabilities_costs_the_calibration_one_request(
        tmp_path, monkeypatch):
    def unscored(request: Request) -> Completion | str:
        return " Yes" if request.choices else answer(request)

    backend = FakeBackend(unscored)
    monkeypatch.setitem(registry._BY_PREFIX, "fake",
                        lambda name, **_: (backend, ModelInfo(name=name, backend="fake")))
    manifest = _classify_with(tmp_path)
    assert manifest["classification_calibration"] == {
        "rule": "paper",
        "note": "the backend returns no log-probabilities; the paper rule was used"}
    assert sum(1 for r in backend.requests if r.choices) == 1


def test_instances_use_the_template_of_the_label_and_keep_the_raw_text(ctx, fake_model):
    bootstrap(ctx)
    classify(ctx)
    result = generate_instances(ctx)
    records = {r["instruction"]: r for r in ctx.run.instances.recover()}
    assert result.tasks == 4 and result.failed == 0
    sentiment = records[NEW[1]]
    assert [i["output"] for i in sentiment["instances"]] == ["Positive", "Negative"]
    assert sentiment["raw_completion"].startswith("Class label: Positive")
    assert len(records[NEW[4]]["instances"]) == 2


def test_postprocess_and_export_over_the_records(ctx, tmp_path):
    bootstrap(ctx)
    classify(ctx)
    generate_instances(ctx)
    result = postprocess(ctx)
    tasks = [Task.from_json(r) for r in lines(ctx.run.tasks_path)]
    assert result.tasks == len(tasks) == 4
    out = tmp_path / "alpaca.json"
    export(tasks, "alpaca", out, ctx.templates, ctx.config.seed)
    rows = json.loads(out.read_text())
    assert {r["instruction"] for r in rows} == {t.instruction for t in tasks}


def test_a_failed_request_is_logged_and_asked_again(tmp_path, monkeypatch):
    calls = []

    def flaky(request: Request) -> Completion | str:
        calls.append(request)
        if request.sampling.temperature == 0 and len(calls) < 4:
            return Completion.failed("the server hung up")
        return answer(request)

    backend = FakeBackend(flaky)
    monkeypatch.setitem(registry._BY_PREFIX, "fake",
                        lambda name, **_: (backend, ModelInfo(name=name, backend="fake")))
    context = open_context(tmp_path / "run", RunConfig(model="fake:flaky", num_instructions=4,
                                                       request_batch_size=1, recipe="paper"))
    try:
        bootstrap(context)
        first = classify(context)
        failures = context.run.failures.recover()
        second = classify(context)
    finally:
        context.close()
    assert first.failed == 2 and first.classified == 2
    assert {f["stage"] for f in failures} == {"classify"}
    assert all(f["reason"] == "the server hung up" for f in failures)
    assert second.classified == 4


class GroupSensitive(FakeBackend):
    """Like a batched model: a completion depends on the whole group it was decoded in
    (its text carries a digest of the group's prompts). ``crash_after`` groups, it dies
    the way a killed process does (nothing after it is written)."""

    group_size = 3

    def __init__(self, crash_after: int | None = None):
        super().__init__(answer)
        self.crash_after, self.groups = crash_after, 0

    def complete(self, requests):
        if self.crash_after is not None and self.groups >= self.crash_after:
            raise KeyboardInterrupt("killed")
        self.groups += 1
        tag = hashlib.sha256("|".join(r.prompt for r in requests).encode()).hexdigest()[:8]
        out = []
        for completion in super().complete(requests):
            if "Output:" in completion.text or "Class label:" in completion.text:
                completion = Completion(completion.text.replace(
                    "\nExample 2", f" ({tag})\nExample 2").replace(
                    "\nClass label: Negative", f" ({tag})\nClass label: Negative"), "stop")
            out.append(completion)
        return out


def test_a_batched_model_killed_mid_stage_resumes_to_the_same_records(tmp_path, monkeypatch):
    """Groups are cut from the request list, and a batched model is asked its done requests
    again (from the cache), so the resumed stage decodes the same groups."""
    more = ["Summarize the plot of your favourite novel for a ten year old reader.",
            "Convert the given temperature from degrees Celsius into Fahrenheit.",
            "Suggest three healthy breakfast ideas that take under five minutes.",
            "Find the grammatical errors in the paragraph and correct them."]

    def run(folder, backend):
        monkeypatch.setitem(registry._BY_PREFIX, "fake",
                            lambda name, **_: (backend, ModelInfo(name=name, backend="fake")))
        return open_context(folder, RunConfig(model="fake:grouped", num_instructions=7,
                                              request_batch_size=1))

    monkeypatch.setattr(sys.modules[__name__], "NEW", NEW[:3] + NEW[4:] + more[:4])
    whole = run(tmp_path / "whole", GroupSensitive())
    try:
        bootstrap(whole)
        classify(whole)
        generate_instances(whole)
        expected = sorted(whole.run.instances.recover(), key=lambda r: r["id"])
    finally:
        whole.close()
    killed = run(tmp_path / "killed", GroupSensitive())
    try:
        bootstrap(killed)
        classify(killed)
    finally:
        killed.close()
    crashing = run(tmp_path / "killed", GroupSensitive(crash_after=1))
    try:
        with pytest.raises(KeyboardInterrupt):
            generate_instances(crashing)
        # killed while writing the first group's records: two of its three are on disk
        log = crashing.run.instances.path
        log.write_text("".join(log.read_text().splitlines(keepends=True)[:2]))
    finally:
        crashing.close()
    resumed = run(tmp_path / "killed", GroupSensitive())
    try:
        generate_instances(resumed)
        got = sorted(resumed.run.instances.recover(), key=lambda r: r["id"])
    finally:
        resumed.close()
    assert len(expected) == 7 and any("(" in r["raw_completion"] for r in expected)
    assert [r["raw_completion"] for r in got] == [r["raw_completion"] for r in expected]
