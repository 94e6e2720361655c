"""Stage 4a: the paper's instance filters, from ``instances.jsonl`` to ``tasks.jsonl``.

For each task, in order:

1. drop instances whose input equals their output, whose output is empty, or whose input
   or output ends with ``:`` (:func:`selfinstruct.rules.filters.instance_reject_reason`);
2. if two instances share a non-empty input but have different outputs, drop the whole
   task (its instances contradict each other);
3. remove exact duplicates, keeping the first;
4. keep at most ``max_instances_per_task`` instances: a random sample of that many, in the
   sampled order, as the original's ``random.sample`` (:func:`cap_instances`; the generator
   derives from the run seed and the task id, so a re-run picks the same ones); a task
   within the limit keeps its instances in order;
5. a task left with no instance is dropped.

Beyond the paper (:func:`instance_screens`), an instance that passes step 1 is also dropped,
with a ``detail``, when it copies a demonstration of its own prompt (``demonstration_leak``,
the refined recipe, :mod:`selfinstruct.rules.leaks`) or shares a 13-gram with an evaluation set
(``contaminated``, ``--decontaminate``, :mod:`selfinstruct.rules.decontamination`). The paper
recipe without ``--decontaminate`` runs neither, and writes exactly what it wrote before.

The curated recipe then applies its answers (``answers.jsonl``, :func:`curate_tasks`):
``no_consensus``, ``label_not_recovered``, ``instruction_does_not_help``, and
``not_answered`` for a task whose answers failed (asked again on the next run).

Seed tasks are added only with ``include_seeds``. The output files are rewritten
atomically on each run: this stage is cheap and pure, so it is simply run again.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from selfinstruct.files import dumps
from selfinstruct.records import Instance, Reject, Task
from selfinstruct.rules.decontamination import load_decontaminator
from selfinstruct.rules.filters import instance_reject_reason
from selfinstruct.run.randomness import derived_rng
from selfinstruct.stages.context import PostprocessContext


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


def cap_instances(instances: list[Instance], limit: int,
                  rng: random.Random) -> tuple[list[Instance], list[Instance]]:
    """(chosen, left out): all of them when within ``limit``, else ``rng.sample`` of
    ``limit`` in the sampled order (the original's per-task ``random.sample``), and the
    others in their order."""
    if len(instances) <= limit:
        return list(instances), []
    picked = rng.sample(range(len(instances)), limit)
    chosen = set(picked)
    return ([instances[k] for k in picked],
            [x for k, x in enumerate(instances) if k not in chosen])


# A check beyond the paper's rules: (instance, is_classification) -> (reason, detail) or None.
Screen = Callable[[Instance, bool], tuple[str, str] | None]


def screen_instances(
    instances: list[Instance], is_classification: bool, screens: Sequence[Screen],
) -> tuple[list[Instance], list[tuple[Instance, str, str]]]:
    """(kept, dropped with reason and detail) under ``screens``, the first that fires.
    An instance that one of the paper's rules rejects is kept here, for
    :func:`filter_task_instances` to drop under the paper's reason."""
    kept, dropped = [], []
    for instance in instances:
        hit = None
        if screens and instance_reject_reason(instance) is None:
            hit = next((h for s in screens if (h := s(instance, is_classification))), None)
        if hit is None:
            kept.append(instance)
        else:
            dropped.append((instance, *hit))
    return kept, dropped


def instance_screens(ctx: PostprocessContext) -> list[Screen]:
    """The recipe's and the options' checks: demonstration leaks (refined recipe), then
    evaluation-set overlap (``--decontaminate``). None for the paper recipe without it."""
    screens: list[Screen] = []
    if ctx.config.recipe_settings.filter_demonstration_leaks:
        from selfinstruct.rules.leaks import LeakDetector

        screens.append(LeakDetector(ctx.templates).leak)
    contamination = load_decontaminator(ctx.config.decontamination_files)
    if contamination is not None:
        screens.append(lambda instance, _clf: contamination.instance_hit(instance))
    return screens


def select_tasks(ctx: PostprocessContext) -> tuple[list[Task], list[Reject]]:
    """Steps 1-5 and the screens over ``instances.jsonl``: the tasks the paper's filters
    keep (seeds not added), and every reject. Pure: the answers stage calls it to learn
    which instances it must answer."""
    limit = ctx.config.max_instances_per_task
    tasks: list[Task] = []
    rejects: list[Reject] = []
    screens = instance_screens(ctx)
    for record in sorted(ctx.run.instances.recover(), key=lambda r: r["id"]):
        task_id = record["id"]
        instances = [Instance(i["input"], i["output"]) for i in record["instances"]]
        instances, screened = screen_instances(instances, record["is_classification"], screens)
        rejects += [Reject.of_instance(task_id, reason, instance, detail)
                    for instance, reason, detail in screened]
        kept, dropped, task_reason = filter_task_instances(instances)
        rejects += [Reject.of_instance(task_id, reason, instance) for instance, reason in dropped]
        kept, over = cap_instances(kept, limit,
                                   derived_rng(ctx.config.seed, "instance-cap", task_id))
        rejects += [Reject.of_instance(task_id, "over_limit", instance) for instance in over]
        if task_reason is None and not kept:
            task_reason = "no_valid_instances"
        if task_reason:
            rejects.append(Reject.of_task(task_id, task_reason, record["instruction"]))
            continue
        tasks.append(Task(id=task_id, instruction=record["instruction"], instances=kept,
                          is_classification=record["is_classification"]))
    return tasks, rejects


def curate_tasks(ctx: PostprocessContext, tasks: list[Task]) -> tuple[list[Task], list[Reject]]:
    """The curated recipe's decisions (:func:`selfinstruct.rules.curation.curate`) from
    ``answers.jsonl``: outputs replaced by their consensus, instances dropped with their
    reason, and the paper's rules run again on the outputs that changed."""
    from selfinstruct.rules.curation import curate

    answered = {r["id"]: r for r in ctx.run.answers.recover()}
    kept_tasks, rejects = [], []
    for task in tasks:
        record = answered.get(task.id)
        if record is None:  # its answers failed: asked again on the next run
            rejects += [Reject.of_instance(task.id, "not_answered", i) for i in task.instances]
            rejects.append(Reject.of_task(task.id, "no_valid_instances", task.instruction))
            continue
        kept, dropped = curate(task, record, ctx.config.min_agreement, ctx.config.max_ifd)
        rejects += [Reject.of_instance(task.id, reason, instance, detail)
                    for instance, reason, detail in dropped]
        kept, invalid, task_reason = filter_task_instances(kept)
        rejects += [Reject.of_instance(task.id, reason, instance) for instance, reason in invalid]
        if task_reason is None and not kept:
            task_reason = "no_valid_instances"
        if task_reason:
            rejects.append(Reject.of_task(task.id, task_reason, task.instruction))
            continue
        kept_tasks.append(Task(id=task.id, instruction=task.instruction, instances=kept,
                               is_classification=task.is_classification))
    return kept_tasks, rejects


def postprocess(ctx: PostprocessContext) -> PostprocessResult:
    tasks, rejects = select_tasks(ctx)
    if ctx.config.recipe_settings.curate:
        tasks, curated = curate_tasks(ctx, tasks)
        rejects += curated
    if ctx.config.include_seeds:
        tasks.extend(ctx.seeds)
    ctx.run.replace_file(ctx.run.tasks_path, "".join(dumps(t.to_json()) + "\n" for t in tasks))
    ctx.run.replace_file(ctx.run.instance_rejects_path,
                         "".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n"
                                 for r in rejects))
    return PostprocessResult(
        tasks=len(tasks),
        instances=sum(len(t.instances) for t in tasks),
        dropped_instances=sum(1 for r in rejects if r.kind == "instance"),
        dropped_tasks=sum(1 for r in rejects if r.kind == "task"),
    )
