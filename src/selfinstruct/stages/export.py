"""Stage 4b: write ``tasks.jsonl`` out in training formats.

==========================  ================================================================
format                      content
==========================  ================================================================
``alpaca``                  one JSON list of ``{"instruction", "input", "output"}``
``prompt-completion``       JSONL ``{"prompt", "completion"}`` in the paper's fine-tuning
                            formats, one chosen at random per instance (seeded)
``chat``                    JSONL ``{"messages": [user, assistant]}``, OpenAI fine-tuning
``parquet``                 one row per instance: id, instruction, input, output,
                            is_classification (needs ``pip install 'selfinstruct[parquet]'``)
==========================  ================================================================

Every file is written to a temporary name and renamed, so a crash never leaves a half
export behind. Template choices depend on the run seed and the instance's position
only, so the same tasks always export to the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

from selfinstruct.context import derived_rng
from selfinstruct.errors import UserError
from selfinstruct.prompts import PromptTemplates, finetuning_example
from selfinstruct.records import Task
from selfinstruct.rundir import atomic_write, atomic_write_text

FORMATS = ("alpaca", "prompt-completion", "chat", "parquet")
DEFAULT_NAMES = {
    "alpaca": "alpaca.json",
    "prompt-completion": "prompt_completion.jsonl",
    "chat": "chat.jsonl",
    "parquet": "instances.parquet",
}


def _rows(tasks: list[Task]):
    for task in tasks:
        for k, instance in enumerate(task.instances):
            yield task, k, instance


def _user_message(instruction: str, input_text: str) -> str:
    instruction = instruction.strip()
    return f"{instruction}\n\n{input_text.strip()}" if input_text.strip() else instruction


def render(tasks: list[Task], fmt: str, templates: PromptTemplates, seed: int) -> str:
    if fmt == "alpaca":
        rows = [{"instruction": t.instruction, "input": i.input, "output": i.output}
                for t, _, i in _rows(tasks)]
        return json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
    lines = []
    for task, k, instance in _rows(tasks):
        if fmt == "prompt-completion":
            rng = derived_rng(seed, "finetune-template", task.id, k)
            prompt, completion = finetuning_example(templates, task.instruction, instance.input,
                                                    instance.output, rng)
            row = {"prompt": prompt, "completion": completion}
        elif fmt == "chat":
            row = {"messages": [
                {"role": "user", "content": _user_message(task.instruction, instance.input)},
                {"role": "assistant", "content": instance.output},
            ]}
        else:
            raise UserError(f"--format: unknown format '{fmt}'; choose from {', '.join(FORMATS)}")
        lines.append(json.dumps(row, ensure_ascii=False) + "\n")
    return "".join(lines)


def write_parquet(tasks: list[Task], path: Path) -> None:
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
    # pyarrow writes through the Python file object, so parquet gets the same temporary
    # file, fsync and rename as every other export
    atomic_write(path, lambda handle: pq.write_table(table, handle))


def export(tasks: list[Task], fmt: str, path: str | Path, templates: PromptTemplates,
           seed: int) -> Path:
    target = Path(path)
    if fmt == "parquet":
        write_parquet(tasks, target)
    else:
        atomic_write_text(target, render(tasks, fmt, templates, seed))
    return target


def export_seed_tasks(seeds: str | Path | None, fmt: str, path: str | Path,
                      seed: int) -> tuple[Path, list[Task]]:
    """Export seed tasks (bundled when ``seeds`` is None) as training data.

    Fine-tuning on these alone is the paper's "no bootstrapping" ablation.
    """
    from selfinstruct.seeds import load_seeds

    tasks = load_seeds(seeds)
    return export(tasks, fmt, path, PromptTemplates.load(), seed), tasks
