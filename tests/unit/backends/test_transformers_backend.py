"""Pure pieces of the transformers backend: stop strings, OpenAI-style penalties, identity."""

from __future__ import annotations

import pytest

from selfinstruct.backends.hf_models import ModelSource, resolve_source
from selfinstruct.backends.transformers_backend import cut_at_stop, weights_digest
from selfinstruct.errors import UserError


def test_cut_at_the_earliest_stop_string():
    assert cut_at_stop("one\n\ntwo Task: three", ("Task:", "\n\n")) == ("one", True)
    assert cut_at_stop("no stop here", ("Task:",)) == ("no stop here", False)
    assert cut_at_stop("text", ()) == ("text", False)


def test_presence_and_frequency_penalties_have_the_openai_meaning():
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from selfinstruct.backends.transformers_backend import _penalty_processor

    prompt = torch.tensor([[5, 5, 5]])  # prompt tokens are never penalised
    generated = torch.tensor([[1, 2, 2]])
    scores = torch.zeros((1, 6))
    processor = _penalty_processor(presence=0.5, frequency=0.25, prompt_length=3)
    out = processor(torch.cat([prompt, generated], dim=1), scores)
    assert out[0].tolist() == [0.0, -0.75, -1.0, 0.0, 0.0, 0.0]
    assert processor(prompt, scores).tolist() == scores.tolist()  # nothing generated yet


def test_the_identity_changes_when_the_weights_do(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "README.md").write_text("not weights")
    source = ModelSource(tmp_path)
    first = weights_digest(source)
    (tmp_path / "README.md").write_text("edited")
    assert weights_digest(source) == first
    (tmp_path / "model.safetensors").write_bytes(b"retrained")
    assert weights_digest(source) != first


def test_model_specs_resolve_or_fail_in_one_line(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert resolve_source(str(tmp_path)) == ModelSource(tmp_path)
    with pytest.raises(UserError, match="no config.json"):
        resolve_source(str(tmp_path / ".."))
    with pytest.raises(UserError, match="no such model file"):
        resolve_source(str(tmp_path / "missing.gguf"))
    gguf = resolve_source("smollm2")
    assert gguf.gguf_file and gguf.gguf_file.endswith(".gguf")
