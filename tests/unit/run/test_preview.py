"""``run --preview``: the logic and the table on a fake backend built from canned completions;
one slow test on the real embedded model."""

from __future__ import annotations

import pytest
from cli_in_process import cli
from rich.console import Console

from selfinstruct.backends.base import Completion
from selfinstruct.backends.fake import FakeBackend
from selfinstruct.records import Instance
from selfinstruct.run.config import RunConfig
from selfinstruct.run.preview import Preview, PreviewTask, preview_table, print_preview, run_preview

BOOTSTRAP = (" Decide whether this movie review is positive or negative.\n"
             "10. Write a short poem about the sea at night.\n"
             "11. Draw a map of the city.\n"  # blacklisted
             "12. Give three tips for sleeping well at night.\n"
             "13. Name the capital city of the given country.")


def canned(bootstrap=BOOTSTRAP, finish="stop"):
    """Answers each kind of prompt with a fixed completion."""

    def answer(request):
        prompt = request.prompt
        if request.sampling.temperature > 0:  # the bootstrap request
            return Completion(bootstrap, finish)
        if prompt.endswith("Is it classification?"):
            return Completion(" Yes" if "positive or negative" in prompt else " No", "stop")
        if "positive or negative" in prompt:
            return Completion("Class label: Positive\nSentence: I loved it.\n"
                              "Class label: Negative\nSentence: Dull and long.", "stop")
        return Completion("Example 1\nOutput: The sea sleeps under the moon.\n"
                          "Example 2\nOutput: The sea sleeps under the moon.", "stop")

    return answer


def test_preview_filters_classifies_and_writes_instances(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SELFINSTRUCT_HOME", str(tmp_path / "home"))
    backend = FakeBackend(canned())
    preview = run_preview(RunConfig(seed=5), backend, tasks=3, model_name="canned")
    assert preview.candidates == 4 and preview.kept == 3  # stops at the third kept
    assert preview.rejected_by_reason == {"blacklisted": 1}
    assert [t.instruction for t in preview.tasks] == [
        "Decide whether this movie review is positive or negative.",
        "Write a short poem about the sea at night.",
        "Give three tips for sleeping well at night."]
    first, second, _ = preview.tasks
    assert first.is_classification is True and first.answer == "Yes"
    assert first.instances == [Instance("Sentence: I loved it.", "Positive"),
                               Instance("Sentence: Dull and long.", "Negative")]
    assert second.is_classification is False
    assert second.instances == [Instance("", "The sea sleeps under the moon.")]
    assert second.dropped == {"duplicate": 1}
    assert len(backend.prompts) == 1 + 3 + 3  # one bootstrap request, three tasks
    # the refined recipe calibrates; nothing is shipped or cached for this model
    assert preview.classification["rule"] == "paper"
    assert "which the preview does not" in preview.classification["note"]
    assert list(tmp_path.iterdir()) == []  # nothing written, the home included


def test_preview_uses_the_runs_first_prompt(tmp_path):
    from selfinstruct.run.context import open_context
    from selfinstruct.stages.bootstrap import bootstrap

    backend = FakeBackend(canned())
    run_preview(RunConfig(seed=9, num_instructions=1), backend, tasks=1)
    ctx = open_context(tmp_path / "run", RunConfig(seed=9, num_instructions=1))
    ctx._backend = run_backend = FakeBackend(canned())
    bootstrap(ctx)
    ctx.close()
    assert backend.prompts[0] == run_backend.prompts[0]


def test_a_truncated_completion_follows_the_recipe():
    paper = run_preview(RunConfig(recipe="paper"), FakeBackend(canned(finish="length")))
    # the first batch, 5 requests, each dropped whole
    assert paper.kept == 0 and paper.rejected_by_reason == {"truncated": 25}
    assert paper.requests == 5
    refined = run_preview(RunConfig(recipe="refined"), FakeBackend(canned(finish="length")))
    assert refined.kept == 3 and refined.rejected_by_reason == {"blacklisted": 1}
    assert refined.requests == 1


# --- the preview is the run's beginning ------------------------------------------------

WORDS = ("river", "violin", "garden", "planet", "lantern", "harbor", "meadow", "canyon",
         "glacier", "orchard", "compass", "festival", "copper", "thunder", "saddle", "pencil",
         "marble", "tunnel", "falcon", "blanket", "ribbon", "kettle", "island", "mirror",
         "castle", "feather", "button", "pepper", "ladder", "candle", "velvet", "anchor")
VERBS = ("Explain", "Compare", "Summarize", "Describe", "Classify", "Rank", "Sort", "Name")


def _stable(text: str) -> int:
    import hashlib

    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16)


