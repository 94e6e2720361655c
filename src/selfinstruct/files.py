"""Files written so that a crash never leaves half of one: atomic replacement that keeps
the target's mode, fsync of the file and its folder, checks that an output path is a
regular file, the one timestamp and the one file digest of the project.

Used by the run directory (:mod:`selfinstruct.run.rundir`), exports, evaluations, the
report and the review app alike.
"""

from __future__ import annotations

import datetime as _dt
import errno
import glob
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from selfinstruct.errors import UserError


def now() -> str:
    """The time now, UTC, to the second, in ISO 8601: the timestamps of every manifest."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes, in hex, read 1 MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def decode_utf8(path: str | Path, raw: bytes) -> str:
    """``raw`` as UTF-8 text; bytes that are not UTF-8 are one error naming the file and
    the line."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise UserError(f"{path}:{line}: not UTF-8 text; the run directory was edited or "
                        "damaged") from None


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` with :func:`atomic_write`."""
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write`` on a temporary file beside ``path``, fsync it, then rename it over.

    The one writer of every output file (run files, exports, dedup output, reports):

    * a ``path`` that exists and is not a regular file (a directory, a device such as
      ``/dev/null``, a FIFO, a socket, a symbolic link) is refused with a
      :class:`UserError`, never replaced;
    * the new file gets the mode of the file it replaces, or else the umask's default
      for a new file (0666 less the umask), not the temporary file's 0600;
    * any OSError (a missing or read-only directory, a full disk) becomes one
      :class:`UserError` naming ``path``.

    A crash at any point leaves ``path`` as it was (the old file or none) and at most a
    temporary file, whose name holds the writer's process id: the next write to ``path``
    deletes those whose process is gone (never one a live process may still rename).
    """
    target = Path(path)
    if not str(path).strip():
        raise UserError("output file: the path is empty")
    mode = _target_mode(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{target}: cannot create the directory {target.parent} "
                        f"({_reason(exc)})") from None
    tmp = None
    try:
        _remove_orphaned_temporaries(target)
        fd, tmp = tempfile.mkstemp(dir=target.parent,
                                   prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        _target_mode(target)  # it may have been replaced by a device or a link meanwhile
        os.replace(tmp, target)
        tmp = None
        _fsync_dir(target.parent)
    except OSError as exc:
        raise UserError(f"{target}: cannot write ({_reason(exc)})") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symbolic link"),
          (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _target_mode(target: Path) -> int:
    """The mode the written file gets; refuses a target that is not a regular file."""
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        return 0o666 & ~current_umask()
    except OSError as exc:
        raise UserError(f"{target}: cannot write ({_reason(exc)})") from None
    if stat.S_ISREG(info.st_mode):
        return stat.S_IMODE(info.st_mode) & 0o777
    kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
    raise UserError(f"{target}: is {kind}, not a regular file; refusing to replace it "
                    "(give the path of a file)")


def check_output_path(path: str | os.PathLike[str]) -> None:
    """Fail early, as :func:`atomic_write` would, on a target that is not a regular file."""
    _target_mode(Path(path))


def current_umask() -> int:
    """The process umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # pragma: no cover - systems without /proc
    os.umask(mask)  # pragma: no cover
    return mask  # pragma: no cover


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    return exc.strerror or str(exc)


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
