"""Everything a stage needs, opened once per command: the run directory, the resolved
configuration, seeds, templates, the backend and its cache, usage counters, progress.

Opening a context on an existing run directory checks that the configuration matches
the manifest (a resumed run must not mix parameters) unless ``force_new`` is given.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from selfinstruct import __version__
from selfinstruct.backends.base import Backend, Completion, Request
from selfinstruct.backends.budget import Budget
from selfinstruct.backends.cache import ResponseCache
from selfinstruct.backends.opening import check_model, open_model
from selfinstruct.backends.pool.endpoints import has_redacted_credentials
from selfinstruct.backends.registry import ModelInfo
from selfinstruct.backends.requests import Outage, UsageStats, run_requests
from selfinstruct.errors import UserError
from selfinstruct.files import _reason, now
from selfinstruct.progress import Reporter, SilentReporter
from selfinstruct.prompts import PromptTemplates
from selfinstruct.records import Reject, Task
from selfinstruct.rules.decontamination import load_decontaminator
from selfinstruct.run.config import (
    RunConfig,
    differences,
    stored_config,
    with_former_defaults,
)
from selfinstruct.run.rundir import (
    FORMAT_VERSION,
    LOCK_NAME,
    RunDir,
    RunLock,
    is_finite_number,
    read_manifest,
    write_manifest,
)
from selfinstruct.run.shared_cache import open_shared_cache, pins_weights
from selfinstruct.seeds import load_seeds


@dataclass
class RunContext:
    run: RunDir
    config: RunConfig
    seeds: list[Task]
    templates: PromptTemplates
    reporter: Reporter = field(default_factory=SilentReporter)
    stats: dict[str, UsageStats] = field(default_factory=dict)
    _backend: Backend | None = None
    _answer_backend: Backend | None = None
    _model_info: ModelInfo | None = None
    _cache: ResponseCache | None = None
    _shared_cache: ResponseCache | None = None
    _budget: Budget | None = None
    _outage: Outage | None = None  # how long the server has failed (--give-up-after)
    manifest: dict = field(default_factory=dict)
    _lock: RunLock | None = None  # this process's writer lock on the run directory

    # The backend opens lazily: export and postprocess never load a model.
    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self.connect()
            self.save_manifest()
        assert self._backend is not None  # connect() opened it
        return self._backend

    def connect(self) -> None:
        """Open the backend (load the model, reach the server) without writing anything."""
        if self._backend is None:
            with self.reporter.stage("load model", None) as bar:
                bar.note(self.config.model if self.config.base_url is None
                         else "reaching the server")
                self._backend, self._model_info = self._open(self.config.lora)
            self.manifest["model"] = self._model_info.as_dict()

    @property
    def answer_backend(self) -> Backend:
        """The model that writes the instances: the same model with ``--answer-lora``
        applied when one is given (e.g. its fine-tune on the seed tasks), else the model."""
        if self.config.answer_lora is None:
            return self.backend
        if self._answer_backend is None:
            self._answer_backend, info = self._open(self.config.answer_lora)
            self.manifest["answer_model"] = info.as_dict()
            self.save_manifest()
        return self._answer_backend

    def _open(self, lora: str | None) -> tuple[Backend, ModelInfo]:
        return open_model(self.config.model_options().with_lora(lora))

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

    @property
    def outage(self) -> Outage:
        """One clock of the server's failures for every stage of this session."""
        if self._outage is None:
            self._outage = Outage(self.config.give_up_after)
        return self._outage

    def usage(self, stage: str) -> UsageStats:
        return self.stats.setdefault(stage, UsageStats())

    def ask(self, stage: str, requests: Sequence[Request],
            backend: Backend | None = None) -> Iterator[tuple[int, Completion]]:
        """``(index, completion)`` for each request, in order, through the one request loop
        with this run's cache, budget, concurrency and the stage's usage counters."""
        return run_requests(self.backend if backend is None else backend, requests,
                            cache=self.cache, max_concurrency=self.config.max_concurrency,
                            stats=self.usage(stage), budget=self.budget,
                            outage=self.outage)

    def ask_shared(self, stage: str, requests: Sequence[Request],
                   backend: Backend | None = None) -> Iterator[tuple[int, Completion]]:
        """As :meth:`ask`, through the cache that runs of this model share
        (:mod:`selfinstruct.run.shared_cache`) when the backend pins its weights; through
        the run's own cache otherwise."""
        backend = self.backend if backend is None else backend
        shared = None
        if pins_weights(backend.identity):
            if self._shared_cache is None:
                self._shared_cache = open_shared_cache()
            shared = self._shared_cache
        return run_requests(backend, requests,
                            cache=shared if shared is not None else self.cache,
                            max_concurrency=self.config.max_concurrency,
                            stats=self.usage(stage), budget=self.budget,
                            outage=self.outage)

    @property
    def may_score_seeds(self) -> bool:
        """A run scores the seed tasks to calibrate when nothing shipped or cached has
        their scores (the preview may not: :mod:`selfinstruct.run.preview`)."""
        return True

    def record_calibration(self, calibration: dict) -> None:
        """The classify stage's fitted calibration (or why there is none), in the manifest."""
        self.manifest["classification_calibration"] = calibration
        self.save_manifest()

    def record_curation(self, curation: dict) -> None:
        """The answers stage's agreement threshold (fitted, or given) and which curation
        steps ran, with why a step was skipped, in the manifest."""
        self.manifest["curation"] = curation
        self.save_manifest()

    def record_failure(self, record_id: str, stage: str, reason: str | None) -> None:
        """A request that failed for good: logged, and asked again on the next run."""
        self.run.failures.append([Reject.failure(record_id, stage, reason).to_json()])

    def save_manifest(self) -> None:
        # usage adds up across sessions: each session's own, and the run's total
        sessions = self.manifest.setdefault("sessions", [{"started_at": now()}])
        sessions[-1]["usage"] = {name: s.as_dict() for name, s in self.stats.items()}
        self.manifest["usage"] = total_usage(sessions)
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
        if self._shared_cache is not None:
            self._shared_cache.close()
            self._shared_cache = None
        close_answer = getattr(self._answer_backend, "close", None)
        if close_answer is not None:
            close_answer()
            self._answer_backend = None
        try:
            close_backend = getattr(self._backend, "close", None)
            if close_backend is not None:  # Ray actors end here, not at interpreter exit
                self.save_manifest()
                close_backend()
                self._backend = None
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None


