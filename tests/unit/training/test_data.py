"""Reading exports back as fine-tuning examples: each format, and each kind of bad input
giving one line that names the file, the line (or row) and the field."""

from __future__ import annotations

import json
import sys

import pytest

from selfinstruct.cli import main
from selfinstruct.errors import UserError
from selfinstruct.prompts import PromptTemplates
from selfinstruct.training.data import read_training_data

ROWS = [{"instruction": f"Name a colour number {k}.", "input": "" if k % 2 else f"case {k}",
         "output": f"Colour {k}"} for k in range(20)]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_alpaca_examples_use_a_template_per_example_deterministically(tmp_path):
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps(ROWS), encoding="utf-8")
    data = read_training_data(path, seed=3)
    assert data.format == "alpaca" and len(data.examples) == 20 and len(data.sha256) == 64
    templates = PromptTemplates.load()
    layouts = {(ex.prompt.replace(row["instruction"], "{instruction}")
                .replace(row["input"] or "\0", "{input}"))
               for ex, row in zip(data.examples, ROWS)}
    known = {p for p, _ in templates.finetuning_with_input + templates.finetuning_without_input}
    assert layouts <= known and len(layouts) > 2  # several of the paper's layouts, no other
    for ex, row in zip(data.examples, ROWS):
        assert row["output"] in ex.completion and not ex.chat
    assert read_training_data(path, seed=3) == data
    assert read_training_data(path, seed=4).examples != data.examples


def test_prompt_completion_rows_are_used_as_written(tmp_path):
    path = write_jsonl(tmp_path / "pc.jsonl", [{"prompt": "Say hi\nOutput:",
                                                "completion": " hi<|endoftext|>"}])
    data = read_training_data(path)
    assert data.format == "prompt-completion"
    assert [(e.prompt, e.completion, e.chat) for e in data.examples] == [
        ("Say hi\nOutput:", " hi<|endoftext|>", False)]


def test_chat_rows_keep_user_and_assistant_text(tmp_path):
    path = write_jsonl(tmp_path / "chat.jsonl", [{"messages": [
        {"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "hi"}]}])
    data = read_training_data(path)
    assert data.format == "chat"
    assert [(e.prompt, e.completion, e.chat) for e in data.examples] == [("Say hi", "hi", True)]


def test_parquet_is_read_like_alpaca(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "instances.bin"  # found by its magic bytes, not the name
    pq.write_table(pa.table({"id": ["t1", "t2"], "instruction": ["Add 1 and 1.", "Greet."],
                             "input": ["", "Bob"], "output": ["2", "Hello Bob"],
                             "is_classification": [False, False]}), path)
    data = read_training_data(path)
    assert data.format == "parquet"
    assert [e.completion.split("<|endoftext|>")[0].strip() for e in data.examples] == [
        "2", "Hello Bob"]


@pytest.mark.parametrize("name, content, expected", [
    ("empty.jsonl", "\n\n", "the file is empty"),
    ("broken.jsonl", '{"prompt": "a", "completion": "b"}\n{"prompt": \n',
     "broken.jsonl:2: not valid JSON"),
    ("nooutput.json", json.dumps([ROWS[0], {"instruction": "x", "input": ""}]),
     "nooutput.json: item 2: field 'output' is missing"),
    ("number.json", json.dumps([{"instruction": "x", "input": "", "output": 3}]),
     "number.json: item 1: field 'output' must be a string, not int"),
    ("object.json", "[1, 2", "object.json:1: not valid JSON"),
    ("nocompletion.jsonl", '{"prompt": "a"}\n',
     "nocompletion.jsonl:1: field 'completion' is missing"),
    ("emptyprompt.jsonl", '{"prompt": " ", "completion": "b"}\n',
     "emptyprompt.jsonl:1: field 'prompt' is empty"),
    ("role.jsonl", json.dumps({"messages": [{"role": "user", "content": "a"},
                                            {"role": "system", "content": "b"}]}) + "\n",
     "role.jsonl:1: field 'messages[1].role' must be 'assistant'"),
    ("mixed.jsonl", '{"prompt": "a", "completion": "b"}\n{"messages": []}\n',
     "mixed.jsonl:2: a chat row in a prompt-completion file"),
    ("emptylist.json", "[]", "emptylist.json: holds no examples"),
])
def test_bad_input_names_file_line_and_field(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError) as caught:
        read_training_data(path)
    message = str(caught.value)
    assert expected in message and "\n" not in message


def test_parquet_missing_column_is_named(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"instruction": ["a"], "input": [""]}), path)
    with pytest.raises(UserError, match="parquet column 'output' is missing"):
        read_training_data(path)


def test_cli_bad_data_is_one_line_and_exit_2(tmp_path, capsys):
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps([{"instruction": "x", "input": ""}]), encoding="utf-8")
    code = main(["finetune", "--data", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [
        f"selfinstruct: error: {path}: item 1: field 'output' is missing"]
    assert not (tmp_path / "out").exists()


def test_without_the_train_extra_the_command_says_how_to_install_it(tmp_path, capsys,
                                                                      monkeypatch):
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps(ROWS[:2]), encoding="utf-8")
    monkeypatch.setitem(sys.modules, "peft", None)  # import peft now fails as if not installed
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # finetune's default; restored after
    code = main(["finetune", "--data", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "pip install 'selfinstruct[train]'" in err[0] and "peft is missing" in err[0]
