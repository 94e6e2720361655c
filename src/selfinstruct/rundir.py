"""The run directory: manifest, append-only JSONL logs, atomic writes.

Layout of a run::

    RUN/
      manifest.json            parameters, versions, model hash, seed, times, stage stats
      instructions.jsonl       machine instructions kept by the bootstrap   (append-only)
      rejects.jsonl            candidate instructions dropped, with reasons (append-only)
      classifications.jsonl    Yes/No per instruction                       (append-only)
      instances.jsonl          parsed instances per instruction             (append-only)
      failures.jsonl           requests that failed for good, with reasons  (append-only)
      tasks.jsonl              final filtered tasks            (rewritten atomically)
      instance_rejects.jsonl   instances and tasks dropped by the filters (rewritten atomically)
      exports/                 alpaca.json, prompt_completion.jsonl, chat.jsonl, ...
      cache.sqlite             every answered request

Crash safety: a record is written as one line, flushed and fsynced before the next
step relies on it. A line without its newline can only be the tail of a write cut short
by a crash; :meth:`JsonlLog.open` truncates it, since no one was told it was written.
Any other unreadable line is corruption and is reported, never silently skipped.
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from selfinstruct.errors import UserError

FORMAT_VERSION = 1


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` with :func:`atomic_write`."""
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write`` on a temporary file beside ``path``, fsync it, then rename it over.

    A crash at any point leaves ``path`` as it was (the old file or none) and at most a
    temporary file, whose name holds the writer's process id: the next write to ``path``
    deletes those whose process is gone (never one a live process may still rename).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphaned_temporaries(target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.{os.getpid()}.",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    _fsync_dir(target.parent)


def _remove_orphaned_temporaries(target: Path) -> None:
    if os.name != "posix":  # os.kill(pid, 0) is not a liveness probe elsewhere
        return
    prefix = f".{target.name}."
    for leftover in target.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        pid = leftover.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and not _process_exists(int(pid)):
            leftover.unlink(missing_ok=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def dumps(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False)


class JsonlLog:
    """An append-only JSONL file of records, each with an ``id``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def open(self) -> list[dict]:
        """Read every complete record for a writer that resumes: a half-written last line
        left by a crash is truncated away, so the next append starts on a clean line."""
        if not self.path.exists():
            return []
        raw = self.path.read_bytes()
        if raw and not raw.endswith(b"\n"):
            cut = raw.rfind(b"\n") + 1
            with open(self.path, "r+b") as handle:
                handle.truncate(cut)
                handle.flush()
                os.fsync(handle.fileno())
            raw = raw[:cut]
        return self._parse(raw)

    def read(self) -> list[dict]:
        """Read every complete record without changing the file (for readers of a run that
        may still be written, such as the report and the review app)."""
        if not self.path.exists():
            return []
        raw = self.path.read_bytes()
        return self._parse(raw[: raw.rfind(b"\n") + 1])

    def _parse(self, raw: bytes) -> list[dict]:
        records = []
        for number, line in enumerate(raw.decode("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise UserError(
                    f"{self.path}:{number}: corrupt record; the run directory was edited or "
                    "damaged (start a new run with another --out)"
                ) from None
        return records

    def append(self, records: Iterable[dict]) -> None:
        lines = "".join(dumps(r) + "\n" for r in records)
        if not lines:
            return
        with open(self.path, "a", encoding="utf-8", newline="") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())


def read_manifest(run_dir: Path) -> dict | None:
    path = run_dir / "manifest.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise UserError(
            f"{path}: format_version {version!r} is not supported (this version reads "
            f"{FORMAT_VERSION})"
        )
    return data


def write_manifest(run_dir: Path, manifest: dict) -> None:
    atomic_write_text(run_dir / "manifest.json", json.dumps(manifest, indent=2,
                                                           ensure_ascii=False) + "\n")


class RunDir:
    """Paths and logs of one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.instructions = JsonlLog(self.path / "instructions.jsonl")
        self.rejects = JsonlLog(self.path / "rejects.jsonl")
        self.classifications = JsonlLog(self.path / "classifications.jsonl")
        self.instances = JsonlLog(self.path / "instances.jsonl")
        self.failures = JsonlLog(self.path / "failures.jsonl")
        self.tasks_path = self.path / "tasks.jsonl"
        self.instance_rejects_path = self.path / "instance_rejects.jsonl"
        self.cache_path = self.path / "cache.sqlite"
        self.exports = self.path / "exports"

    def create(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"--out: {self.path} exists and is not a directory")
        self.path.mkdir(parents=True, exist_ok=True)

    def read_tasks(self) -> list[dict]:
        if not self.tasks_path.exists():
            raise UserError(
                f"{self.tasks_path} does not exist; run the 'instances' stage (or 'run') first"
            )
        return JsonlLog(self.tasks_path).open()