def open_context(out: str | Path, config: RunConfig, *, force_new: bool = False,
                 reporter: Reporter | None = None) -> RunContext:
    """Open (or create) a run directory for ``config``. Validates inputs before writing.

    The returned context holds the run's writer lock (:meth:`RunDir.lock`) until
    :meth:`RunContext.close`: a second writer of the same directory is refused."""
    config.validate()
    if not str(out).strip():
        raise UserError("--out: the path is empty; give a directory")
    if has_redacted_credentials(config.base_url):
        raise UserError("--base-url: the run's server URL held credentials, which are never "
                        "saved; give --base-url again, with them")
    seeds = load_seeds(config.seeds)
    templates = PromptTemplates.load(config.prompts)
    load_decontaminator(config.decontamination_files)  # read once, checked before writing
    _check_model(config)
    run = RunDir(out)
    _refuse_a_folder_of_other_files(run)
    found = _existing_run(run, config, force_new)  # refuse before creating or locking anything
    if found is not None and not force_new:
        _check_same_seeds(found, seeds, config)
    opened = None
    if found is None and not (run.path / "manifest.json").exists():
        # a new run: the model loads (or the server answers) before anything is written, so
        # a dead --base-url leaves no manifest.json, no .lock, no folder behind
        opened = _new_context(run, config, seeds, templates, reporter, None)
        opened.connect()
    run.create()
    lock = run.lock()  # one writer at a time; everything below runs under the lock
    try:
        existing = _existing_run(run, config, force_new)  # again: it may have changed
        clearing = existing is not None and force_new
        context = _new_context(run, config, seeds, templates, reporter,
                               None if clearing else existing)
        if opened is not None and existing is None:
            context._backend, context._model_info = opened._backend, opened._model_info
            context.manifest["model"] = opened.manifest["model"]
        context._lock = lock
        if clearing:
            # the model loads (or the server answers) before the old run is removed
            context.connect()
            _clear(run)
        context.save_manifest()
    except BaseException:
        lock.release()
        close = getattr(opened._backend if opened is not None else None, "close", None)
        if close is not None:
            close()
        raise
    return context


