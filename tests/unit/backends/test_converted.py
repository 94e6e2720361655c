"""The GGUF-to-transformers conversion cache: where it lives, when it counts as done, and
that a failure to write it costs nothing but speed. (That a cached load equals the GGUF
load is checked on the real model by tests/integration/test_lora_gguf.py, whose torch side
now loads from the conversion.)"""

from __future__ import annotations

import json
import os

import pytest

torch = pytest.importorskip("torch")
from safetensors.torch import load_file

from selfinstruct.backends.converted import (
    conversion_of,
    conversions_dir,
    is_complete,
    save_conversion,
)


class _Config:
    def to_dict(self):
        return {"model_type": "llama", "hidden_size": 4,
                "quantization_config": {"quant_method": "gguf"}}


class _Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(4, 4)
        self.config = _Config()


class _Tokenizer:
    def save_pretrained(self, folder):
        with open(os.path.join(folder, "tokenizer.json"), "w") as handle:
            handle.write("{}")


@pytest.fixture
def gguf(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFINSTRUCT_HOME", str(tmp_path / "home"))
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF one")
    return path


def test_the_conversion_is_named_by_the_gguf_bytes_under_the_home(gguf, tmp_path):
    first = conversion_of(gguf)
    assert first.parent == conversions_dir()
    assert str(first).startswith(os.environ["SELFINSTRUCT_HOME"])
    gguf.write_bytes(b"GGUF two")
    assert conversion_of(gguf) != first  # an edited file never meets a stale conversion


def test_a_saved_conversion_is_found_with_plain_float_weights_and_no_gguf_config(gguf):
    model = _Model()
    assert not is_complete(conversion_of(gguf))
    folder = save_conversion(conversion_of(gguf), model, _Tokenizer())
    assert folder == conversion_of(gguf) and is_complete(folder)
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    saved = load_file(str(folder / "model.safetensors"))
    assert torch.equal(saved["proj.weight"], model.proj.weight)
    assert (folder / "tokenizer.json").is_file()
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no staging left


def test_a_half_written_conversion_does_not_count(gguf):
    folder = conversion_of(gguf)
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"partial")
    assert not is_complete(folder)


def test_an_unwritable_cache_costs_speed_not_the_load(gguf):
    conversions_dir().parent.mkdir(parents=True, exist_ok=True)
    conversions_dir().write_text("a file where the folder should be")
    folder = save_conversion(conversion_of(gguf), _Model(), _Tokenizer())  # no exception
    assert not is_complete(folder) and not folder.exists()
    conversions_dir().unlink()
