"""Stage 4b: write ``tasks.jsonl`` out in training formats.

==========================  ================================================================
format                      content
==========================  ================================================================
``alpaca``                  one JSON list of ``{"instruction", "input", "output"}``
``prompt-completion``       JSONL ``{"prompt", "completion"}`` in the paper's fine-tuning
                            formats, one chosen at random per instance (seeded), prepared
                            as ``prepare_for_finetuning.py`` does (below)
``chat``                    JSONL ``{"messages": [user, assistant]}``, OpenAI fine-tuning
``parquet``                 one row per instance: id, instruction, input, output,
                            is_classification (needs ``pip install 'selfinstruct[parquet]'``)
``hf``                      a Hugging Face Hub data set directory: Parquet shards and a
                            dataset card; it needs the run directory (:mod:`selfinstruct.stages.export_hub`)
==========================  ================================================================

The prompt/completion rows follow the original ``prepare_for_finetuning.py``: half of the
inputs, at random, are rewritten (:func:`finetuning_input`: a lone field name such as
``Sentence:`` dropped, blank lines collapsed), each instance is encoded with a random
template, repeated (prompt, completion) pairs are dropped keeping the first, and the rows
are shuffled. The recipe decides which field names go: ``paper`` the original's rule,
``refined`` only one that starts the input.

With ``tags`` (a :class:`selfinstruct.rules.tags.RunTags`; ``export --tags``) every row also
carries its quality tags (:mod:`selfinstruct.rules.tags`): a ``quality`` object in the Alpaca,
prompt-completion and chat rows, ``quality_<name>`` columns in Parquet. Without it the
files are what they always were, byte for byte.

Every file is written to a temporary name and renamed, so a crash never leaves a half
export behind. Every random choice derives from the run seed (and the task id and the
instance's position for per-instance choices), so the same tasks always export to the
same bytes.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from selfinstruct.errors import UserError
from selfinstruct.files import atomic_write, atomic_write_text
from selfinstruct.prompts import PromptTemplates, finetuning_example
from selfinstruct.records import Instance, Task
from selfinstruct.rules.tags import COLUMN_PREFIX, TAGS, RunTags, columns, instance_tags
from selfinstruct.run.randomness import derived_rng
from selfinstruct.run.recipes import DEFAULT_RECIPE, RECIPES

FORMATS = ("alpaca", "prompt-completion", "chat", "parquet", "hf")
DEFAULT_NAMES = {
    "alpaca": "alpaca.json",
    "prompt-completion": "prompt_completion.jsonl",
    "chat": "chat.jsonl",
    "parquet": "instances.parquet",
    "hf": "hf",  # a directory (selfinstruct.stages.export_hub)
}


def _rows(tasks: list[Task]):
    for task in tasks:
        for k, instance in enumerate(task.instances):
            yield task, k, instance


def _tagged(row: dict, task: Task, instance: Instance, tags: RunTags | None) -> dict:
    if tags is not None:
        row["quality"] = instance_tags(task, instance, tags)
    return row


def _user_message(instruction: str, input_text: str) -> str:
    instruction = instruction.strip()
    return f"{instruction}\n\n{input_text.strip()}" if input_text.strip() else instruction


_FIELD_NAME = re.compile(r"(\w+):")
_LEADING_FIELD_NAME = re.compile(r"\s*\w+:(\s|$)")


def finetuning_input(text: str, rng: random.Random, field_name_rule: str = "paper") -> str:
    """An instance's input as the original ``prepare_for_finetuning.py`` feeds it to the
    fine-tuning templates. With probability 0.5 (one ``rng.random()`` draw) it is
    rewritten: when ``word:`` occurs with one distinct word, the text up to and including
    the first colon goes (rule ``"paper"``; rule ``"leading"`` only when the input starts
    with that ``word:`` and a space), then it is stripped and ``\\n\\n`` becomes ``\\n``.
    Otherwise it is left as it is."""
    if rng.random() >= 0.5:
        return text
    one_field = len(set(_FIELD_NAME.findall(text))) == 1
    if one_field and field_name_rule != "paper":
        one_field = _LEADING_FIELD_NAME.match(text) is not None
    text = text.split(":", 1)[1].strip() if one_field else text.strip()
    return text.replace("\n\n", "\n")


def prompt_completion_rows(tasks: list[Task], templates: PromptTemplates, seed: int,
                           recipe: str = DEFAULT_RECIPE,
                           tags: RunTags | None = None) -> list[dict]:
    """The prompt/completion rows: inputs rewritten (:func:`finetuning_input`), a random
    template each, the first of repeated pairs kept, then shuffled; all from ``seed``.
    With ``tags``, each row carries the quality tags of the instance it was made from."""
    rule = RECIPES[recipe].field_name_rule
    rows, seen = [], set()
    for task, k, instance in _rows(tasks):
        input_text = finetuning_input(
            instance.input, derived_rng(seed, "finetune-input", task.id, k), rule)
        pair = finetuning_example(templates, task.instruction, input_text, instance.output,
                                  derived_rng(seed, "finetune-template", task.id, k))
        if pair not in seen:
            seen.add(pair)
            rows.append(_tagged({"prompt": pair[0], "completion": pair[1]},
                                task, instance, tags))
    derived_rng(seed, "finetune-shuffle").shuffle(rows)
    return rows


def render(tasks: list[Task], fmt: str, templates: PromptTemplates, seed: int,
           recipe: str = DEFAULT_RECIPE, tags: RunTags | None = None) -> str:
    if fmt == "alpaca":
        rows = [_tagged({"instruction": t.instruction, "input": i.input, "output": i.output},
                        t, i, tags)
                for t, _, i in _rows(tasks)]
        return json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
    if fmt == "prompt-completion":
        return "".join(json.dumps(row, ensure_ascii=False) + "\n"
                       for row in prompt_completion_rows(tasks, templates, seed, recipe,
                                                         tags))
    lines = []
    for task, _k, instance in _rows(tasks):
        if fmt == "chat":
            row = _tagged({"messages": [
                {"role": "user", "content": _user_message(task.instruction, instance.input)},
                {"role": "assistant", "content": instance.output},
            ]}, task, instance, tags)
        else:
            raise UserError(f"--format: unknown format '{fmt}'; choose from {', '.join(FORMATS)}")
        lines.append(json.dumps(row, ensure_ascii=False) + "\n")
    return "".join(lines)


def write_parquet(tasks: list[Task], path: Path, tags: RunTags | None = None) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError(
            "--format parquet needs pyarrow: pip install 'selfinstruct[parquet]'"
        ) from None
    rows = list(_rows(tasks))
    table = pa.table({
        "id": [t.id for t, _, _ in rows],
        "instruction": [t.instruction for t, _, _ in rows],
        "input": [i.input for _, _, i in rows],
        "output": [i.output for _, _, i in rows],
        "is_classification": [bool(t.is_classification) for t, _, _ in rows],
    })
    if tags is not None:  # typed columns: one that is null on every row is still typed
        kinds = {float: pa.float64(), str: pa.string(), bool: pa.bool_(), int: pa.int64()}
        values = columns(((t, i) for t, _, i in rows), tags)
        for name, kind in TAGS:
            column = COLUMN_PREFIX + name
            table = table.append_column(column, pa.array(values[column], type=kinds[kind]))
    # pyarrow writes through the Python file object, so parquet gets the same temporary
    # file, fsync and rename as every other export
    atomic_write(path, lambda handle: pq.write_table(table, handle))


def export(tasks: list[Task], fmt: str, path: str | Path, templates: PromptTemplates,
           seed: int, recipe: str = DEFAULT_RECIPE, tags: RunTags | None = None) -> Path:
    target = Path(path)
    if fmt == "hf":  # its card describes a run: selfinstruct.stages.export_hub.write_hub_dataset
        raise UserError("--format hf exports a run directory with its dataset card: "
                        "selfinstruct export RUN --format hf")
    if fmt == "parquet":
        write_parquet(tasks, target, tags)
    else:
        atomic_write_text(target, render(tasks, fmt, templates, seed, recipe, tags))
    return target


def export_seed_tasks(seeds: str | Path | None, fmt: str, path: str | Path,
                      seed: int, recipe: str = DEFAULT_RECIPE,
                      tags: bool = False) -> tuple[Path, list[Task]]:
    """Export seed tasks (bundled when ``seeds`` is None) as training data; ``tags``: with
    the quality tags (those from a run's records are null: there is no run).

    Fine-tuning on these alone is the paper's "no bootstrapping" ablation.
    """
    from selfinstruct.seeds import load_seeds

    tasks = load_seeds(seeds)
    return export(tasks, fmt, path, PromptTemplates.load(), seed, recipe,
                  RunTags() if tags else None), tasks