# What a run directory may hold; a folder without a manifest that holds anything else is
# the user's, and a run is never started in it.
RUN_NAMES = frozenset({
    "manifest.json", LOCK_NAME, "instructions.jsonl", "rejects.jsonl",
    "classifications.jsonl", "instances.jsonl", "failures.jsonl", "tasks.jsonl",
    "instance_rejects.jsonl", "cache.sqlite", "cache.sqlite-journal", "cache.sqlite-wal",
    "cache.sqlite-shm", "exports", "report", "review.sqlite"})


def _refuse_a_folder_of_other_files(run: RunDir) -> None:
    """``--out`` on an existing folder that is not a run directory and holds other files
    is refused, naming them (a run would write among, or --force-new over, them)."""
    if not run.path.is_dir() or (run.path / "manifest.json").exists():
        return
    try:
        names = sorted(entry.name for entry in run.path.iterdir())
    except OSError as exc:
        raise UserError(f"--out: {run.path}: cannot read ({_reason(exc)})") from None
    other = [name for name in names if name not in RUN_NAMES
             and not (name.startswith(".") and name.endswith(".tmp"))]
    if other:
        shown = ", ".join(other[:3]) + (f" and {len(other) - 3} more" if len(other) > 3 else "")
        raise UserError(f"--out: {run.path} is not a run directory (no manifest.json) and is "
                        f"not empty ({shown}); give a new or empty folder")


def _existing_run(run: RunDir, config: RunConfig, force_new: bool) -> dict | None:
    """The manifest of the run ``config`` resumes; a UserError if it may not."""
    existing = read_manifest(run.path) if run.path.is_dir() else None
    if existing is not None and not _has_records(run):
        existing = None  # a run that wrote nothing yet (say, its server was down) starts afresh
    if existing is not None and not force_new:
        diff = differences(existing.get("config") or {}, config.as_dict())
        if diff:
            raise UserError(
                f"{run.path} holds a run with other parameters ({'; '.join(diff)}); "
                "use another --out, the same parameters, or --force-new to start over"
            )
    if existing is not None and force_new:
        foreign = _foreign_exports(run)
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more"
                                              if len(foreign) > 3 else "")
            raise UserError(
                f"--force-new: {run.exports} holds files this run did not write ({shown}); "
                "--force-new deletes the old run's exports, so move those files away first"
            )
    return existing


def _new_context(run: RunDir, config: RunConfig, seeds: list[Task],
                 templates: PromptTemplates, reporter: Reporter | None,
                 existing: dict | None) -> RunContext:
    manifest = existing or {
        "format_version": FORMAT_VERSION,
        "started_at": now(),
    }
    manifest.update({
        "selfinstruct_version": __version__,
        "python": platform.python_version(),
        "config": stored_config(config.as_dict()),
        "seed": config.seed,
        "seeds": {"source": config.seeds or "bundled", "count": len(seeds),
                  "sha256": seeds_digest(seeds)},
        "prompts": config.prompts or "bundled",
    })
    manifest.setdefault("resumed", 0)
    if existing is not None:
        manifest["resumed"] += 1
    sessions = manifest.get("sessions")
    if sessions is None:  # a manifest from before sessions: its usage was one session's
        sessions = [{"usage": manifest["usage"]}] if manifest.get("usage") else []
    manifest["sessions"] = [*sessions, {"started_at": now(), "usage": {}}]
    return RunContext(run=run, config=config, seeds=seeds, templates=templates,
                      reporter=reporter or SilentReporter(), manifest=manifest)


def total_usage(sessions: list[dict]) -> dict:
    """Per stage, each counter summed over the sessions of a run."""
    total: dict[str, dict] = {}
    for session in sessions:
        for stage, counters in (session.get("usage") or {}).items():
            into = total.setdefault(stage, {})
            for name, value in (counters or {}).items():
                if is_finite_number(value):
                    into[name] = into.get(name, 0) + value
    for counters in total.values():
        for name, value in counters.items():
            if isinstance(value, float):
                counters[name] = round(value, 3)
    return total


