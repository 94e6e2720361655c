"""Instances that copy a demonstration of their own prompt ("demonstration leaks").

The instance prompt shows the model a dozen worked examples before the task it must answer.
Small models often answer by repeating one of them: the template's letter to "Mr. Lopez"
about the kitchen faucet in apartment 4B came back as the output of several writing tasks.
Such an instance is fluent, passes every rule of the paper, and teaches the fine-tuned model
to recite the template.

:class:`LeakDetector` reads the demonstrations out of the two instance templates once per
run: a template is a header, then blocks that start with ``Task: <instruction>`` (split at
each blank line followed by ``Task:``), and each block's examples are parsed with the same
parsers the instances stage applies to the model's answers
(:func:`selfinstruct.rules.parsing.parse_classification_instances` for the output-first
template, :func:`~selfinstruct.rules.parsing.parse_generation_instances` for the input-first
one). Every demonstration input and output of at least :data:`MIN_TOKENS` tokens goes into
a :class:`selfinstruct.novelty.index.NoveltyIndex`, one per template. An instance leaks when its
input or its output (of at least :data:`MIN_TOKENS` tokens) has a ROUGE-L F-measure above
:data:`LEAK_THRESHOLD` (the ``rouge_score`` tokenizer, no stemming, as the novelty filter)
with any demonstration text of the template that produced it: output-first for
classification tasks, input-first otherwise. Short texts are ignored on both sides, so a
label such as ``Positive`` that a task shares with a demonstration is not a leak.

A second test catches the partial copies that ROUGE-L F misses because the demonstration is
much longer than the copy ("Project: Fix the leaking faucet in apartment 4B." against the
whole letter; "Write a polite message asking my landlord to fix a leaking faucet." given as
an answer, which is a demonstration's *instruction*): a text of at least
:data:`MIN_CONTAINED_TOKENS` tokens leaks when at least :data:`CONTAINMENT` of its tokens
form a common subsequence with one demonstration text, instructions included. Found by
reading 30 random instances of a Gemma 3 270M run by hand, 3 of which were such copies.

Deliberately left out: leaks of the bootstrap prompt (its in-context instructions are in the
novelty filter's pool already), and near-copies below the threshold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from selfinstruct.novelty.index import NoveltyIndex
from selfinstruct.novelty.rouge import Tokenizer, lcs_length
from selfinstruct.prompts import PromptTemplates
from selfinstruct.records import Instance
from selfinstruct.rules.parsing import parse_classification_instances, parse_generation_instances

__all__ = ["CONTAINMENT", "LEAK_THRESHOLD", "MIN_TOKENS", "Demonstration", "LeakDetector",
           "demonstrations"]

LEAK_THRESHOLD = 0.7  # ROUGE-L F above this with a demonstration text: a copy
MIN_TOKENS = 4  # texts with fewer tokens (labels, "Number: 97") are never leaks
REASON = "demonstration_leak"
CONTAINMENT = 0.8  # share of a text's tokens in a common subsequence with one demonstration
MIN_CONTAINED_TOKENS = 5

_BLOCK = re.compile(r"\n\n(?=Task:)")


@dataclass(frozen=True)
class Demonstration:
    """One input or output of one demonstration of an instance template."""

    task: str  # the demonstration's instruction, after ``Task:``
    field: str  # "input" or "output"
    text: str


def demonstrations(template: str, classification: bool) -> list[Demonstration]:
    """Every demonstration input and output of an instance template, in template order.

    ``classification`` picks the parser: ``Class label:`` blocks (output-first) or
    ``Example N`` / ``Output:`` blocks (input-first). Empty texts are left out.
    """
    parse = parse_classification_instances if classification else parse_generation_instances
    found = []
    for block in _BLOCK.split(template):
        if not block.startswith("Task:"):
            continue  # the header
        head, _, body = block.partition("\n")
        task = head.removeprefix("Task:").strip()
        if not task or not body.strip():
            continue  # the final, empty "Task:" the query is appended to
        found.append(Demonstration(task, "instruction", task))
        for instance in parse(body, False).instances:
            for name in ("input", "output"):
                text = getattr(instance, name)
                if text.strip():
                    found.append(Demonstration(task, name, text))
    return found


class LeakDetector:
    """Tells whether an instance copies a demonstration of its template (see the module)."""

    def __init__(self, templates: PromptTemplates, *, threshold: float = LEAK_THRESHOLD,
                 min_tokens: int = MIN_TOKENS) -> None:
        self.threshold = threshold
        self.min_tokens = min_tokens
        self._tokenize = Tokenizer(use_stemmer=False)
        self._indexes: dict[bool, tuple[NoveltyIndex, list[Demonstration]]] = {}
        self._token_lists: dict[bool, list[tuple[Demonstration, list[str]]]] = {}
        for classification, template in ((True, templates.instance_output_first),
                                         (False, templates.instance_input_first)):
            every = demonstrations(template, classification)
            demos = [d for d in every if d.field != "instruction" and self._long(d.text)]
            self._indexes[classification] = (NoveltyIndex(d.text for d in demos), demos)
            self._token_lists[classification] = [(d, self._tokenize(d.text)) for d in every]

    def _long(self, text: str) -> bool:
        return len(self._tokenize(text)) >= self.min_tokens

    def demonstrations(self, classification: bool) -> list[Demonstration]:
        """The demonstration texts an instance of such a task is compared with."""
        return list(self._indexes[classification][1])

    def leak(self, instance: Instance, classification: bool) -> tuple[str, str] | None:
        """``("demonstration_leak", detail)`` when the input or output copies a
        demonstration text, else None. The input is checked first."""
        index, demos = self._indexes[classification]
        if not demos:
            return None
        for name in ("input", "output"):
            text = getattr(instance, name)
            if not self._long(text):
                continue
            scores = index.scores(text)
            best = int(np.argmax(scores))  # the first demonstration reaching the maximum
            template = "output-first" if classification else "input-first"
            if scores[best] > self.threshold:
                demo = demos[best]
                return REASON, (f"{name} has ROUGE-L {scores[best]:.4f} with the {demo.field} "
                                f"of the {template} demonstration \"{demo.task}\"")
            contained = self._contained(text, classification)
            if contained is not None:
                demo, share = contained
                return REASON, (f"{share:.0%} of the {name}'s words copy the {demo.field} "
                                f"of the {template} demonstration \"{demo.task}\"")
        return None

    def _contained(self, text: str, classification: bool
                   ) -> tuple[Demonstration, float] | None:
        """The first demonstration text that holds at least ``CONTAINMENT`` of the
        text's tokens as a common subsequence, with that share."""
        tokens = self._tokenize(text)
        if len(tokens) < MIN_CONTAINED_TOKENS:
            return None
        for demo, demo_tokens in self._token_lists[classification]:
            share = lcs_length(tokens, demo_tokens) / len(tokens)
            if share >= CONTAINMENT:
                return demo, share
        return None
