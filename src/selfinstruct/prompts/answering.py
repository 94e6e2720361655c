"""The answer prompts of the curated recipe: (instruction, input) in a fine-tuning format.

An answer is asked in the format the model is fine-tuned on (``finetuning_templates.json``),
so that an adapter tuned on the seed tasks sees what it was trained on. Candidate ``j``
uses the ``j``-th template of the list (round robin) behind ``shots`` seed demonstrations
drawn for ``j`` alone: candidates drawn under different prompts agree less by accident,
and every request of one candidate shares the same demonstrations, which the embedded
backend evaluates once (the request's ``prefix``).

Demonstrations are separated by :data:`SEPARATOR`; generation stops there.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from selfinstruct.prompts.templates import PromptTemplates
from selfinstruct.records import Task

SEPARATOR = "\n\n###\n\n"
STOP = ("###", "<|endoftext|>", "\n\n\n")
END = "<|endoftext|>"
# demonstrations are short seed instances: a long one costs prefill in every request
MAX_DEMO_WORDS = 60


def _template(templates: PromptTemplates, has_input: bool, j: int) -> tuple[str, str]:
    pairs = templates.finetuning_with_input if has_input else templates.finetuning_without_input
    return pairs[j % len(pairs)]


def answer_prompt(templates: PromptTemplates, instruction: str, input_text: str,
                  j: int = 0) -> str:
    """The prompt part of the ``j``-th fine-tuning template for this pair."""
    prompt_t, _ = _template(templates, bool(input_text.strip()), j)
    return prompt_t.format(instruction=instruction.strip(), input=input_text.strip())


def answer_completion(templates: PromptTemplates, input_text: str, output: str,
                      j: int = 0) -> str:
    """The completion part of the ``j``-th template, without the end marker."""
    _, completion_t = _template(templates, bool(input_text.strip()), j)
    return completion_t.format(output=output.strip()).replace(END, "")


@dataclass(frozen=True)
class Demonstrations:
    """The seed tasks shown before candidate ``j``'s prompts, and their text."""

    j: int
    task_ids: tuple[str, ...]
    text: str  # ends with SEPARATOR; empty with no shots


def demonstrations(templates: PromptTemplates, seeds: Sequence[Task], shots: int,
                   rng: random.Random, j: int) -> Demonstrations:
    """``shots`` seed instances with short outputs, drawn with ``rng`` (the caller derives
    it from the run seed and ``j``), shown in candidate ``j``'s format."""
    if shots <= 0:
        return Demonstrations(j, (), "")
    pool = [t for t in seeds if t.instances
            and len(t.instances[0].output.split()) <= MAX_DEMO_WORDS
            and len(t.instances[0].input.split()) <= MAX_DEMO_WORDS]
    chosen = rng.sample(pool, min(shots, len(pool)))
    parts = []
    for task in chosen:
        instance = task.instances[0]
        parts.append(answer_prompt(templates, task.instruction, instance.input, j)
                     + answer_completion(templates, instance.input, instance.output, j)
                     + SEPARATOR)
    return Demonstrations(j, tuple(t.id for t in chosen), "".join(parts))


def clean_answer(text: str) -> str:
    """The answer as kept: up to a stop string the backend did not cut, stripped."""
    for stop in STOP:
        text = text.split(stop)[0]
    return text.strip()
