"""Files written so that a crash never leaves half of one: atomic replacement that keeps
the target's mode, fsync of the file and its folder, checks that an output path is a
regular file, the one rule for every output path (:func:`check_outputs`), JSON read
within the nesting and integer limits (:func:`load_json`), the one timestamp and the one
file digest of the project.

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


# --- the one rule for every output path --------------------------------------------------

#: the file that marks a folder this tool created (``export --format hf``, the report), so
#: that writing it again is allowed while a user's own non-empty folder is refused
OUTPUT_MARKER = ".selfinstruct-output"


def _absolute(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute with its symbolic links resolved, as far as they exist."""
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def _is_run_directory(folder: Path) -> bool:
    return (folder / "manifest.json").is_file() and any(
        (folder / name).exists() for name in (".lock", "instructions.jsonl", "cache.sqlite",
                                              "tasks.jsonl"))


def run_directory_of(path: str | os.PathLike[str]) -> Path | None:
    """The run directory ``path`` is, or lies in (a folder holding a run's
    ``manifest.json`` and its ``.lock`` or records); None when there is none."""
    real = _absolute(path)
    for folder in (real, *real.parents):
        try:
            if folder.is_dir() and _is_run_directory(folder):
                return folder
        except OSError:
            continue
    return None


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _same_file(a: Path, b: Path) -> bool:
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:
        return False


def check_outputs(outputs: dict[str, str | os.PathLike[str] | None],
                  inputs: dict[str, str | os.PathLike[str] | None] | None = None, *,
                  owned: tuple[str | os.PathLike[str], ...] = (),
                  folders: tuple[str, ...] = (),
                  directories: tuple[str, ...] = (),
                  legacy: Callable[[Path], bool] | None = None) -> None:
    """The one rule for every path a command writes, checked before anything is written.

    ``outputs`` and ``inputs`` map an option's name (``-o``, ``--rejects``, ``IN``) to its
    path (None: not given). Refused with a :class:`UserError` naming the option and path:

    a. an output inside a run directory, unless inside one of ``owned`` (the folders of a
       run this command writes, such as ``RUN/exports`` for ``export RUN``);
    b. an output that is one of the inputs or another output;
    c. for the options in ``folders`` (outputs that are folders), an existing non-empty
       folder that this tool did not create (:data:`OUTPUT_MARKER`; ``legacy``: a test
       for such a folder written before the marker existed); the options in
       ``directories`` are folders created or resumed, never refused for what they hold.

    Every target also goes through :func:`check_output_path`'s checks where it is a file.
    """
    outs = {flag: Path(p) for flag, p in outputs.items() if p is not None}
    ins = {flag: Path(p) for flag, p in (inputs or {}).items() if p is not None}
    mine = [_absolute(folder) for folder in owned]
    seen: dict[str, Path] = {}
    for flag, path in outs.items():
        if not str(path).strip():
            raise UserError(f"{flag}: the path is empty; give a file")
        real = _absolute(path)
        run = run_directory_of(real)
        if run is not None and not any(_inside(real, folder) for folder in mine):
            where = f" or under {owned[0]}" if owned else ""
            raise UserError(f"{flag}: {path} is inside the run directory {run}; writing "
                            f"there would damage the run; give a path outside it{where}")
        for other_flag, other in (*ins.items(), *seen.items()):
            kind = "the input" if other_flag in ins else "also the output"
            if _same_file(real, _absolute(other)):
                raise UserError(f"{flag}: {path} is {kind} {other_flag}; give another "
                                "output path")
            if flag in folders and _inside(_absolute(other), real):
                raise UserError(f"{flag}: the folder {path} holds {kind} {other_flag} "
                                f"({other}); give another output folder")
        if flag in folders:
            check_output_folder(path, flag, legacy)
        elif flag in directories:
            if os.path.lexists(path) and not path.is_dir():
                raise UserError(f"{flag}: {path} exists and is not a directory; give a "
                                "folder")
        else:
            check_output_path(path)
        seen[flag] = real


