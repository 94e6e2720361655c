"""Novelty dedup of any instruction file: Self-Instruct's ROUGE-L rule, file in, file out.

``dedup_file`` reads records (JSONL, or one JSON list), takes the text of one string field
from each, applies :meth:`selfinstruct.novelty.index.NoveltyIndex.filter` in file order (after the
texts of an optional ``against`` seed file), and writes:

* ``out``: the kept records in their original order. A JSONL record is written back as the
  exact text of its line (only surrounding blanks and a ``\r\n`` line end are dropped); a
  record from a JSON list is written as one-line JSON of the same value.
* ``rejects`` (optional): one line per rejected record,
  ``{"record": <the record, written as in out>, "max_score": 0.83, "nearest": "...",
  "line": 17}``, where ``nearest`` is the earliest kept (or seed) text with that score.

Both files are written to a temporary file in the same directory and moved into place with
``os.replace``, so an interrupted run never leaves a half-written file where a good one was;
a target that is not a regular file (a directory, ``/dev/null``, a FIFO, a link) is refused.
Bad input raises :class:`~selfinstruct.errors.UserError` naming the file and line.

Deliberately left out: the other Self-Instruct filters (length, keywords, punctuation), any
normalisation of the text beyond ROUGE's own tokenizer, and streaming: the novelty rule
needs every earlier kept text, and the whole input is read before anything is written.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from selfinstruct.errors import UserError
from selfinstruct.files import atomic_write, check_limits, check_outputs, limits_error
from selfinstruct.novelty.index import DEFAULT_THRESHOLD, NoveltyIndex

__all__ = ["DedupSummary", "Record", "dedup_file", "read_records"]


@dataclass(frozen=True, slots=True)
class Record:
    """One input record: its 1-based line, its JSON as written, and the text to compare."""

    line: int
    raw: str
    text: str


@dataclass(frozen=True, slots=True)
class DedupSummary:
    """What a dedup run did: records read, kept, rejected; seed texts; seconds taken."""

    total: int
    kept: int
    rejected: int
    seeds: int
    seconds: float


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not a JSONL or JSON file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UserError(f"{path}:{line}: not UTF-8 text") from None


def _json_lines(path: Path, content: str) -> Iterator[tuple[int, str, object]]:
    # Split on "\n" only: str.splitlines() would also split inside strings holding U+2028.
    for number, line in enumerate(content.split("\n"), start=1):
        raw = line.strip(" \t\r")
        if not raw:
            continue
        try:
            value = check_limits(json.loads(raw), f"{path}:{number}")
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{number}: not valid JSON ({exc.msg}, column {exc.colno})")
        except (RecursionError, ValueError) as exc:
            raise (limits_error(f"{path}:{number}", exc)
                   or UserError(f"{path}:{number}: not valid JSON ({exc})")) from None
        yield number, raw, value


def _json_list(path: Path, content: str) -> Iterator[tuple[int, str, object]]:
    try:
        values = check_limits(json.loads(content), str(path))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except (RecursionError, ValueError) as exc:
        raise (limits_error(str(path), exc)
               or UserError(f"{path}: not valid JSON ({exc})")) from None
    assert isinstance(values, list)
    # Find where each element starts, for line numbers in messages.
    decoder, pos = json.JSONDecoder(), content.index("[") + 1
    for value in values:
        while content[pos] in " \t\r\n,":
            pos += 1
        _, end = decoder.raw_decode(content, pos)
        yield content.count("\n", 0, pos) + 1, json.dumps(value, ensure_ascii=False), value
        pos = end


def read_records(path: str | os.PathLike[str], field: str = "instruction") -> list[Record]:
    """Records of a JSONL file or a JSON list, with the string in ``field`` of each."""
    path = Path(path)
    content = _read_text(path)
    is_list = content.lstrip().startswith("[")
    records = []
    for line, raw, value in (_json_list if is_list else _json_lines)(path, content):
        if not isinstance(value, dict):
            raise UserError(f"{path}:{line}: expected a JSON object, got {type(value).__name__}")
        if field not in value:
            raise UserError(f"{path}:{line}: field {field!r} is missing")
        text = value[field]
        if not isinstance(text, str):
            kind = "null" if text is None else type(text).__name__
            raise UserError(f"{path}:{line}: field {field!r} is not a string (got {kind})")
        records.append(Record(line, raw, text))
    return records


def _write_atomically(path: Path, lines: Iterator[str]) -> None:
    """Write the lines with the one output writer (:func:`selfinstruct.run.rundir.atomic_write`):
    temporary file, fsync, rename; a target that is not a regular file is refused, and a
    replaced file keeps its mode."""
    directory = path.parent
    if not directory.is_dir():
        raise UserError(f"{path}: directory {directory} does not exist; create it first")

    def write(handle) -> None:
        for line in lines:
            handle.write(line.encode("utf-8"))
            handle.write(b"\n")

    atomic_write(path, write)


def dedup_file(
    in_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    field: str = "instruction",
    against: str | os.PathLike[str] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    use_stemmer: bool = False,
    rejects_path: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DedupSummary:
    """Keep the records whose ``field`` has ROUGE-L <= ``threshold`` against all earlier kept.

    ``against`` is a seed file whose texts (same ``field``) go into the index first.
    ``progress(done, total)`` is called as candidates are decided.
    """
    if not (isinstance(threshold, int | float) and 0.0 <= threshold <= 1.0):
        raise UserError(f"--threshold must be between 0 and 1, got {threshold!r}")
    started = time.perf_counter()
    # the one output rule, before the work, not after it: no target in a run directory,
    # none equal to an input or to the other output, none that is not a regular file
    check_outputs({"-o": out_path, "--rejects": rejects_path},
                  {"IN": in_path, "--against": against})
    records = read_records(in_path, field)
    seeds = read_records(against, field) if against is not None else []
    index = NoveltyIndex((s.text for s in seeds), use_stemmer=use_stemmer)

    done = 0
    if progress is not None:
        progress(0, len(records))

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, len(records))

    decisions = index.filter((r.text for r in records), threshold, progress=advance)
    pairs = list(zip(records, decisions))
    _write_atomically(Path(out_path), (r.raw for r, d in pairs if d.kept))
    if rejects_path is not None:
        _write_atomically(Path(rejects_path), (_reject_line(r, d) for r, d in pairs if not d.kept))
    kept = sum(d.kept for d in decisions)
    elapsed = time.perf_counter() - started
    return DedupSummary(len(records), kept, len(records) - kept, len(seeds), elapsed)


def _reject_line(record: Record, decision) -> str:
    score = decision.max_score
    assert score is not None and math.isfinite(score)
    # The record is spliced in as written, so it stays byte-identical to the input line.
    return (
        f'{{"record": {record.raw}, "max_score": {json.dumps(score)}, '
        f'"nearest": {json.dumps(decision.nearest, ensure_ascii=False)}, "line": {record.line}}}'
    )
