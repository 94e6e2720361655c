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

import json
import math
import os
import threading
from collections.abc import Iterable
from pathlib import Path

from selfinstruct.errors import UserError
from selfinstruct.files import (
    _reason,
    atomic_write_text,
    check_limits,
    decode_utf8,
    dumps,
    limits_error,
    load_json_line,
)

try:  # POSIX; elsewhere a run directory is not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

FORMAT_VERSION = 1
LOCK_NAME = ".lock"


class JsonlLog:
    """An append-only JSONL file of records, each with an ``id``."""

    def __init__(self, path: str | Path, require_id: bool = False):
        self.path = Path(path)
        self.require_id = require_id  # a run's own logs: every record an object with an id

    def _read_bytes(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UserError(f"{self.path}: cannot read ({_reason(exc)})") from None

    def recover(self) -> list[dict]:
        """Read every complete record for a writer that resumes: a half-written last line
        left by a crash is truncated away, so the next append starts on a clean line.
        (Readers that must not change the file use :meth:`read`.)"""
        raw = self._read_bytes()
        if raw is None:
            return []
        if raw and not raw.endswith(b"\n"):
            cut = raw.rfind(b"\n") + 1
            try:
                with open(self.path, "r+b") as handle:
                    handle.truncate(cut)
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError as exc:
                raise UserError(f"{self.path}: cannot repair its half-written last line "
                                f"({_reason(exc)})") from None
            raw = raw[:cut]
        return self._parse(raw)

    def read(self) -> list[dict]:
        """Read every complete record without changing the file (for readers of a run that
        may still be written, such as the report and the review app)."""
        raw = self._read_bytes()
        if raw is None:
            return []
        return self._parse(raw[: raw.rfind(b"\n") + 1])

    def read_complete(self) -> list[dict]:
        """Read a file that is only ever replaced whole (``tasks.jsonl``), changing nothing:
        a last line without its newline cannot come from a crash, so it is an error."""
        raw = self._read_bytes()
        if raw is None:
            return []
        if raw and not raw.endswith(b"\n"):
            line = raw.count(b"\n") + 1
            raise UserError(f"{self.path}:{line}: the last line is cut short; the file was "
                            "truncated or edited (re-run the stage that writes it)")
        return self._parse(raw)

    def _parse(self, raw: bytes) -> list[dict]:
        text = decode_utf8(self.path, raw)
        records: list = []
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            record = load_json_line(self.path, number, line)
            if self.require_id and not (isinstance(record, dict)
                                        and isinstance(record.get("id"), str)):
                what = "has no 'id'" if isinstance(record, dict) else \
                    f"is a JSON {type(record).__name__}, not an object"
                raise UserError(f"{self.path}:{number}: the record {what}; the run directory "
                                "was edited or damaged (start a new run with another --out)")
            records.append(record)
        return records

    def append(self, records: Iterable[dict]) -> None:
        lines = "".join(dumps(r) + "\n" for r in records)
        if not lines:
            return
        try:
            with open(self.path, "a", encoding="utf-8", newline="") as handle:
                handle.write(lines)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise UserError(f"{self.path}: cannot append ({_reason(exc)}); what was "
                            "written before is kept, re-run to continue") from None


# Fields of a manifest that this version reads back, and the JSON types they must have.
_MANIFEST_TYPES: dict[str, tuple[type, ...]] = {
    "config": (dict,), "resumed": (int,), "status": (str,), "usage": (dict,),
    "sessions": (list,), "wall_seconds": (int, float), "spent": (dict,), "model": (dict,),
    "exports": (dict,), "started_at": (str,), "finished_at": (str,),
}


def _no_constant(name: str):
    raise ValueError(name)


def read_manifest(run_dir: Path) -> dict | None:
    """The run's manifest, checked: a JSON object in UTF-8 of a known format, each field
    this version reads of the right type, no NaN or infinity. None when there is none."""
    path = Path(run_dir) / "manifest.json"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({_reason(exc)})") from None
    text = decode_utf8(path, raw)
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except (RecursionError, ValueError) as exc:  # too deep, too long an int; NaN, Infinity
        limit = limits_error(str(path), exc)
        if limit is not None:
            raise limit from None
        raise UserError(f"{path}: holds {exc}, not a finite number") from None
    check_limits(data, str(path))
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else type(data).__name__
        raise UserError(f"{path}: must hold a JSON object, not {kind}")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise UserError(
            f"{path}: format_version {version!r} is not supported (this version reads "
            f"{FORMAT_VERSION})"
        )
    for name, kinds in _MANIFEST_TYPES.items():
        value = data.get(name)
        if value is None:
            continue
        if not isinstance(value, kinds) or isinstance(value, bool):
            wanted = " or ".join(_JSON_NAMES[k] for k in kinds)
            raise UserError(f"{path}: field '{name}' must be {wanted}, got "
                            f"{_JSON_NAMES.get(type(value), type(value).__name__)}")
    bad = _first_non_finite(data)
    if bad is not None:
        raise UserError(f"{path}: field '{bad}' holds a number out of range, not a finite "
                        "number")
    for session in data.get("sessions") or []:
        if not isinstance(session, dict) or not isinstance(session.get("usage", {}), dict):
            raise UserError(f"{path}: field 'sessions' must be a list of objects with a "
                            "'usage' object")
    return data


def _first_non_finite(value: object, where: str = "") -> str | None:
    """The path of the first float in ``value`` that is not finite (``1e999`` parses as
    infinity), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return where or "(top level)"
    items: Iterable[tuple[object, object]]
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return None
    for key, item in items:
        found = _first_non_finite(item, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


_JSON_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer",
               float: "a number", bool: "a boolean"}


def write_manifest(run_dir: Path, manifest: dict) -> None:
    """Write the manifest atomically; a NaN or infinity anywhere in it is refused (it would
    not read back as JSON)."""
    atomic_write_text(Path(run_dir) / "manifest.json",
                      json.dumps(manifest, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def is_finite_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


class RunLock:
    """This process's hold on a run directory's lock (see :meth:`RunDir.lock`)."""

    def __init__(self, key: tuple[int, int] | None):
        self._key = key

    def release(self) -> None:
        key, self._key = self._key, None
        if key is None:
            return
        with _HELD_GUARD:
            held = _HELD.get(key)
            if held is None:
                return
            held[1] -= 1
            if held[1] == 0:
                del _HELD[key]
                os.close(held[0])  # closing the descriptor releases the flock


# Locks this process holds, by (device, inode) of the lock file: [descriptor, holders].
# flock() locks belong to an open file description, so a second open() in this same process
# would conflict with the first; a process re-entering its own run shares the hold instead.
_HELD: dict[tuple[int, int], list[int]] = {}
_HELD_GUARD = threading.Lock()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class RunDir:
    """Paths and logs of one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.instructions = JsonlLog(self.path / "instructions.jsonl", require_id=True)
        self.rejects = JsonlLog(self.path / "rejects.jsonl", require_id=True)
        self.classifications = JsonlLog(self.path / "classifications.jsonl", require_id=True)
        self.instances = JsonlLog(self.path / "instances.jsonl", require_id=True)
        # the curated recipe's
        self.answers = JsonlLog(self.path / "answers.jsonl", require_id=True)
        self.failures = JsonlLog(self.path / "failures.jsonl", require_id=True)
        self.tasks_path = self.path / "tasks.jsonl"
        self.instance_rejects_path = self.path / "instance_rejects.jsonl"
        self.cache_path = self.path / "cache.sqlite"
        self.exports = self.path / "exports"
        self.lock_path = self.path / LOCK_NAME

    def create(self) -> None:
        if not str(self.path).strip():
            raise UserError("--out: the path is empty; give a directory")
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"--out: {self.path} exists and is not a directory")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"--out: cannot create {self.path} ({_reason(exc)})") from None

    def lock(self) -> RunLock:
        """Take the run's writer lock, an OS advisory lock (``flock``) on ``RUN/.lock``,
        held until :meth:`RunLock.release` or the end of the process. Another process that
        holds it makes this a :class:`UserError` naming its pid. A lock left by a killed
        process never blocks: the system drops it with the process's descriptors."""
        if fcntl is None:  # pragma: no cover - no flock on this platform
            return RunLock(None)
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise UserError(f"{self.lock_path}: cannot create the run's lock file "
                            f"({_reason(exc)})") from None
        info = os.fstat(fd)
        key = (info.st_dev, info.st_ino)
        with _HELD_GUARD:
            if key in _HELD:
                os.close(fd)
                _HELD[key][1] += 1
                return RunLock(key)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _read_pid(fd)
                os.close(fd)
                who = f"process {pid}" if pid else "another process"
                raise UserError(f"{self.path}: {who} is writing this run (it holds "
                                f"{self.lock_path}); wait for it to finish or stop it, or "
                                "use another --out") from None
            except OSError as exc:
                os.close(fd)
                raise UserError(f"{self.lock_path}: cannot lock ({_reason(exc)})") from None
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            except OSError:
                pass  # the pid is only for messages; the flock is the lock
            _HELD[key] = [fd, 1]
        return RunLock(key)

    def writer_pid(self) -> int | None:
        """The pid of the process that holds the run's writer lock, or None when no one
        does (0 when one does but its pid is unknown). Changes nothing."""
        if fcntl is None:  # pragma: no cover
            return None
        try:
            fd = os.open(self.lock_path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            with _HELD_GUARD:
                if (info.st_dev, info.st_ino) in _HELD:
                    return os.getpid()
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _read_pid(fd) or 0
            except OSError:
                return None
            return None
        finally:
            os.close(fd)  # drops the shared probe lock, if taken

    def replace_file(self, path: Path, text: str) -> None:
        """Write a file of the run that is replaced whole (``tasks.jsonl``), atomically."""
        atomic_write_text(path, text)

    def read_tasks(self) -> list[dict]:
        """The final tasks. ``tasks.jsonl`` is replaced whole, never appended to, so a cut
        last line is damage, reported rather than dropped; the file is not changed."""
        if not self.tasks_path.exists():
            raise UserError(
                f"{self.tasks_path} does not exist; run the 'instances' stage (or 'run') first"
            )
        return JsonlLog(self.tasks_path, require_id=True).read_complete()


class MemoryLog(JsonlLog):
    """A :class:`JsonlLog` held in memory (the preview's run): the same records, no file."""

    def __init__(self, path: str | Path):
        super().__init__(path)
        self.records: list[dict] = []

    def recover(self) -> list[dict]:
        return [dict(r) for r in self.records]

    read = read_complete = recover

    def append(self, records: Iterable[dict]) -> None:
        # through JSON, as a file would: the stages read back what they wrote, not aliases
        self.records.extend(json.loads(dumps(r)) for r in records)


class MemoryRunDir(RunDir):
    """A run directory held in memory: every log of :class:`RunDir` (whatever logs it
    has) is a :class:`MemoryLog`, and the files it replaces whole are kept as text. The
    stages run on it unchanged; nothing touches the disk. Its path is under ``/dev/null``,
    so a stage that wrote a file behind its back would fail, not write somewhere."""

    def __init__(self) -> None:
        super().__init__(Path("/dev/null/in-memory-run"))
        for name, value in list(vars(self).items()):
            if isinstance(value, JsonlLog):
                setattr(self, name, MemoryLog(value.path))
        self.files: dict[Path, str] = {}

    def create(self) -> None:
        raise UserError("an in-memory run has no directory")

    def replace_file(self, path: Path, text: str) -> None:
        self.files[path] = text

    def read_file(self, path: Path) -> list[dict]:
        return [json.loads(line) for line in self.files.get(path, "").splitlines()
                if line.strip()]

    def read_tasks(self) -> list[dict]:
        return self.read_file(self.tasks_path)
