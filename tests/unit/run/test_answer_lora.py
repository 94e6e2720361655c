"""--answer-lora (and --lora) are checked when the run opens, before anything is written,
not at the instances stage after the bootstrap has run."""

from __future__ import annotations

import pytest

from selfinstruct.cli import main
from selfinstruct.errors import UserError
from selfinstruct.run.config import RunConfig
from selfinstruct.run.context import open_context


def test_a_missing_answering_adapter_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(UserError, match="--answer-lora: no such adapter file: nope.gguf"):
        open_context(tmp_path / "run", RunConfig(answer_lora="nope.gguf"))
    assert not (tmp_path / "run").exists()


def test_an_answering_adapter_needs_an_embedded_model(tmp_path):
    adapter = tmp_path / "a.gguf"
    adapter.write_bytes(b"GGUF")
    with pytest.raises(UserError, match="--answer-lora applies to an embedded GGUF model"):
        open_context(tmp_path / "run", RunConfig(model="m", base_url="http://127.0.0.1:9/v1",
                                                 answer_lora=str(adapter)))


def test_the_cli_says_it_in_one_line(tmp_path, capsys):
    code = main(["generate", "--out", str(tmp_path / "run"), "--answer-lora", "nope.gguf"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--answer-lora: no such adapter file" in err
    assert not (tmp_path / "run").exists()
