"""SuperNI scoring: the official definition, a hand-worked example, the published baseline.

The official script is allenai/natural-instructions ``eval/automatic/evaluation.py``.
``_official_compute_metrics`` below restates its ``compute_metrics`` for the default track
line by line, so that our implementation is checked against the definition on real data,
not only against itself.
"""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

import pytest
from paths import SHARED

from selfinstruct.cli import main
from selfinstruct.errors import UserError
from selfinstruct.evaluation.superni import (
    SuperNIInstance,
    exact_match,
    load_instances,
    load_predictions,
    normalize_answer,
    rouge_l,
    score,
)

SUPERNI = SHARED / "data" / "superni-test" / "superni_test_en.jsonl"
needs_superni = pytest.mark.skipif(
    not SUPERNI.is_file(), reason=f"the shared SuperNI test set is not at {SUPERNI}")


def inst(id, outputs, task="taskA", category="Cat X", input="in"):
    return SuperNIInstance(task=task, category=category, definition="Do it.", id=id,
                           input=input, outputs=tuple(outputs))


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# --- the official definition, restated ------------------------------------------------

def _official_normalize_answer(s):
    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_punc(lower(s)))


def _official_compute_metrics(predictions, references):
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    em, rl = 0, 0
    for pred, gold in zip(predictions, references):
        em += max(_official_normalize_answer(pred) == _official_normalize_answer(g)
                  for g in gold)
        rl += max(scorer.score(prediction=pred, target=g)["rougeL"].fmeasure for g in gold)
    return {"exact_match": round(100.0 * em / len(references), 4),
            "rougeL": round(100.0 * rl / len(references), 4)}


# --- hand-worked -------------------------------------------------------------------------

def test_hand_worked_example():
    """Three instances, two tasks, one missing prediction.

    i1 (taskA): prediction "the cat sat on the mat", reference "a cat sat on a mat".
        Tokens: [the cat sat on the mat] and [a cat sat on a mat], 6 each.
        LCS = cat sat on mat = 4, so P = R = 4/6 and F = 2PR/(P+R) = 4/6 = 0.6667.
        Exact match: "the cat sat on the mat" != "a cat sat on a mat" -> 0 (articles kept).
    i2 (taskA): prediction "no", references ["The answer is no", "No."].
        vs "The answer is no": P = 1/1, R = 1/4, F = 2 * 1 * 0.25 / 1.25 = 0.4.
        vs "No.": tokens [no] and [no], F = 1.0.  Max = 1.0.
        Exact match: normalize("No.") = "no" = normalize("no") -> 1.
    i3 (taskB): no prediction, scored as "" -> ROUGE-L 0, exact match 0.

    Overall ROUGE-L = 100 * (0.6667 + 1.0 + 0) / 3 = 55.5556; exact match = 100 * 1/3 = 33.3333.
    taskA: ROUGE-L = 100 * (0.6667 + 1.0) / 2 = 83.3333, exact match 50.0; taskB: 0, 0.
    """
    instances = [
        inst("i1", ["a cat sat on a mat"]),
        inst("i2", ["The answer is no", "No."]),
        inst("i3", ["running dogs"], task="taskB", category="Cat Y"),
    ]
    scores = score(instances, {"i1": "the cat sat on the mat", "i2": "no"}).as_dict()
    assert scores["rougeL"] == pytest.approx(55.5556)
    assert scores["exact_match"] == pytest.approx(33.3333)
    assert scores["missing_predictions"] == 1
    assert scores["per_task"]["taskA"]["rougeL"] == pytest.approx(83.3333)
    assert scores["per_task"]["taskA"]["exact_match"] == 50.0
    assert scores["per_task"]["taskB"] == {"rougeL": 0.0, "exact_match": 0.0, "instances": 1,
                                           "category": "Cat Y"}
    assert scores["per_category"]["Cat X"]["rougeL"] == pytest.approx(83.3333)
    assert scores["per_category"]["Cat Y"]["instances"] == 1


