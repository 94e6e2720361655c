"""Stage 4a: the paper's instance filters, from ``instances.jsonl`` to ``tasks.jsonl``.

For each task, in order:

1. drop instances whose input equals their output, whose output is empty, or whose input
   or output ends with ``:`` (:func:`selfinstruct.filters.instance_reject_reason`);
2. if two instances share a non-empty input but have different outputs, drop the whole
   task (its instances contradict each other);
3. remove exact duplicates, keeping the first;
4. keep at most ``max_instances_per_task`` instances;
5. a task left with no instance is dropped.

Seed tasks are added only with ``include_seeds``. The output files are rewritten
atomically on each run: this stage is cheap and pure, so it is simply run again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from selfinstruct.context import RunContext
from selfinstruct.filters import instance_reject_reason
from selfinstruct.records import Instance, Task
from selfinstruct.rundir import atomic_write_text, dumps


@dataclass
class PostprocessResult:
    tasks: int
    instances: int
    dropped_instances: int
    dropped_tasks: int


def filter_task_instances(
    instances: list[Instance],
) -> tuple[list[Instance], list[tuple[Instance, str]], str | None]:
    """Returns (kept, dropped with reasons, reason the whole task is dropped or None)."""
    kept, dropped = [], []
    for instance in instances:
        reason = instance_reject_reason(instance)
        if reason:
            dropped.append((instance, reason))
        else:
            kept.append(instance)
    outputs_by_input: dict[str, str] = {}
    for instance in kept:
        if instance.input == "":
            continue
        previous = outputs_by_input.setdefault(instance.input, instance.output)
        if previous != instance.output:
            return [], dropped, "same_input_different_output"
    unique: list[Instance] = []
    for instance in kept:
        if instance in unique:
            dropped.append((instance, "duplicate"))
        else:
            unique.append(instance)
    return unique, dropped, None


def postprocess(ctx: RunContext) -> PostprocessResult:
    limit = ctx.config.max_instances_per_task
    tasks: list[Task] = []
    rejects: list[dict] = []
    for record in sorted(ctx.run.instances.open(), key=lambda r: r["id"]):
        instances = [Instance(i["input"], i["output"]) for i in record["instances"]]
        kept, dropped, task_reason = filter_task_instances(instances)
        for instance, reason in dropped:
            rejects.append({"id": record["id"], "reason": reason, "input": instance.input,
                            "output": instance.output})
        for instance in kept[limit:]:
            rejects.append({"id": record["id"], "reason": "over_limit", "input": instance.input,
                            "output": instance.output})
        kept = kept[:limit]
        if task_reason is None and not kept:
            task_reason = "no_valid_instances"
        if task_reason:
            rejects.append({"id": record["id"], "reason": task_reason, "task": True,
                            "instruction": record["instruction"]})
            continue
        tasks.append(Task(id=record["id"], instruction=record["instruction"], instances=kept,
                          is_classification=record["is_classification"]))
    if ctx.config.include_seeds:
        tasks.extend(ctx.seeds)
    atomic_write_text(ctx.run.tasks_path, "".join(dumps(t.to_json()) + "\n" for t in tasks))
    atomic_write_text(ctx.run.instance_rejects_path,
                      "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejects))
    return PostprocessResult(
        tasks=len(tasks),
        instances=sum(len(t.instances) for t in tasks),
        dropped_instances=sum(1 for r in rejects if not r.get("task")),
        dropped_tasks=sum(1 for r in rejects if r.get("task")),
    )
