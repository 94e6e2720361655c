"""User-oriented evaluation: prompts, response files, the judge's parsing and records.

The judge and the generator run here on a fake backend built from a plain function; the
real embedded model is exercised in tests/integration/test_eval_embedded.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from paths import ORIGINAL

from selfinstruct.backends.base import Completion
from selfinstruct.backends.fake import FakeBackend
from selfinstruct.cli import main
from selfinstruct.errors import UserError
from selfinstruct.evaluation.judge import JUDGE_RUBRIC, judge, judge_prompt, parse_rating
from selfinstruct.evaluation.ratings import distributions, ratings_log
from selfinstruct.evaluation.user_oriented import (
    Response,
    build_prompt,
    load_items,
    load_responses,
    model_name_from_path,
    run_user_oriented,
    safe_name,
)

PREDICTIONS = sorted((ORIGINAL / "human_eval_predictions").glob("*_predictions.jsonl"))
needs_original = pytest.mark.skipif(
    not (ORIGINAL / "user_oriented_instructions.jsonl").is_file() or len(PREDICTIONS) != 8,
    reason=f"the original Self-Instruct data (8 prediction files) is not at {ORIGINAL}")


def replying(reply, fail_when=lambda prompt: False) -> FakeBackend:
    """A fake backend that answers ``reply(prompt)``, or fails where ``fail_when(prompt)``."""
    return FakeBackend(lambda r: Completion.failed("boom") if fail_when(r.prompt)
                       else Completion(reply(r.prompt), "stop", 10, 5))


FAKE_MODEL = {"name": "fake", "backend": "fake"}


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _items_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "uo.jsonl", [
        {"id": "user_oriented_task_0", "motivation_app": "Grammarly",
         "instruction": "Fix the grammar. ", "instances": [{"input": "she go home",
                                                            "output": "She goes home."}]},
        {"id": "user_oriented_task_1", "motivation_app": "Gmail",
         "instruction": "Write a greeting.", "instances": [{"input": "", "output": "Hi!"}]},
    ])


# --- prompts and files -------------------------------------------------------------------

def test_prompt_layouts():
    assert build_prompt(" Fix it.\n", " a b ") == "Fix it.\n\nInput: a b\nOutput:"
    assert build_prompt("Say hi.", "") == "Say hi.\nOutput:"


@needs_original
@pytest.mark.parametrize("path", PREDICTIONS, ids=lambda p: p.name)
def test_prompts_equal_the_original_prompts_byte_for_byte(path):
    items = load_items(ORIGINAL / "user_oriented_instructions.jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(items) == len(rows) == 252
    for item, row in zip(items, rows):
        assert build_prompt(item.instruction, item.input) == row["prompt"]


@needs_original
def test_original_files_load_with_ids_in_dataset_order():
    items = load_items(ORIGINAL / "user_oriented_instructions.jsonl")
    for path in PREDICTIONS:
        responses = load_responses(path)
        assert responses[0].model == path.name[: -len("_predictions.jsonl")]
        assert [r.instance_id for r in responses] == [i.id for i in items]
        # Position-based ids are right: the same instance on the same line.
        assert all(r.instruction.strip() == i.instruction.strip() and r.input == i.input
                   for r, i in zip(responses, items))


def test_model_names():
    assert model_name_from_path("x/text-davinci-003_predictions.jsonl") == "text-davinci-003"
    assert model_name_from_path("mine.jsonl") == "mine"
    assert safe_name("openai:gpt-4o") == "gpt-4o"
    assert safe_name("/models/My Model.gguf") == "My-Model"


def test_response_file_errors(tmp_path):
    with pytest.raises(UserError, match="--predictions: file not found"):
        load_responses(tmp_path / "nope.jsonl")
    bad = write_jsonl(tmp_path / "m_predictions.jsonl",
                      [{"instruction": "i", "input": "", "response": "r"},
                       {"instruction": "i", "input": ""}])
    with pytest.raises(UserError, match=r"m_predictions.jsonl:2: field 'response' is missing"):
        load_responses(bad)
    (tmp_path / "broken_predictions.jsonl").write_text(
        '{"instruction": "i", "response": "r"}\n{oops\n')
    with pytest.raises(UserError, match=r"broken_predictions.jsonl:2: not valid JSON"):
        load_responses(tmp_path / "broken_predictions.jsonl")


def test_run_writes_original_fields_and_resumes(tmp_path):
    data = _items_file(tmp_path)
    items = load_items(data)
    backend = replying(lambda prompt: " answer")
    result = run_user_oriented(backend, FAKE_MODEL, "fake", data, items[:1], tmp_path / "out")
    assert result.generated == 1
    result = run_user_oriented(backend, FAKE_MODEL, "fake", data, items, tmp_path / "out")
    assert (result.already_done, result.generated) == (1, 1)
    lines = (tmp_path / "out" / "fake_predictions.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [list(r) for r in records] == [["id", "prompt", "instruction", "input", "response",
                                           "target"]] * 2
    assert records[0]["prompt"] == "Fix the grammar.\n\nInput: she go home\nOutput:"
    assert records[1]["response"] == " answer" and records[1]["target"] == "Hi!"
    assert len(backend.prompts) == 2  # nothing asked twice
    # The judge reads the file back under the model name "fake".
    assert [r.model for r in load_responses(tmp_path / "out" / "fake_predictions.jsonl")] == [
        "fake", "fake"]


def test_resume_with_another_model_is_refused(tmp_path):
    data = _items_file(tmp_path)
    items = load_items(data)
    run_user_oriented(replying(lambda p: "x"), FAKE_MODEL, "fake", data, items, tmp_path)
    with pytest.raises(UserError, match="was made with model="):
        run_user_oriented(replying(lambda p: "x"), {"name": "other"}, "fake", data, items,
                          tmp_path)


# --- the judge ---------------------------------------------------------------------------

@pytest.mark.parametrize("reply, rating, reasoning", [
    (" B\nReasoning: Minor typo.", "B", "Minor typo."),
    (" A", "A", ""),
    ("(C)\nReasoning: goes on", "C", "goes on"),
    ("D. It is empty.", "D", "It is empty."),
    ("Rating: A\nReasoning: good\n### Instruction:\nnext", "A", "good"),
    ("Sure!\n**Rating:** B\n**Reasoning:** small slip", "B", "small slip"),
    ("I would rate it C because it rambles.", "C", "because it rambles."),
    ("The rating is D.", "D", ""),
])
def test_parse_rating(reply, rating, reasoning):
    assert parse_rating(reply) == (rating, reasoning, None)


@pytest.mark.parametrize("reply", ["", " A good answer overall.", "Rating: Acceptable",
                                   " The response is fine.", "E"])
def test_unparseable_replies_give_null_with_a_reason(reply):
    rating, _, error = parse_rating(reply)
    assert rating is None and "no rating letter A-D" in error


def test_rubric_states_the_scale_and_is_the_prompt_prefix():
    for text in ("A: The response is valid and satisfying.",
                 "B: The response is acceptable but has minor errors or imperfections.",
                 ("C: The response is relevant and responds to the instruction, but it has "
                  "significant errors in the content."),
                 "D: The response is irrelevant or completely invalid."):
        assert text in JUDGE_RUBRIC
    prompt = judge_prompt("Do X.", "", "  ")
    assert prompt.startswith(JUDGE_RUBRIC)
    assert prompt.endswith("\nDo X.\n\n### Input:\n(none)\n\n### Response:\n(empty)\n\n"
                           "### Evaluation:\nRating:")


def _responses():
    return [Response("m1", f"user_oriented_task_{k}", f"instr {k}", "", f"resp {k}")
            for k in range(3)] + [Response("m2", "user_oriented_task_0", "instr 0", "", "zzz")]


def test_judge_records_ratings_and_resumes(tmp_path):
    replies = {"resp 0": " A\nReasoning: fine", "resp 1": " whatever",
               "resp 2": " C\nReasoning: errors", "zzz": " D\nReasoning: off"}
    backend = replying(lambda p: next(v for k, v in replies.items() if k in p),
                          fail_when=lambda p: "resp 2" in p)
    result = judge(backend, {"name": "fakejudge"}, _responses(), tmp_path)
    assert (result.rated, result.unparsed, result.failed) == (3, 1, 1)
    records = ratings_log(tmp_path).recover()
    assert [(r["model"], r["instance_id"], r["rating"]) for r in records] == [
        ("m1", "user_oriented_task_0", "A"), ("m1", "user_oriented_task_1", None),
        ("m2", "user_oriented_task_0", "D")]
    first = records[0]
    assert first["rater"] == "judge:fakejudge" and first["reasoning"] == "fine"
    assert first["parse_error"] is None and first["judge_output"] == " A\nReasoning: fine"
    assert first["format_version"] == 1 and "rated_at" in first
    assert records[1]["parse_error"].startswith("no rating letter")
    # The failed request was not recorded; a re-run asks only for it.
    backend2 = replying(lambda p: " C\nReasoning: errors")
    result = judge(backend2, {"name": "fakejudge"}, _responses(), tmp_path)
    assert (result.already_rated, result.rated) == (3, 1) and len(backend2.prompts) == 1
    dists = {d.model: d.counts for d in distributions(ratings_log(tmp_path).recover(),
                                                      "judge:fakejudge", ["m1", "m2"])}
    assert dists["m1"] == {"A": 1, "B": 0, "C": 1, "D": 0, "unparsed": 1}
    assert dists["m2"]["D"] == 1


def test_judge_passes_the_rubric_as_prefix(tmp_path):
    backend = replying(lambda p: " A")
    judge(backend, {"name": "j"}, _responses()[:1], tmp_path)
    seen = backend.requests
    assert seen[0].prefix == JUDGE_RUBRIC and seen[0].sampling.temperature == 0.0


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    from selfinstruct.evaluation.plot import plot_ratings
    from selfinstruct.evaluation.ratings import Distribution

    d1, d2 = Distribution("m1"), Distribution("m2")
    d1.counts.update(A=5, B=3, C=1, D=1)
    d2.counts.update(A=1, D=8, unparsed=1)
    png = plot_ratings([d1, d2], tmp_path / "r.png", "title")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_original
def test_cli_judge_on_two_original_files(tmp_path, monkeypatch, capsys):
    from selfinstruct.backends import registry
    from selfinstruct.backends.registry import ModelInfo

    backend = replying(lambda p: " B\nReasoning: ok")
    monkeypatch.setattr(registry, "open_backend",
                        lambda model, **kw: (backend, ModelInfo(name=model, backend="fake")))
    files = [str(PREDICTIONS[0]), str(PREDICTIONS[-1])]
    code = main(["eval", "user-oriented", "judge", "--judge", "fakejudge", "--predictions",
                 *files, "--out", str(tmp_path), "--limit", "3", "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "Ratings by judge:fakejudge" in out
    records = ratings_log(tmp_path).recover()
    assert len(records) == 6 and {r["rating"] for r in records} == {"B"}
    assert {r["model"] for r in records} == {Path(f).name[: -len("_predictions.jsonl")]
                                             for f in files}
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "pip install" in out
    else:
        assert (tmp_path / "ratings.png").is_file()
