"""The numbers behind the report's figures, as plain functions over records.

- :func:`seed_similarities`: each instruction's ROUGE-L F against its most similar *seed*
  instruction (the paper's Figure 4), with :class:`selfinstruct.novelty.index.NoveltyIndex`,
  whose scores equal ``rouge_score``'s;
- :func:`seed_pool`: the seed instructions a run compared against (classification seeds
  only for a ``classification_only`` run, as the bootstrap does);
- :func:`length_samples`: word counts of instructions, non-empty inputs and outputs
  (Figure 5; words are whitespace-separated, as in the paper's figure);
- :func:`sample_tasks`: a seeded random sample for reading.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from selfinstruct.records import Task


def seed_pool(seeds: list[Task], config: dict) -> list[str]:
    if config.get("classification_only"):
        return [t.instruction for t in seeds if t.is_classification]
    return [t.instruction for t in seeds]


def seed_similarities(instructions: list[str], seed_instructions: list[str]) -> list[float]:
    from selfinstruct.novelty.index import NoveltyIndex

    index = NoveltyIndex(seed_instructions)
    return [index.max_similarity(text) for text in instructions]


def word_count(text: str) -> int:
    return len(text.split())


@dataclass
class Lengths:
    instructions: list[int]
    inputs: list[int]          # non-empty inputs only
    outputs: list[int]
    empty_inputs: int


def length_samples(tasks: list[dict]) -> Lengths:
    """Word counts over the final tasks: one per instruction, one per instance."""
    instances = [i for t in tasks for i in t["instances"]]
    inputs = [word_count(i["input"]) for i in instances if i["input"].strip()]
    return Lengths(
        instructions=[word_count(t["instruction"]) for t in tasks],
        inputs=inputs,
        outputs=[word_count(i["output"]) for i in instances],
        empty_inputs=len(instances) - len(inputs),
    )


def sample_tasks(tasks: list[dict], k: int, seed: int) -> list[dict]:
    """``k`` tasks chosen at random (seeded), shown in their run order."""
    if len(tasks) <= k:
        return list(tasks)
    chosen = sorted(random.Random(seed).sample(range(len(tasks)), k))
    return [tasks[i] for i in chosen]