def test_rouge_uses_porter_stemming_and_default_tokenizer():
    # "running dogs" and "run dog" stem to the same tokens; exact match still differs.
    assert rouge_l("run dog", "running dogs") == 1.0
    assert exact_match("run dog", "running dogs") == 0.0
    # The default tokenizer lowercases and splits on anything not [a-z0-9].
    assert rouge_l("HELLO,world!", "hello world") == 1.0


def test_exact_match_normalisation_keeps_articles():
    assert normalize_answer("  The  Cat, sat!  ") == "the cat sat"
    assert exact_match("The cat.", "the CAT") == 1.0
    assert exact_match("the cat", "cat") == 0.0  # articles are not removed
    assert exact_match("café", "cafe") == 0.0  # only ASCII punctuation is stripped


def test_max_over_references():
    scores = score([inst("i", ["wrong answer", "entailment", "Entailment."])],
                   {"i": "entailment"}).as_dict()
    assert scores["rougeL"] == 100.0
    assert scores["exact_match"] == 100.0


def test_empty_prediction_scores_zero():
    scores = score([inst("i", ["yes"])], {"i": ""}).as_dict()
    assert scores["rougeL"] == 0.0 and scores["exact_match"] == 0.0
    assert scores["missing_predictions"] == 0


def test_unknown_ids_are_ignored_and_counted():
    scores = score([inst("i", ["yes"])], {"i": "yes", "typo": "no", "other": "x"})
    assert scores.as_dict()["rougeL"] == 100.0
    assert sorted(scores.unknown_ids) == ["other", "typo"]
    assert scores.as_dict()["unknown_prediction_ids"] == 2


def test_repeated_prediction_id_keeps_the_last(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": "i", "prediction": "no"},
                                              {"id": "i", "prediction": "yes"}])
    assert load_predictions(path) == {"i": "yes"}


@needs_superni
def test_matches_the_official_definition_on_real_data():
    instances = load_instances(SUPERNI)
    rng = random.Random(0)
    sample = rng.sample(instances, 300)
    # A mix of predictions: a reference, a mangled reference, the input, empty, noise.
    predictions = {}
    for k, item in enumerate(sample):
        choice = k % 5
        ref = item.outputs[-1]
        predictions[item.id] = [ref, ref.upper() + "!!", item.input[:200], "",
                                "the " + " ".join(ref.split()[:3]) + " runs"][choice]
    ours = score(sample, predictions).as_dict()
    official = _official_compute_metrics([predictions[i.id] for i in sample],
                                         [list(i.outputs) for i in sample])
    assert ours["rougeL"] == official["rougeL"]
    assert ours["exact_match"] == official["exact_match"]


@needs_superni
@pytest.mark.slow
def test_copy_instance_input_baseline_matches_the_published_14_20():
    """SuperNI's "Copying Instance Input" heuristic baseline: ROUGE-L 14.20 on the English
    (default) track, published in the SuperNI paper (Table 3) and the Tk-Instruct README.
    It needs only the data: each instance's input is its prediction."""
    instances = load_instances(SUPERNI)
    assert len(instances) == 11810
    scores = score(instances, {i.id: i.input for i in instances}).as_dict()
    assert round(scores["rougeL"], 2) == 14.20
    assert scores["rougeL"] == pytest.approx(14.1966, abs=1e-4)


# --- files and CLI -----------------------------------------------------------------------

def _data_records():
    return [
        {"task": "taskA", "category": "Cat X", "definition": "Say yes.", "id": "a1",
         "input": "x", "outputs": ["yes"], "input_language": ["English"],
         "output_language": ["English"]},
        {"task": "taskB", "category": "Cat Y", "definition": "Say no.", "id": "b1",
         "input": "y", "outputs": ["no", "nope"], "input_language": ["English"],
         "output_language": ["English"]},
    ]


