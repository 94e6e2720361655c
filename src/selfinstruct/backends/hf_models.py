"""Load a causal language model into transformers (torch), from any place we know models live.

One function, :func:`load_causal_lm`, used by the transformers backend and by fine-tuning,
so that both read a model the same way. A ``spec`` is one of:

- a transformers model directory (has ``config.json``), e.g. what ``selfinstruct finetune``
  writes to ``OUT/merged``;
- a ``.gguf`` file: transformers reads it through the ``gguf`` package and de-quantizes it
  to float weights (Q4 weights come back as floats; the tokenizer is rebuilt from the
  GGUF metadata);
- a bundled model name (``smollm2``, ``gemma-3-270m``), resolved to its GGUF file the same
  way the embedded backend resolves it.

torch and transformers are imported here, lazily, and only here: the core install
(``pip install selfinstruct``) does not have them. ``pip install 'selfinstruct[train]'``
does.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from selfinstruct.backends.converted import conversion_of, is_complete, save_conversion
from selfinstruct.errors import UserError

TRAIN_EXTRA_HINT = "pip install 'selfinstruct[train]'"


@dataclass(frozen=True)
class ModelSource:
    """Where a model's weights are: a directory, or a GGUF file inside ``directory``."""

    directory: Path
    gguf_file: str | None = None

    @property
    def label(self) -> str:
        return str(self.directory / self.gguf_file) if self.gguf_file else str(self.directory)


def resolve_source(spec: str) -> ModelSource:
    """A model spec to the files that hold it; a one-line UserError when there are none."""
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"{spec}: not a transformers model directory (no config.json)")
        return ModelSource(path)
    if path.suffix == ".gguf" or path.exists():
        if not path.is_file():
            raise UserError(f"{spec}: no such model file")
        return ModelSource(path.parent, path.name)
    from selfinstruct.backends.bundled import resolve_gguf

    gguf = resolve_gguf(spec)
    return ModelSource(gguf.parent, gguf.name)


def passive_openmp_threads() -> None:
    """Let idle OpenMP threads sleep instead of spinning (unless the user chose otherwise).

    With spinning threads (OpenMP's default), torch on a CPU shared with other work can be
    30 times slower: measured on 2 busy cores, one SmolLM2 forward and backward took 68 s
    with 2 spinning threads, 2.5 s with passive ones, 1.8 s with one thread. libgomp reads
    the setting once, when torch is first imported, so it only takes effect if torch is
    not imported yet (always the case for the CLI)."""
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def require_torch():
    """Import torch and transformers, or say which extra installs them."""
    passive_openmp_threads()
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise UserError(f"this needs torch and transformers: {TRAIN_EXTRA_HINT} ({exc.name} "
                        "is missing)") from None
    return torch, transformers


def default_device() -> str:
    torch, _ = require_torch()
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_tokenizer(spec: str | ModelSource):
    """The tokenizer of a model, with a pad token set (left padding for batched generation
    is the caller's choice)."""
    source = spec if isinstance(spec, ModelSource) else resolve_source(spec)
    return _tokenizer_of(fast_source(source)[0])


def _tokenizer_of(source: ModelSource):
    _, transformers = require_torch()
    kwargs = {"gguf_file": source.gguf_file} if source.gguf_file else {}
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(source.directory), **kwargs)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(spec: str | ModelSource, *, device: str | None = None,
                   dtype: str = "auto"):
    """``(model, tokenizer)`` for a spec. ``dtype="auto"``: float32 on CPU (bfloat16 matmuls
    are slow on most CPUs), bfloat16 on a GPU that supports it."""
    torch, transformers = require_torch()
    source, conversion = fast_source(
        spec if isinstance(spec, ModelSource) else resolve_source(spec))
    device = device or default_device()
    if dtype == "auto":
        dtype = ("bfloat16" if device.startswith("cuda") and torch.cuda.is_bf16_supported()
                 else "float32")
    kwargs = {"gguf_file": source.gguf_file} if source.gguf_file else {}
    transformers.logging.set_verbosity_error()
    try:
        # A GGUF is read at float32 whatever the dtype asked, so that its conversion (below)
        # is exact; the cast comes after.
        model = transformers.AutoModelForCausalLM.from_pretrained(
            str(source.directory), dtype=torch.float32 if source.gguf_file else
            getattr(torch, dtype), **kwargs)
    except (OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{source.label}: cannot load as a causal LM: {first_line}") from None
    tokenizer = _tokenizer_of(source)
    if conversion is not None:  # a GGUF read for the first time
        save_conversion(conversion, model, tokenizer)
        model.to(getattr(torch, dtype))
    model.to(device)
    model.eval()
    return model, tokenizer


def fast_source(source: ModelSource) -> tuple[ModelSource, Path | None]:
    """``(what to load, where its conversion is still to be written)``: a GGUF's converted
    transformers directory when there is one (see ``converted``), else the source itself
    and, for a GGUF, its conversion folder (the file is hashed once)."""
    if not source.gguf_file:
        return source, None
    conversion = conversion_of(source.directory / source.gguf_file)
    if is_complete(conversion):
        return ModelSource(conversion), None
    return source, conversion
