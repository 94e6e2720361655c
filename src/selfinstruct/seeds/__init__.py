"""Seed tasks: the project's own set, or any file in the original ``seed_tasks.jsonl`` schema.

Each line is ``{"id", "name", "instruction", "instances": [{"input", "output"}],
"is_classification"}``. :func:`load_seeds` validates every line and raises a
:class:`UserError` that names the file, the line and the field at the first problem.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from selfinstruct.errors import UserError
from selfinstruct.files import check_limits, limits_error
from selfinstruct.records import Instance, Task

# Seed instructions go into the bootstrap prompts whole and into the ROUGE-L novelty index;
# the original 175 are at most a few hundred characters.
MAX_INSTRUCTION_CHARS = 10_000


def bundled_seeds_path() -> Path:
    return Path(str(resources.files("selfinstruct") / "seeds" / "seed_tasks.jsonl"))


def _require(where: str, data: dict, field: str, kind: type | tuple[type, ...], label: str):
    if field not in data:
        raise UserError(f"{where}: field '{field}' is missing")
    value = data[field]
    if not isinstance(value, kind):
        raise UserError(f"{where}: field '{field}' must be {label}, got {type(value).__name__}")
    return value


def parse_seed_line(line: str, where: str) -> Task:
    try:
        data = check_limits(json.loads(line), where)
    except json.JSONDecodeError as exc:
        raise UserError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    except (RecursionError, ValueError) as exc:
        raise (limits_error(where, exc)
               or UserError(f"{where}: not valid JSON ({exc})")) from None
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(data).__name__}")
    task_id = _require(where, data, "id", str, "a string")
    instruction = _require(where, data, "instruction", str, "a string")
    if not instruction.strip():
        raise UserError(f"{where}: field 'instruction' is empty")
    is_clf = _require(where, data, "is_classification", bool, "true or false")
    raw_instances = _require(where, data, "instances", list, "a list")
    instances = []
    for k, item in enumerate(raw_instances):
        if not isinstance(item, dict):
            raise UserError(f"{where}: field 'instances[{k}]' must be an object")
        inp = _require(where, item, "input", str, "a string")
        out = _require(where, item, "output", str, "a string")
        instances.append(Instance(inp, out))
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        raise UserError(f"{where}: field 'name' must be a string")
    return Task(id=task_id, instruction=instruction, instances=instances,
                is_classification=is_clf, name=name)


def load_seeds(path: str | Path | None = None) -> list[Task]:
    """Load and validate seed tasks; the bundled set when ``path`` is None."""
    file = Path(path) if path is not None else bundled_seeds_path()
    if file.is_dir():
        raise UserError(f"--seeds: is a directory, not a file: {file}")
    if not file.exists():
        raise UserError(f"--seeds: file not found: {file}")
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise UserError(f"--seeds: cannot read {file} ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark, as some editors write, is fine
    except UnicodeDecodeError as exc:
        start = exc.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        line_no = data.count(b"\n", 0, start) + 1
        raise UserError(f"{file}:{line_no}: not UTF-8 text ({exc.reason})") from None
    # Split on "\n" only: str.splitlines() would also split inside strings holding U+2028.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{file}:{number}"
        task = parse_seed_line(line, where)
        if len(task.instruction) > MAX_INSTRUCTION_CHARS:
            raise UserError(f"{where}: field 'instruction' is {len(task.instruction):,} "
                            f"characters long; a seed instruction may have at most "
                            f"{MAX_INSTRUCTION_CHARS:,} (it goes into every prompt whole)")
        if task.id in seen:
            raise UserError(f"{where}: field 'id' repeats '{task.id}' from line {seen[task.id]}")
        seen[task.id] = number
        tasks.append(task)
    if not tasks:
        raise UserError(f"{file}: no seed tasks in the file")
    return tasks