def test_cli_score_writes_metrics_and_warns_on_unknown_ids(tmp_path, capsys):
    data = write_jsonl(tmp_path / "data.jsonl", _data_records())
    preds = write_jsonl(tmp_path / "pred.jsonl", [{"id": "a1", "prediction": "Yes."},
                                                  {"id": "zzz", "prediction": "no"}])
    out = tmp_path / "metrics.json"
    code = main(["eval", "superni", "score", "--data", str(data), "--predictions", str(preds),
                 "-o", str(out), "--quiet"])
    assert code == 0
    metrics = json.loads(out.read_text())
    assert metrics["rougeL"] == 50.0 and metrics["exact_match"] == 50.0
    assert set(metrics["per_category"]) == {"Cat X", "Cat Y"}
    assert metrics["per_task"]["taskB"]["rougeL"] == 0.0
    err = capsys.readouterr().err
    assert "1 predictions have ids not in" in err and "zzz" in err
    assert "1 of 2 instances have no prediction" in err


def test_missing_file_is_a_user_error(tmp_path, capsys):
    data = write_jsonl(tmp_path / "data.jsonl", _data_records())
    code = main(["eval", "superni", "score", "--data", str(data),
                 "--predictions", str(tmp_path / "nope.jsonl"), "--quiet"])
    assert code == 2
    assert "--predictions: file not found" in capsys.readouterr().err


def test_malformed_line_names_file_and_line(tmp_path, capsys):
    data = write_jsonl(tmp_path / "data.jsonl", _data_records())
    preds = tmp_path / "pred.jsonl"
    preds.write_text('{"id": "a1", "prediction": "yes"}\n{"id": "b1", "predic\n')
    code = main(["eval", "superni", "score", "--data", str(data), "--predictions", str(preds),
                 "-o", str(tmp_path / "m.json"), "--quiet"])
    assert code == 2
    assert f"{preds}:2: not valid JSON" in capsys.readouterr().err


@pytest.mark.parametrize("bad, message", [
    ({"id": "a1"}, "field 'prediction' is missing"),
    ({"id": 3, "prediction": "x"}, "field 'id' must be a string, got int"),
    ({"id": "a1", "prediction": ["x"]}, "field 'prediction' must be a string, got list"),
    (["a1", "x"], "expected a JSON object"),
])
def test_bad_prediction_lines(tmp_path, bad, message):
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": "ok", "prediction": ""}, bad])
    with pytest.raises(UserError, match=f"p.jsonl:2: {message}"):
        load_predictions(path)


@pytest.mark.parametrize("change, message", [
    ({"outputs": []}, "field 'outputs' is empty"),
    ({"outputs": "yes"}, "field 'outputs' must be a list"),
    ({"category": None}, "field 'category' must be a string"),
    ({"id": "a1"}, "field 'id' repeats 'a1'"),
])
def test_bad_data_lines(tmp_path, change, message):
    records = _data_records()
    records[1].update(change)
    path = write_jsonl(tmp_path / "d.jsonl", records)
    with pytest.raises(UserError, match=f"d.jsonl:2: {message}"):
        load_instances(path)


# --- generation (superni_run): prompt, trimming, selection, resume -----------------------

def _tk_reference(definition: str, input_text: str) -> str:
    """Tk-Instruct ``DataCollatorForNI`` with definition only (pos 0, neg 0), as its
    ``run_gpt3.py`` sends it: the source string, then ``.strip()``."""
    task_input = "Now complete the following example -\n"
    task_input += f"Input: {input_text.strip()}"
    if task_input[-1] not in string.punctuation:
        task_input += "."
    task_input += "\n"
    task_input += "Output: "
    definition = "Definition: " + definition.strip()
    if definition[-1] not in string.punctuation:
        definition += "."
    definition += "\n\n"
    return (definition + task_input).strip()


@pytest.mark.parametrize("definition, input_text", [
    ("Generate a title for the text", " The cat sat.\n"),
    ("Answer with yes or no.", "Is it raining"),
    (" Classify the sentence! ", "She left?"),
])
def test_tk_prompt_is_the_tk_instruct_layout(definition, input_text):
    from selfinstruct.evaluation.superni_run import build_prompt

    prompt = build_prompt("tk", definition, input_text)
    assert prompt == _tk_reference(definition, input_text)
    assert prompt.endswith("\nOutput:")