def check_output_folder(path: str | os.PathLike[str], flag: str,
                        legacy: Callable[[Path], bool] | None = None) -> None:
    """Refuse a folder output onto something that is not a folder, or onto an existing
    non-empty folder this tool did not create (no :data:`OUTPUT_MARKER`; ``legacy``: a
    test for a folder written by a version from before the marker)."""
    folder = Path(path)
    if os.path.lexists(folder) and not folder.is_dir():
        raise UserError(f"{flag}: {folder} exists and is not a directory; give a folder")
    if not folder.is_dir() or (folder / OUTPUT_MARKER).is_file():
        return
    try:
        names = sorted(entry.name for entry in folder.iterdir())
    except OSError as exc:
        raise UserError(f"{flag}: {folder}: cannot read ({_reason(exc)})") from None
    if not names or (legacy is not None and legacy(folder)):
        return
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    raise UserError(f"{flag}: {folder} is a folder selfinstruct did not create and it is "
                    f"not empty ({shown}); give a new or empty folder")


def mark_output_folder(path: str | os.PathLike[str], kind: str) -> None:
    """Create the folder (when missing) and mark it as this tool's (:data:`OUTPUT_MARKER`)."""
    folder = Path(path)
    if not (folder / OUTPUT_MARKER).is_file():
        atomic_write_text(folder / OUTPUT_MARKER,
                          f"written by selfinstruct ({kind}); it may replace this folder's "
                          "files\n")


# --- JSON from files a user may have edited ------------------------------------------------

#: the deepest nesting of arrays and objects read from any JSON, JSONL or TOML input
MAX_NESTING = 64
#: the most digits of an integer read from any input (Python's own limit on int("..."))
MAX_INT_DIGITS = 4300


def nesting_depth(value: object) -> int:
    """How deep arrays and objects nest in ``value`` (0 for a scalar), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (item.values() if isinstance(item, dict)
                    else item if isinstance(item, list) else None)
        if children is None:
            continue
        deepest = max(deepest, depth)
        if depth > MAX_NESTING:
            return depth
        stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_limits_error(exc: BaseException) -> str | None:
    """The reason for a parser error that is one of the limits (too deep, an integer too
    long), or None for any other error."""
    if isinstance(exc, RecursionError):
        return f"nested deeper than {MAX_NESTING} levels"
    if isinstance(exc, ValueError) and "digits" in str(exc) and "limit" in str(exc).lower():
        return f"holds an integer longer than {MAX_INT_DIGITS} digits"
    return None


def check_limits(value: object, where: str) -> object:
    """``value`` (parsed from ``where``) when it nests no deeper than :data:`MAX_NESTING`;
    else one :class:`UserError` naming ``where``."""
    if nesting_depth(value) > MAX_NESTING:
        raise UserError(f"{where}: nested deeper than {MAX_NESTING} levels; refusing to "
                        "read it")
    return value


def limits_error(where: str, exc: BaseException) -> UserError | None:
    """The one-line error for a parser's RecursionError or over-long integer, or None."""
    reason = parse_limits_error(exc)
    return None if reason is None else UserError(f"{where}: {reason}; refusing to read it")


def load_json(text: str, where: str) -> object:
    """``text`` parsed as JSON, within the limits (:data:`MAX_NESTING`,
    :data:`MAX_INT_DIGITS`); any error is one :class:`UserError` beginning with ``where``
    (``FILE`` or ``FILE:LINE``)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{where}: not valid JSON ({exc.msg}, column {exc.colno})") from None
    except (RecursionError, ValueError) as exc:
        reason = parse_limits_error(exc) or str(exc)
        raise UserError(f"{where}: {reason}; refusing to read it") from None
    if nesting_depth(value) > MAX_NESTING:
        raise UserError(f"{where}: nested deeper than {MAX_NESTING} levels; refusing to "
                        "read it")
    return value


def load_json_line(path: str | Path, number: int, line: str) -> object:
    """One line of a run's JSONL file; a line that does not parse is a corrupt record."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        raise UserError(f"{path}:{number}: corrupt record; the run directory was edited or "
                        "damaged (start a new run with another --out)") from None
    except (RecursionError, ValueError) as exc:
        reason = parse_limits_error(exc) or str(exc)
        raise UserError(f"{path}:{number}: the record {reason}; the run directory was "
                        "edited or damaged") from None
    if nesting_depth(value) > MAX_NESTING:
        raise UserError(f"{path}:{number}: the record is nested deeper than {MAX_NESTING} "
                        "levels; the run directory was edited or damaged")
    return value
