"""GGUF files converted once to a transformers directory, so that torch loads them fast.

transformers reads a ``.gguf`` by de-quantizing every tensor in Python: 27 s for SmolLM2
and about 50 s for Gemma 3 270M on 2 cores, paid by every fine-tune, every
``--backend transformers`` run and every round of the loop. The first load writes the
de-quantized float32 weights (safetensors), the config and the tokenizer to
``$SELFINSTRUCT_HOME/torch/<sha256 of the GGUF, 16 hex>/`` (``~/.cache/selfinstruct`` when
unset); later loads read that directory in under a second. The weights are bit for bit
those of the GGUF load (checked by hand on SmolLM2; ``tests/integration/test_lora_gguf.py``
compares the torch side, loaded from the conversion, with llama.cpp's logits), so a cached
load trains and generates exactly as an uncached one.

A GGUF's bytes name its directory, so an edited or replaced file never meets a stale
conversion. The directory is written under a temporary name and renamed into place: a
crash leaves no half-written conversion, and two processes converting at once both end
with the same directory. Delete the folder to reclaim the space (SmolLM2 about 0.5 GB,
Gemma 3 270M about 1.1 GB); it is rebuilt on the next load.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from selfinstruct.files import file_sha256
from selfinstruct.home import home_dir

# Everything a transformers directory needs; the conversion is complete when config.json,
# written last, is there.
DONE_MARKER = "config.json"


def conversions_dir() -> Path:
    return home_dir() / "torch"


def conversion_of(gguf: Path) -> Path:
    """Where ``gguf``'s conversion lives (whether or not it exists yet)."""
    return conversions_dir() / file_sha256(gguf)[:16]


def is_complete(folder: Path) -> bool:
    return (folder / DONE_MARKER).is_file()


def save_conversion(target: Path, model, tokenizer) -> Path:
    """Write a float32 model loaded from a GGUF (and its tokenizer) as that GGUF's
    conversion ``target`` (``conversion_of(gguf)``). Best effort: a full disk or a read-only
    cache costs the next load its speed, nothing else, so an OSError is swallowed."""
    from safetensors.torch import save_model

    if is_complete(target):
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    except OSError:
        return target
    try:
        save_model(model, str(staging / "model.safetensors"))
        tokenizer.save_pretrained(str(staging))
        config = model.config.to_dict()
        config.pop("quantization_config", None)  # the weights are plain floats now
        (staging / DONE_MARKER).write_text(json.dumps(config, indent=2) + "\n")
        os.rename(staging, target)
    except OSError:  # another process won the rename, or the disk is full
        pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
