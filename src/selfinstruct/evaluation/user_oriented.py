"""The 252 user-oriented instructions: generate a response per instance, read response files.

Prompt: the layout of the original human-evaluation predictions
(``human_eval_predictions/*.jsonl``, field ``prompt``), which is
``human_eval_prompt_with_input`` / ``..._without_input`` in the project's
``finetuning_templates.json``::

    {instruction}\\n\\nInput: {input}\\nOutput:      when the instance has an input
    {instruction}\\nOutput:                         when it has none

with ``instruction`` and ``input`` stripped of surrounding whitespace. All 252 prompts of
the original files are reproduced byte for byte (tests/unit/evaluation/test_user_oriented.py).

Decoding: greedy (temperature 0), at most ``max_tokens`` (512) new tokens, no stop
sequence and no trimming: the response is the raw completion text, as in the original
files (where e.g. vanilla davinci runs on into a new ``Input:``; the paper's rating C
covers exactly that).

Output file ``DIR/<name>_predictions.jsonl``, one line per instance, the fields of the
original files plus ``id``: ``{"id", "prompt", "instruction", "input", "response",
"target"}``. Append-only and fsynced; a re-run skips ids already written.

Reading response files (:func:`load_responses`) accepts both ours and the originals. The
originals have no ``id``; their lines follow ``user_oriented_instructions.jsonl`` in
order, so line *k* (from 0, blank lines not counted) gets ``user_oriented_task_<k>``.
The model name of a file is its stem minus ``_predictions``
(``text-davinci-003_predictions.jsonl`` -> ``text-davinci-003``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from selfinstruct.backends.base import Backend, Request, Sampling
from selfinstruct.errors import UserError
from selfinstruct.evaluation.answering import Tally, answers
from selfinstruct.evaluation.eval_dir import open_eval_dir, record_session
from selfinstruct.evaluation.jsonl import field, read_jsonl
from selfinstruct.files import file_sha256
from selfinstruct.progress import Reporter, SilentReporter
from selfinstruct.run.rundir import JsonlLog

DEFAULT_MAX_TOKENS = 512
PREDICTIONS_SUFFIX = "_predictions"


@dataclass(frozen=True)
class UserOrientedItem:
    """One instance of a user-oriented task."""

    id: str
    instruction: str
    input: str
    target: str
    motivation_app: str = ""


@dataclass(frozen=True)
class Response:
    """One model's response to one instance, as the judge reads it."""

    model: str
    instance_id: str
    instruction: str
    input: str
    response: str


def load_items(path: str | Path, option: str = "--data") -> list[UserOrientedItem]:
    """Read ``user_oriented_instructions.jsonl``: ``{"id", "motivation_app",
    "instruction", "instances": [{"input", "output"}]}``. A task with several instances
    yields ids ``<id>:<k>``; with one, the task id itself."""
    items: list[UserOrientedItem] = []
    for where, rec in read_jsonl(path, option):
        task_id = field(where, rec, "id")
        instruction = field(where, rec, "instruction")
        instances = field(where, rec, "instances", list)
        if not instances:
            raise UserError(f"{where}: field 'instances' is empty")
        for k, inst in enumerate(instances):
            if not isinstance(inst, dict):
                raise UserError(f"{where}: field 'instances[{k}]' must be an object")
            items.append(UserOrientedItem(
                id=task_id if len(instances) == 1 else f"{task_id}:{k}",
                instruction=instruction,
                input=field(where, inst, "input", default=""),
                target=field(where, inst, "output", default=""),
                motivation_app=field(where, rec, "motivation_app", default=""),
            ))
    if not items:
        raise UserError(f"{option}: {path} holds no instructions")
    return items


@lru_cache(maxsize=1)
def _templates():
    from selfinstruct.prompts import PromptTemplates

    return PromptTemplates.load()