class PinnedFake(FakeBackend):
    """A fake whose identity pins its weights (so the shared cache and a shipped file
    apply to it), answering each prompt from its own text: different requests, different
    instructions, margins and instances."""

    @property
    def identity(self) -> dict:
        return {"backend": "llama.cpp", "model": "pinned-fake", "sha256": "f" * 64,
                "n_ctx": 4096}


def varied(request):
    prompt = request.prompt
    h = _stable(prompt)
    if request.choices:
        margin = (h % 1000) / 250 - 2.0
        return Completion(" Yes" if margin > 0 else " No", "stop",
                          choice_logprobs={" Yes": margin / 2, " No": -margin / 2})
    if request.sampling.temperature > 0:  # bootstrap
        import random

        rng = random.Random(h)
        lines = [f"{9 + k}. {rng.choice(VERBS)} the " + " ".join(rng.sample(WORDS, 5)) + "."
                 for k in range(4)]
        return Completion(" " + "\n".join(lines)[3:], "stop")
    if prompt.endswith("Is it classification?"):
        return Completion(" Yes" if h % 3 == 0 else " No", "stop")
    word = WORDS[h % len(WORDS)]
    return Completion(f"Example 1\nInput: a {word}\nOutput: the {word} answer {h % 7}\n"
                      f"Example 2\nInput: two {word}s\nOutput: the other answer {h % 5}",
                      "stop")


def _run_records(tmp_path, config, backend):
    from selfinstruct.run.context import open_context
    from selfinstruct.run.pipeline import run_pipeline

    ctx = open_context(tmp_path / "run", config)
    ctx._backend = backend
    try:
        run_pipeline(ctx)
        labels = {r["id"]: r["is_classification"] for r in ctx.run.classifications.recover()}
        tasks = {t["id"]: [Instance(i["input"], i["output"]) for i in t["instances"]]
                 for t in ctx.run.read_tasks()}
        kept = [(r["id"], r["instruction"]) for r in ctx.run.instructions.recover()]
        manifest = dict(ctx.manifest)
    finally:
        ctx.close()
    return kept, labels, tasks, manifest


@pytest.mark.parametrize("recipe", ["paper", "refined", "curated"])
def test_the_preview_is_the_first_part_of_the_run(tmp_path, monkeypatch, recipe):
    """The preview's instructions, labels and instances are the run's first ones; under
    the refined recipe the run calibrates first (the shared cache keeps the seed scores)
    and the preview uses that calibration, not the paper rule."""
    monkeypatch.setenv("SELFINSTRUCT_HOME", str(tmp_path / "home"))
    # curated: the fake's answers never agree, so every threshold but 0 drops them all
    config = RunConfig(seed=3, num_instructions=12, recipe=recipe,
                       min_agreement=0.0 if recipe == "curated" else None)
    kept, labels, tasks, manifest = _run_records(tmp_path, config, PinnedFake(varied))
    assert len(kept) == 12
    home = tmp_path / "home"
    before = {p.name: p.read_bytes() for p in home.iterdir()} if home.exists() else {}
    preview = run_preview(config, PinnedFake(varied), tasks=5)
    after = {p.name: p.read_bytes() for p in home.iterdir()} if home.exists() else {}
    assert after == before  # the shared cache read, not written (not even its journal)
    assert [(t.id, t.instruction) for t in preview.tasks] == kept[:5]
    assert [t.is_classification for t in preview.tasks] == [labels[i] for i, _ in kept[:5]]
    assert [t.instances for t in preview.tasks] == [tasks.get(i, []) for i, _ in kept[:5]]
    assert len(set(labels.values())) == 2  # both classes occur: the test can tell them apart
    if recipe == "refined":
        assert manifest["classification_calibration"]["source"] == "scored"
        assert preview.classification["rule"] == "calibrated"
        assert preview.classification["threshold"] == \
            manifest["classification_calibration"]["threshold"]
    if recipe == "curated":  # the preview shows the agreement of what it shows
        assert manifest["curation"]["agreement"]["source"] == "--min-agreement"
        shown = [s for t in preview.tasks if not t.is_classification for s in t.scores]
        assert shown and all(s.startswith("agreement ") for s in shown)


