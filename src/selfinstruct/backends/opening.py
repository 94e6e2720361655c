"""The one way to open a model from options: a run, an evaluation, the loop and the judge
all describe the model they want as :class:`ModelOptions` and call :func:`open_model`.

What each name means is :mod:`selfinstruct.backends.registry`'s job; this module adds where
the model runs (in this process, or as Ray actors) and the checks that can fail before
anything is written or loaded (:func:`check_model`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

from selfinstruct.backends import registry
from selfinstruct.backends.base import Backend
from selfinstruct.backends.registry import ModelInfo
from selfinstruct.errors import UserError


@dataclass(frozen=True)
class ModelOptions:
    """Everything that decides which model answers and how it is reached."""

    model: str = "smollm2"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    n_ctx: int = 4096
    prefix_cache: bool = True
    request_timeout: float = 120.0
    lora: str | None = None
    n_threads: int | None = None  # llama.cpp threads; None: chosen from the free cores
    # the embedded model decodes this many requests together (the runs' --max-concurrency)
    batch_size: int = 1
    executor: str = "local"  # or "ray"
    ray_address: str | None = None
    replicas: int = 0

    @property
    def embedded(self) -> bool:
        """A GGUF model run in this process by llama.cpp (not a server, not torch)."""
        return self.base_url is None and not registry.prefix_of(self.model)

    def with_lora(self, lora: str | None) -> ModelOptions:
        return replace(self, lora=lora)

    def backend_options(self) -> dict:
        """The keyword arguments of :func:`registry.open_backend` (also sent to each Ray
        actor)."""
        options = asdict(self)
        for where in ("model", "executor", "ray_address", "replicas"):
            del options[where]
        return options


def open_model(options: ModelOptions) -> tuple[Backend, ModelInfo]:
    """Open the model ``options`` describe: in process, or pooled over Ray actors."""
    if options.executor == "ray":  # the only place that imports Ray
        from selfinstruct.backends.pool.ray_actors import open_on_ray

        per_actor = options.backend_options()
        del per_actor["n_threads"]  # each actor runs on the cores Ray gives it
        return open_on_ray(options.model, per_actor, address=options.ray_address,
                           replicas=options.replicas)
    return registry.open_backend(options.model, **options.backend_options())


def check_model(options: ModelOptions, flag: str = "--lora") -> None:
    """Fail on an unknown model name, or an adapter that cannot apply, without loading
    anything (so a run refuses before it writes)."""
    if options.embedded:
        from selfinstruct.backends.bundled import resolve_gguf

        resolve_gguf(options.model)
    if options.lora is None:
        return
    if not options.embedded:
        raise UserError(f"{flag} applies to an embedded GGUF model, not to a server or "
                        "transformers model")
    if not Path(options.lora).expanduser().is_file():
        raise UserError(f"{flag}: no such adapter file: {options.lora}")
