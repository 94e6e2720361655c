"""The training mix: the seed tasks beside the machine-written data, upsampled, and the
machine-written examples tagged as such.

Uncurated synthetic data alone does not help small models; keeping (or upsampling) the
human data is what avoids collapse (Gerstgrasser et al., 2024), and marking synthetic
examples with a tag in the prompt beat untagged mixing in Humpback (Li et al., 2023). Here:

- ``seeds_upsample`` N adds every seed task's instances N times, each copy in its own
  fine-tuning template (drawn from the seed and the copy), so the copies are not identical;
- ``synthetic_tag`` puts a first line before the prompt of every example of the data file
  (the machine-written ones); the seeds stay untagged. At inference the model is asked
  without a tag, as a seed example would be: the tag lets training tell the two sources
  apart without teaching the model to expect it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from selfinstruct.prompts import PromptTemplates, finetuning_example
from selfinstruct.records import Task
from selfinstruct.run.randomness import derived_rng
from selfinstruct.training.data import Example, TrainingData


def tag_prompt(tag: str, prompt: str) -> str:
    """The prompt with the tag as its first line."""
    return f"{tag.strip()}\n{prompt}"


def seed_examples(seeds: Sequence[Task], copies: int, templates: PromptTemplates,
                  seed: int) -> list[Example]:
    """Every instance of every seed task, ``copies`` times, copy ``k`` of an instance in a
    template drawn from (seed, task, instance, k)."""
    out = []
    for k in range(copies):
        for task in seeds:
            for n, instance in enumerate(task.instances):
                rng = derived_rng(seed, "finetune-seed-template", task.id, n, k)
                prompt, completion = finetuning_example(templates, task.instruction,
                                                        instance.input, instance.output, rng)
                out.append(Example(prompt, completion))
    return out


def mix(data: TrainingData, seeds: Sequence[Task], seeds_upsample: int,
        synthetic_tag: str | None, templates: PromptTemplates, seed: int) -> TrainingData:
    """The data's examples (tagged when a tag is given), then the seed tasks'
    ``seeds_upsample`` times. The digest names the mix, so a fine-tune on another mix of
    the same file is not taken for a resume."""
    if not seeds_upsample and not synthetic_tag:
        return data
    examples = [Example(tag_prompt(synthetic_tag, e.prompt), e.completion, e.chat)
                if synthetic_tag else e for e in data.examples]
    examples += seed_examples(seeds, seeds_upsample, templates, seed)
    seeds_digest = hashlib.sha256("".join(
        f"{t.id}\x00{t.instruction}\x00" + "".join(f"{i.input}\x00{i.output}\x00"
                                                   for i in t.instances)
        for t in seeds).encode()).hexdigest()
    digest = hashlib.sha256(f"{data.sha256}:{seeds_upsample}:{synthetic_tag or ''}:"
                            f"{seeds_digest}".encode()).hexdigest()
    return TrainingData(data.path, data.format, digest, tuple(examples))