def test_a_shipped_calibration_is_used_by_the_run_and_the_preview(tmp_path, monkeypatch):
    import json

    import selfinstruct.calibrations as shipped_module
    from selfinstruct.calibrations import calibration_document, calibration_key
    from selfinstruct.prompts import PromptTemplates
    from selfinstruct.rules.classification import calibrate, held_out_tasks, scoring_templates
    from selfinstruct.seeds import load_seeds

    monkeypatch.setenv("SELFINSTRUCT_HOME", str(tmp_path / "home"))
    templates = PromptTemplates.load(None)
    seeds = held_out_tasks(load_seeds(None), templates)
    prompts = scoring_templates(templates)
    key = calibration_key(PinnedFake(varied).identity, seeds, prompts)
    labels = [bool(t.is_classification) for t in seeds]
    margins = [[(_stable(p + t.instruction) % 100) / 10 for t in seeds] for p in prompts]
    calibration = calibrate(margins, labels)
    folder = tmp_path / "shipped"
    folder.mkdir()
    (folder / "pinned-fake.json").write_text(json.dumps(calibration_document(
        "pinned-fake", key, seeds, margins, calibration, {})), encoding="utf-8")
    monkeypatch.setattr(shipped_module, "SHIPPED_DIR", folder)

    backend = PinnedFake(varied)
    config = RunConfig(seed=3, num_instructions=6)
    kept, labels_by_id, _, manifest = _run_records(tmp_path, config, backend)
    entry = manifest["classification_calibration"]
    assert entry["source"] == "shipped" and entry["file"].endswith("pinned-fake.json")
    assert entry["threshold"] == round(calibration.threshold, 6)
    # no seed task scored: only the run's own 6 instructions, under each prompt
    assert sum(1 for r in backend.requests if r.choices) == 6 * len(prompts)
    assert not (tmp_path / "home" / "shared-cache.sqlite").exists()
    preview = run_preview(config, PinnedFake(varied), tasks=3)
    assert preview.classification["source"] == "shipped"
    assert [t.is_classification for t in preview.tasks] == \
        [labels_by_id[i] for i, _ in kept[:3]]


def test_the_preview_runs_every_stage_of_the_pipeline(monkeypatch):
    """Generic over the pipeline's stages: a stage added to STAGES runs in the preview."""
    from selfinstruct.run import pipeline

    seen = []
    extra = pipeline.Stage("extra", lambda ctx: seen.append(ctx.run.classifications.recover()))
    monkeypatch.setattr(pipeline, "STAGES", (*pipeline.STAGES, extra))
    run_preview(RunConfig(seed=5, recipe="paper"), FakeBackend(canned()), tasks=2)
    assert len(seen) == 1 and len(seen[0]) == 2


def _render(preview) -> str:
    console = Console(record=True, width=140, color_system=None)
    print_preview(preview, console)
    return console.export_text()


