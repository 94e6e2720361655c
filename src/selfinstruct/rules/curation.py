"""The curated recipe's decision for each instance, from its answers record.

An answers record (``answers.jsonl``, one per task, written by ``stages/answers.py``) holds,
for each instance the paper's filters kept: the candidate outputs (the instance's own
first), the medoid's index and agreement, the label scores of a classification instance
and the instruction-following difficulty of the chosen output. This module only decides;
it asks no model. In order, the first that fires:

============================  =================================================================
reason                        when
============================  =================================================================
``one_label``                 classification: every instance of the task has the same label,
                              so no round trip can check it (and it teaches no distinction)
``label_not_recovered``       classification: another of the task's labels is at least as
                              likely as the instance's own after its instruction and input
``no_consensus``              other tasks: the candidates' agreement (the medoid's mean
                              ROUGE-L to the others) is below the threshold
``instruction_does_not_help``  IFD (loss of the output after the prompt over its loss alone)
                              is at or above ``max_ifd``
============================  =================================================================

A kept generation instance takes the medoid as its output.
"""

from __future__ import annotations

import json

from selfinstruct.records import Instance, Task
from selfinstruct.rules.consensus import label_recovered

Dropped = tuple[Instance, str, str]


def _detail(**values: object) -> str:
    return json.dumps(values, ensure_ascii=False, sort_keys=True)


def curate(task: Task, record: dict, min_agreement: float | None,
           max_ifd: float) -> tuple[list[Instance], list[Dropped]]:
    """(kept instances, with their chosen outputs; dropped with reason and detail).
    ``min_agreement`` None: the threshold the answers stage recorded (fitted on the
    seeds). An instance without an answer entry is dropped as ``not_answered``."""
    by_pair = {(a["input"], a["output"]): a for a in record.get("instances", [])}
    threshold = min_agreement if min_agreement is not None else record.get("threshold")
    # the round trip ran when the answerer scored whole texts (the record says so; older
    # records: any instance has an IFD)
    scored = record.get("scored", any("ifd" in a for a in record.get("instances", [])))
    labels = {i.output for i in task.instances}
    one_label = bool(task.is_classification) and scored and len(labels) < 2
    kept: list[Instance] = []
    dropped: list[Dropped] = []
    for instance in task.instances:
        answer = by_pair.get((instance.input, instance.output))
        if answer is None:
            dropped.append((instance, "not_answered", ""))
            continue
        if one_label:
            dropped.append((instance, "one_label", _detail(labels=sorted(labels))))
            continue
        reason = decide(answer, bool(task.is_classification), threshold, max_ifd)
        if reason is not None:
            dropped.append((instance, *reason))
            continue
        if not task.is_classification and answer.get("candidates"):
            instance = Instance(instance.input, answer["candidates"][answer["chosen"]])
        kept.append(instance)
    return kept, dropped


def decide(answer: dict, is_classification: bool, threshold: float | None,
           max_ifd: float) -> tuple[str, str] | None:
    """The reason and detail that drop one answered instance, or None to keep it."""
    labels = answer.get("labels")
    if (is_classification and labels and len(labels) > 1
            and not label_recovered(labels, answer["output"])):
        best = max(labels, key=lambda k: labels[k])
        return "label_not_recovered", _detail(recovered=best, scores=labels)
    agreement = answer.get("agreement")
    if (not is_classification and agreement is not None and threshold is not None
            and agreement < threshold):
        return "no_consensus", _detail(agreement=agreement, threshold=threshold,
                                       candidates=answer.get("candidates", []))
    value = answer.get("ifd")
    if value is not None and value >= max_ifd:
        return "instruction_does_not_help", _detail(ifd=value, max_ifd=max_ifd)
    return None
