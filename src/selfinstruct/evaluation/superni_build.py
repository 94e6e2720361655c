"""Build ``superni_test_en.jsonl`` from a checkout of allenai/natural-instructions.

For each task named in a split file (``splits/default/test_tasks.txt``: one task name per
line, in order), read ``tasks/<task>.json`` and write its first ``max_instances`` (100)
``Instances``, which is the official selection: SuperNI sorts its label-balanced test
instances to the front (``eval/leaderboard/create_reference_file.py`` takes ``[:100]``).

Each output line has exactly the fields of the shared data file, in this order::

    task             the task name from the split file
    category         Categories[0]
    definition       Definition[0], raw (not stripped)
    id               Instances[i].id
    input            Instances[i].input, raw
    outputs          Instances[i].output, the full list of references
    input_language   Input_language  (a list, e.g. ["English"])
    output_language  Output_language

What it leaves out: positive/negative examples and explanations (zero-shot evaluation
does not use them), and downloading the repository.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from selfinstruct.errors import UserError
from selfinstruct.files import atomic_write_text

DEFAULT_MAX_INSTANCES = 100


def read_split(path: str | Path) -> list[str]:
    """Task names from a split file; blank lines and ``#`` comments are skipped."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"--split: file not found: {file}")
    names = []
    for line in file.read_text(encoding="utf-8").splitlines():
        name = line.strip()
        if name and not name.startswith("#"):
            names.append(name.removesuffix(".json"))
    if not names:
        raise UserError(f"--split: {file} names no tasks")
    return names


def _load_task(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object (a SuperNI task file)")
    return data


def _first_string(path: Path, data: dict, name: str) -> str:
    value = data.get(name)
    if isinstance(value, str):
        return value
    if not isinstance(value, list) or not value or not isinstance(value[0], str):
        raise UserError(f"{path}: field '{name}' must be a non-empty list of strings")
    return value[0]


def _languages(path: Path, data: dict, name: str) -> list[str]:
    value = data.get(name, ["English"])
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserError(f"{path}: field '{name}' must be a list of strings")
    return value


def task_records(tasks_dir: Path, task: str, max_instances: int) -> Iterator[dict]:
    """The output lines of one task."""
    path = tasks_dir / f"{task}.json"
    if not path.is_file():
        raise UserError(f"--tasks-dir: {path} not found (task '{task}' is in the split file)")
    data = _load_task(path)
    category = _first_string(path, data, "Categories")
    definition = _first_string(path, data, "Definition")
    input_language = _languages(path, data, "Input_language")
    output_language = _languages(path, data, "Output_language")
    instances = data.get("Instances")
    if not isinstance(instances, list) or not instances:
        raise UserError(f"{path}: field 'Instances' must be a non-empty list")
    for k, inst in enumerate(instances[:max_instances]):
        where = f"{path}: Instances[{k}]"
        if not isinstance(inst, dict):
            raise UserError(f"{where} must be an object")
        for name in ("id", "input"):
            if not isinstance(inst.get(name), str):
                raise UserError(f"{where}: field '{name}' must be a string")
        outputs = inst.get("output")
        if isinstance(outputs, str):
            outputs = [outputs]
        if (not isinstance(outputs, list) or not outputs
                or not all(isinstance(o, str) for o in outputs)):
            raise UserError(f"{where}: field 'output' must be a non-empty list of strings")
        yield {
            "task": task, "category": category, "definition": definition,
            "id": inst["id"], "input": inst["input"], "outputs": outputs,
            "input_language": input_language, "output_language": output_language,
        }


def build(tasks_dir: str | Path, split: str | Path,
          max_instances: int = DEFAULT_MAX_INSTANCES) -> list[dict]:
    """All output lines, tasks in split-file order."""
    folder = Path(tasks_dir)
    if not folder.is_dir():
        raise UserError(f"--tasks-dir: not a directory: {folder}")
    if max_instances < 1:
        raise UserError(f"--max-instances must be at least 1, got {max_instances}")
    records: list[dict] = []
    for task in read_split(split):
        records.extend(task_records(folder, task, max_instances))
    return records


def write(records: list[dict], out: str | Path) -> None:
    atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