def test_the_table_shows_each_task_with_its_class_and_instances():
    preview = Preview(model="smollm2", seed=42, candidates=4, kept=2,
                      rejected=[("Draw a map.", "blacklisted"), ("Hi.", "too_short")],
                      seconds=3.21, tasks=[
                          PreviewTask("000000.00", "Is this review positive or negative?",
                                      True, "Yes", [Instance("Great film!", "Positive")]),
                          PreviewTask("000000.01", "Write a haiku about rain.", False, "No",
                                      [Instance("", "Soft rain on the roof")],
                                      dropped={"duplicate": 2}),
                      ])
    text = _render(preview)
    assert "preview: smollm2, seed 42" in text
    assert "Is this review positive or negative?" in text and "yes (Yes)" in text
    assert "Great film! → Positive" in text
    assert "(no input) → Soft rain on the roof" in text and "dropped: duplicate 2" in text
    assert "4 candidates, 2 kept, rejected: blacklisted 1, too_short 1" in text
    assert "nothing written" in text
    assert "rejected (blacklisted): Draw a map." in text


def test_the_table_says_when_a_request_failed_or_nothing_was_kept():
    failed = Preview(model="m", seed=1, error="HTTP 503: busy")
    assert "the bootstrap request failed: HTTP 503: busy" in _render(failed)
    empty = Preview(model="m", seed=1, candidates=2, rejected=[("a", "too_short")] * 2)
    assert "kept no instruction" in _render(empty)
    dropped = PreviewTask("2", "Do that.", True, "Yes", task_dropped="no_valid_instances")
    assert "task dropped: no_valid_instances" in _render(Preview(model="m", seed=1,
                                                                 tasks=[dropped]))
    task = PreviewTask("1", "Do it.", None, error="timeout")
    assert "failed: timeout" in str(preview_table(Preview(model="m", seed=1, tasks=[task]))
                                    .columns[3]._cells)


def _short_templates(folder):
    """The bundled templates with one demonstration each, so that the model's prefill (most
    of a preview's time on 2 cores) takes a second, not a minute."""
    import shutil

    from selfinstruct.prompts.templates import bundled_dir

    shutil.copytree(bundled_dir(), folder)
    for name in ("clf_task_identification_template_1.txt",
                 "instance_gen_input_first_for_gen.txt",
                 "instance_gen_output_first_for_clf.txt"):
        blocks = (folder / name).read_text(encoding="utf-8").split("\n\n")
        (folder / name).write_text("\n\n".join(blocks[:2]) + "\n\n", encoding="utf-8")
    return folder


@pytest.mark.slow
def test_preview_on_the_embedded_model_prints_the_table_and_writes_nothing(tmp_path, capsys,
                                                                           monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("SELFINSTRUCT_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "160")
    prompts = _short_templates(tmp_path / "prompts")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code, out, err = cli(
        capsys, "run", "--preview", "1", "--out", "never", "--prompts", prompts,
        "--num-prompt-instructions", "4", "--recipe", "refined", "--bootstrap-max-tokens", "48",
        "--instance-max-tokens-classification", "32", "--instance-max-tokens-generation", "32",
        "--quiet")
    assert code == 0, err
    assert "preview: smollm2, seed 42" in out
    assert "1 bootstrap request:" in out and "nothing written" in out
    assert "classification: " in out
    assert list(work.iterdir()) == []  # no run directory, no cache file
    assert not home.exists() or not any(p.is_file() for p in home.rglob("*"))


def test_without_a_shipped_or_cached_calibration_the_preview_says_so(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("SELFINSTRUCT_HOME", str(home))
    backend = PinnedFake(varied)
    preview = run_preview(RunConfig(seed=3), backend, tasks=2)
    assert preview.classification["rule"] == "paper"
    assert "shipped or in the shared cache yet" in preview.classification["note"]
    assert not any(r.choices for r in backend.requests)  # no seed task scored
    assert not home.exists()  # the shared cache is read, never created
    text = _render(preview)
    assert "classification: the paper rule, not the calibrated one: no calibration" in text
