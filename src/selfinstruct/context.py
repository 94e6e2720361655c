"""Everything a stage needs, opened once per command: the run directory, the resolved
configuration, seeds, templates, the backend and its cache, usage counters, progress.

Opening a context on an existing run directory checks that the configuration matches
the manifest (a resumed run must not mix parameters) unless ``force_new`` is given.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import platform
import random
from dataclasses import dataclass, field
from pathlib import Path

from selfinstruct import __version__
from selfinstruct.backends.base import Backend
from selfinstruct.backends.cache import ResponseCache
from selfinstruct.backends.registry import ModelInfo, open_backend
from selfinstruct.budget import Budget
from selfinstruct.config import RunConfig, differences
from selfinstruct.errors import UserError
from selfinstruct.executor import UsageStats
from selfinstruct.progress import Reporter, SilentReporter
from selfinstruct.prompts import PromptTemplates
from selfinstruct.records import Task
from selfinstruct.rundir import FORMAT_VERSION, RunDir, read_manifest, write_manifest
from selfinstruct.seeds import load_seeds


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def derived_rng(seed: int, *parts: object) -> random.Random:
    """A generator that depends only on the run seed and a stable name for the choice."""
    return random.Random(":".join(str(p) for p in (seed, *parts)))


def derived_seed(seed: int, *parts: object) -> int:
    blob = ":".join(str(p) for p in (seed, *parts)).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "big") & 0x7FFFFFFF


@dataclass
class RunContext:
    run: RunDir
    config: RunConfig
    seeds: list[Task]
    templates: PromptTemplates
    reporter: Reporter = field(default_factory=SilentReporter)
    stats: dict[str, UsageStats] = field(default_factory=dict)
    _backend: Backend | None = None
    _model_info: ModelInfo | None = None
    _cache: ResponseCache | None = None
    _budget: Budget | None = None
    manifest: dict = field(default_factory=dict)

    # The backend opens lazily: export and postprocess never load a model.
    @property
    def backend(self) -> Backend:
        if self._backend is None:
            c = self.config
            options = {"base_url": c.base_url, "api_key_env": c.api_key_env,
                       "n_ctx": c.n_ctx, "prefix_cache": c.prefix_cache,
                       "request_timeout": c.request_timeout, "lora": c.lora}
            if c.executor == "ray":  # the only place that imports Ray
                from selfinstruct.backends.ray_actors import open_on_ray

                self._backend, self._model_info = open_on_ray(
                    c.model, options, address=c.ray_address, replicas=c.replicas)
            else:
                self._backend, self._model_info = open_backend(c.model, **options)
            self.manifest["model"] = self._model_info.as_dict()
            self.save_manifest()
        return self._backend

    @property
    def cache(self) -> ResponseCache:
        if self._cache is None:
            self._cache = ResponseCache(self.run.cache_path)
        return self._cache

    @property
    def budget(self) -> Budget:
        """What this run may still spend; starts from what the cache says it has spent."""
        if self._budget is None:
            c = self.config
            prompt, completion = self.cache.token_totals()
            self._budget = Budget(c.max_tokens_total, c.max_cost, c.input_price,
                                  c.output_price, prompt, completion)
        return self._budget

    def usage(self, stage: str) -> UsageStats:
        return self.stats.setdefault(stage, UsageStats())

    def save_manifest(self) -> None:
        self.manifest["usage"] = {name: s.as_dict() for name, s in self.stats.items()}
        member_usage = getattr(self._backend, "member_usage", None)
        if member_usage is not None:  # a pool of servers or Ray actors: who served what
            self.manifest["members"] = member_usage()
        elif self._backend is not None:
            self.manifest.pop("members", None)  # from an earlier session's pool
        write_manifest(self.run.path, self.manifest)

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None
        close_backend = getattr(self._backend, "close", None)
        if close_backend is not None:  # Ray actors end here, not at interpreter exit
            self.save_manifest()
            close_backend()
            self._backend = None


def open_context(out: str | Path, config: RunConfig, *, force_new: bool = False,
                 reporter: Reporter | None = None) -> RunContext:
    """Open (or create) a run directory for ``config``. Validates inputs before writing."""
    config.validate()
    seeds = load_seeds(config.seeds)
    templates = PromptTemplates.load(config.prompts)
    _check_model(config)
    run = RunDir(out)
    existing = read_manifest(run.path) if run.path.exists() else None
    if existing is not None and not _has_records(run):
        existing = None  # a run that wrote nothing yet (say, its server was down) starts afresh
    if existing is not None and not force_new:
        diff = differences(existing.get("config", {}), config.as_dict())
        if diff:
            raise UserError(
                f"{run.path} holds a run with other parameters ({'; '.join(diff)}); "
                "use another --out, the same parameters, or --force-new to start over"
            )
    if existing is not None and force_new:
        _clear(run)
        existing = None
    run.create()
    manifest = existing or {
        "format_version": FORMAT_VERSION,
        "started_at": now(),
    }
    manifest.update({
        "selfinstruct_version": __version__,
        "python": platform.python_version(),
        "config": config.as_dict(),
        "seed": config.seed,
        "seeds": {"source": config.seeds or "bundled", "count": len(seeds)},
        "prompts": config.prompts or "bundled",
    })
    manifest.setdefault("resumed", 0)
    if existing is not None:
        manifest["resumed"] += 1
    context = RunContext(run=run, config=config, seeds=seeds, templates=templates,
                         reporter=reporter or SilentReporter(), manifest=manifest)
    context.save_manifest()
    return context


def _has_records(run: RunDir) -> bool:
    return any(log.path.exists() and log.path.stat().st_size > 0
               for log in (run.instructions, run.rejects, run.failures))


def _check_model(config: RunConfig) -> None:
    """Fail on an unknown model name before anything is written (loading comes later)."""
    if config.base_url is None and not config.model.startswith(("openai:", "transformers:")):
        from selfinstruct.backends.bundled import resolve_gguf

        resolve_gguf(config.model)


def _clear(run: RunDir) -> None:
    """--force-new: remove the files a run writes (and nothing else)."""
    import shutil

    for path in [run.instructions.path, run.rejects.path, run.classifications.path,
                 run.instances.path, run.failures.path, run.tasks_path,
                 run.instance_rejects_path, run.cache_path, run.path / "manifest.json",
                 run.cache_path.with_name("cache.sqlite-wal"),
                 run.cache_path.with_name("cache.sqlite-shm")]:
        if path.exists():
            path.unlink()
    if run.exports.exists():
        shutil.rmtree(run.exports)