def seeds_digest(seeds: list[Task]) -> str:
    """The sha256 of the seed tasks as read (not of the file's bytes: a re-saved file with
    the same tasks is the same seeds)."""
    import hashlib
    import json

    text = json.dumps([t.to_json() for t in seeds], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check_same_seeds(manifest: dict, seeds: list[Task], config: RunConfig) -> None:
    """A run resumes only on the seed tasks it started with: a seed file edited between
    sessions is named as the cause, before any replay could blame the model."""
    stored = manifest.get("seeds")
    if not isinstance(stored, dict):
        return
    digest, count = stored.get("sha256"), stored.get("count")
    changed = (digest is not None and digest != seeds_digest(seeds)) or (
        isinstance(count, int) and count != len(seeds))
    if changed:
        source = config.seeds or "the bundled seed tasks"
        counts = (f"; {count} tasks then, {len(seeds)} now"
                  if isinstance(count, int) and count != len(seeds) else "")
        raise UserError(f"--seeds: {source} changed since this run started{counts}; the "
                        "run's instructions were drawn from the old seed tasks. Restore the "
                        "file, or start a new run (another --out, or --force-new)")


def _has_records(run: RunDir) -> bool:
    return any(log.path.exists() and log.path.stat().st_size > 0
               for log in (run.instructions, run.rejects, run.failures))


def _check_model(config: RunConfig) -> None:
    """Fail on an unknown model name, or an adapter that cannot apply, before anything is
    written (loading comes later; the answering adapter only at the instances stage)."""
    options = config.model_options()
    check_model(options)
    if config.answer_lora is not None:
        check_model(options.with_lora(config.answer_lora), flag="--answer-lora")


def _foreign_exports(run: RunDir) -> list[str]:
    """Names in ``RUN/exports`` that no export of a run writes (the user's own files)."""
    from selfinstruct.stages.export import DEFAULT_NAMES

    if not run.exports.is_dir():
        return []
    ours = set(DEFAULT_NAMES.values())
    ours |= {f"reviewed_{name}" for name in ours}
    foreign = []
    for entry in sorted(run.exports.iterdir()):
        name = entry.name
        temporary = name.startswith(".") and name.endswith(".tmp") and \
            any(name.startswith(f".{own}.") for own in ours)
        if entry.is_symlink() or not entry.is_file() or not (name in ours or temporary):
            foreign.append(name)
    return foreign


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
    if run.exports.exists() and not _foreign_exports(run):  # checked before; never theirs
        shutil.rmtree(run.exports)


@dataclass
class RunView:
    """A run directory opened for reading only (``export``): its manifest, parameters and
    templates. Opening it writes nothing, takes no lock and loads no model."""

    run: RunDir
    manifest: dict
    config: RunConfig
    templates: PromptTemplates

    @property
    def writer_pid(self) -> int | None:
        """The pid of a process writing the run now (see :meth:`RunDir.writer_pid`)."""
        return self.run.writer_pid()

    def close(self) -> None:
        """Nothing to release (the same interface as :class:`RunContext`)."""


def open_run_readonly(path: str | Path) -> RunView:
    """Open an existing run directory without changing anything in it."""
    if not str(path).strip():
        raise UserError("RUN: the path is empty; give a run directory")
    run = RunDir(path)
    manifest = read_manifest(run.path) if run.path.is_dir() else None
    if manifest is None:
        raise UserError(f"{run.path} is not a run directory (no manifest.json); "
                        "start one with 'selfinstruct generate --out DIR' or 'selfinstruct run'")
    config = config_from_manifest(manifest, run.path / "manifest.json")
    return RunView(run=run, manifest=manifest, config=config,
                   templates=PromptTemplates.load(config.prompts))


def config_from_manifest(manifest: dict, where: str | Path) -> RunConfig:
    """The parameters a manifest records, checked like flags (types, bounds, finite
    numbers); an error names the manifest."""
    try:
        return RunConfig.from_dict(with_former_defaults(dict(manifest.get("config") or {})),
                                   where=str(where))
    except UserError as error:
        message = str(error)
        if message.startswith(str(where)):
            raise
        raise UserError(f"{where}: config: {message}") from None
    except TypeError as error:  # pragma: no cover - from_dict checks keys and types first
        raise UserError(f"{where}: config: {error}") from None