def test_tk_prompt_example():
    from selfinstruct.evaluation.superni_run import build_prompt

    assert build_prompt("tk", "Return the capital of the country", " India ") == (
        "Definition: Return the capital of the country.\n\n"
        "Now complete the following example -\nInput: India.\nOutput:")
    assert build_prompt("self-instruct", " Return the capital. ", "India") == (
        "Return the capital.\n\nInput: India\nOutput:")


def test_trim_modes():
    from selfinstruct.evaluation.superni_run import trim

    text = "\n\n Paris is the capital.\nIt is in France.\n\nInput: Spain\nOutput: Madrid"
    assert trim(text, "paragraph") == "Paris is the capital.\nIt is in France."
    assert trim(text, "tk-gpt3") == "Paris is the capital"
    assert trim(text, "none") == text.strip()


def test_select_first_n_of_named_tasks():
    from selfinstruct.evaluation.superni_run import select

    instances = [inst(f"a{k}", ["x"], task="taskA") for k in range(3)] + [
        inst(f"b{k}", ["x"], task="taskB") for k in range(3)]
    assert [i.id for i in select(instances, None, 2)] == ["a0", "a1", "b0", "b1"]
    assert [i.id for i in select(instances, ["taskB"], None)] == ["b0", "b1", "b2"]
    with pytest.raises(UserError, match="--tasks: taskC not in the data file"):
        select(instances, ["taskC"])
    with pytest.raises(UserError, match="--max-per-task must be at least 1"):
        select(instances, None, 0)


def test_fit_prompt_shortens_only_the_input():
    from selfinstruct.evaluation.fit import TRUNCATION_MARK, fit_prompt

    def render(text):
        return f"Definition: d\n\nInput: {text}\nOutput:"

    counter = (lambda s: len(s.split()), 20)  # one token per word, 20-token window
    long_input = " ".join(f"w{k}" for k in range(50))
    prompt, cut = fit_prompt(render, long_input, 10, counter)
    assert cut and prompt.endswith(TRUNCATION_MARK + "\nOutput:")
    assert prompt.startswith("Definition: d\n\nInput: w0 w1")
    assert len(prompt.split()) <= 10
    assert fit_prompt(render, "short", 10, counter) == (render("short"), False)
    assert fit_prompt(render, long_input, 10, None) == (render(long_input), False)


def _echo(text="\n yes\n\nmore", fail=()):
    """A fake backend: a fixed completion for every prompt, a failure for those that hold
    one of ``fail``."""
    from selfinstruct.backends.base import Completion
    from selfinstruct.backends.fake import FakeBackend

    return FakeBackend(lambda r: Completion.failed("boom") if any(f in r.prompt for f in fail)
                       else Completion(text, "stop"))


def test_run_writes_predictions_resumes_and_scores(tmp_path):
    from selfinstruct.evaluation.superni_run import SuperNIRunSettings, run_superni

    data = write_jsonl(tmp_path / "data.jsonl", _data_records())
    instances = load_instances(data)
    out = tmp_path / "run"
    backend = _echo(fail=("Input: y",))
    result = run_superni(backend, {"name": "echo"}, data, instances, out)
    assert (result.generated, result.failed) == (1, 1)
    records = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert records == [{"id": "a1", "task": "taskA", "prediction": "yes",
                        "completion": "\n yes\n\nmore", "finish_reason": "stop"}]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["rougeL"] == 50.0 and metrics["missing_predictions"] == 1
    # A crash left half a line: it is dropped, and the re-run asks only for what is missing.
    with open(out / "predictions.jsonl", "a") as handle:
        handle.write('{"id": "b1", "task": "taskB", "predi')
    backend2 = _echo(text=" no")
    result = run_superni(backend2, {"name": "echo"}, data, instances, out)
    assert (result.already_done, result.generated) == (1, 1) and len(backend2.requests) == 1
    ids = [json.loads(x)["id"] for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert ids == ["a1", "b1"]
    assert json.loads((out / "metrics.json").read_text())["rougeL"] == 100.0
    with pytest.raises(UserError, match="was made with template='tk', not 'self-instruct'"):
        run_superni(backend2, {"name": "echo"}, data, instances, out,
                    SuperNIRunSettings(template="self-instruct"))
