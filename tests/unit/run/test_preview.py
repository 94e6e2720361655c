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
    backend = FakeBackend(canned())
    preview = run_preview(RunConfig(seed=5), backend, tasks=2, model_name="canned")
    assert preview.candidates == 5 and preview.kept == 4
    assert preview.rejected_by_reason == {"blacklisted": 1}
    assert [t.instruction for t in preview.tasks] == [
        "Decide whether this movie review is positive or negative.",
        "Write a short poem about the sea at night."]
    first, second = preview.tasks
    assert first.is_classification is True and first.answer == "Yes"
    assert first.instances == [Instance("Sentence: I loved it.", "Positive"),
                               Instance("Sentence: Dull and long.", "Negative")]
    assert second.is_classification is False
    assert second.instances == [Instance("", "The sea sleeps under the moon.")]
    assert second.dropped == {"duplicate": 1}
    assert len(backend.prompts) == 1 + 2 + 2  # one bootstrap request, two tasks
    assert list(tmp_path.iterdir()) == []  # nothing written


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
    assert paper.kept == 0 and paper.rejected_by_reason == {"truncated": 5}
    refined = run_preview(RunConfig(recipe="refined"), FakeBackend(canned(finish="length")))
    assert refined.kept == 3 and refined.rejected_by_reason["truncated"] == 1


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
    assert list(work.iterdir()) == []  # no run directory, no cache file
    assert not home.exists() or not any(p.is_file() for p in home.rglob("*"))
