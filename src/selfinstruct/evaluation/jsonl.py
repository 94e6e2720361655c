"""Read a user-supplied JSONL file, one object per line, with errors that name file:line.

Every evaluation input (SuperNI data, predictions, user-oriented instructions) goes
through :func:`read_jsonl` and :func:`field`, so a bad line is always reported the same
way: ``FILE:LINE: field 'x' must be a string, got int``. Blank lines are skipped.
What it leaves out: run-directory logs, which :class:`selfinstruct.run.rundir.JsonlLog` reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from selfinstruct.errors import UserError

_KINDS = {str: "a string", list: "a list", dict: "an object", bool: "true or false"}


def read_jsonl(path: str | Path, option: str) -> Iterator[tuple[str, dict]]:
    """Yield ``(where, record)`` for each non-blank line; ``where`` is ``FILE:LINE``.

    ``option`` names the command-line option the file came from, for the not-found message.
    """
    file = Path(path)
    if not file.is_file():
        raise UserError(f"{option}: file not found: {file}")
    with open(file, encoding="utf-8", newline="") as handle:
        number = 0
        while True:
            try:
                line = handle.readline()
            except UnicodeDecodeError as exc:
                raise UserError(f"{file}:{number + 1}: not UTF-8 text ({exc.reason})") from None
            if not line:
                return
            number += 1
            if not line.strip():
                continue
            where = f"{file}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(record, dict):
                raise UserError(f"{where}: expected a JSON object, got {type(record).__name__}")
            yield where, record


def field(where: str, record: dict, name: str, kind: type = str, *, default=...):
    """``record[name]`` checked to be of ``kind``; missing is an error unless ``default``."""
    if name not in record or (record[name] is None and default is not ...):
        if default is not ...:
            return default
        raise UserError(f"{where}: field '{name}' is missing")
    value = record[name]
    if not isinstance(value, kind):
        raise UserError(
            f"{where}: field '{name}' must be {_KINDS.get(kind, kind.__name__)}, "
            f"got {type(value).__name__}"
        )
    return value