def build_prompt(instruction: str, input_text: str) -> str:
    """The evaluation prompt, from the project's templates (see the module docstring)."""
    templates = _templates()
    instruction, input_text = instruction.strip(), input_text.strip()
    if input_text:
        return templates.eval_with_input.format(instruction=instruction, input=input_text)
    return templates.eval_without_input.format(instruction=instruction)


def model_name_from_path(path: str | Path) -> str:
    stem = Path(path).name
    stem = stem[: -len(".jsonl")] if stem.endswith(".jsonl") else Path(stem).stem
    return stem.removesuffix(PREDICTIONS_SUFFIX)


def safe_name(model: str) -> str:
    """A file-name-safe model name: ``openai:gpt-4o`` -> ``gpt-4o``, a path -> its stem."""
    name = model.split(":", 1)[1] if model.startswith("openai:") else model
    if name.endswith(".gguf"):
        name = Path(name).stem
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "model"


def load_responses(path: str | Path, model: str | None = None,
                   option: str = "--predictions") -> list[Response]:
    """Responses from a predictions file, ours or the original Self-Instruct ones."""
    name = model or model_name_from_path(path)
    responses: list[Response] = []
    seen: dict[str, str] = {}
    for k, (where, rec) in enumerate(read_jsonl(path, option)):
        instance_id = field(where, rec, "id", default=f"user_oriented_task_{k}")
        if instance_id in seen:
            raise UserError(f"{where}: instance '{instance_id}' repeats {seen[instance_id]}")
        seen[instance_id] = where
        responses.append(Response(
            model=name, instance_id=instance_id,
            instruction=field(where, rec, "instruction"),
            input=field(where, rec, "input", default=""),
            response=field(where, rec, "response"),
        ))
    if not responses:
        raise UserError(f"{option}: {path} holds no responses")
    return responses


@dataclass
class UserOrientedRunResult:
    path: Path
    selected: int
    already_done: int
    generated: int
    failed: int
    wall_seconds: float
    first_error: str | None = None


def run_user_oriented(backend: Backend, model: dict, name: str, data_path: str | Path,
                      items: list[UserOrientedItem], out: str | Path, *,
                      max_tokens: int = DEFAULT_MAX_TOKENS, chat: bool = False,
                      max_concurrency: int = 1,
                      reporter: Reporter | None = None) -> UserOrientedRunResult:
    """Write the missing responses of ``items`` to ``out/<name>_predictions.jsonl``."""
    if max_tokens < 1:
        raise UserError(f"--max-tokens must be at least 1, got {max_tokens}")
    started = time.perf_counter()
    reporter = reporter or SilentReporter()
    folder = Path(out)
    manifest = open_eval_dir(folder, "eval user-oriented run", {
        "model": model, "name": name, "data_sha256": file_sha256(data_path),
        "max_tokens": max_tokens, "chat": chat, "temperature": 0.0,
    })
    path = folder / f"{name}{PREDICTIONS_SUFFIX}.jsonl"
    log = JsonlLog(path)
    done = {rec.get("id") for rec in log.recover()}
    todo = [item for item in items if item.id not in done]
    sampling = Sampling(temperature=0.0, top_p=1.0, max_tokens=max_tokens)
    requests = [Request(build_prompt(it.instruction, it.input), sampling, chat=chat)
                for it in todo]
    tally = Tally()
    for i, completion in answers(backend, requests, folder, reporter, "user-oriented",
                                 max_concurrency, tally):
        item = todo[i]
        log.append([{"id": item.id, "prompt": requests[i].prompt,
                     "instruction": item.instruction, "input": item.input,
                     "response": completion.text, "target": item.target}])
    failed, first_error, stats = tally.failed, tally.first_error, tally.stats
    wall = time.perf_counter() - started
    result = UserOrientedRunResult(path, len(items), len(items) - len(todo),
                                   len(todo) - failed, failed, wall, first_error)
    record_session(folder, manifest, {"wall_seconds": round(wall, 1), "selected": len(items),
                                      "generated": result.generated, "failed": failed,
                                      "usage": stats.as_dict()})
    return result
