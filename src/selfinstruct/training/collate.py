"""Pad a batch of encoded examples on the right, keeping the -100 prompt labels.

Right padding: training sees every example from its first token, and the padding after
the EOS is masked out of both attention and loss. (Left padding is for batched
generation, not training.) Pad positions get label -100, so padding is never learned even
when the pad token is the EOS token, as it is for SmolLM2.
"""

from __future__ import annotations

from selfinstruct.training.tokenize import IGNORE_INDEX


def pad_right(features: list[dict], pad_id: int) -> dict[str, list[list[int]]]:
    """Lists of equal length: ``input_ids`` padded with ``pad_id``, ``attention_mask``
    with 0, ``labels`` with -100."""
    width = max(len(f["input_ids"]) for f in features)
    batch: dict[str, list[list[int]]] = {"input_ids": [], "attention_mask": [], "labels": []}
    for feature in features:
        gap = width - len(feature["input_ids"])
        batch["input_ids"].append(list(feature["input_ids"]) + [pad_id] * gap)
        batch["attention_mask"].append(list(feature["attention_mask"]) + [0] * gap)
        batch["labels"].append(list(feature["labels"]) + [IGNORE_INDEX] * gap)
    return batch


class CompletionCollator:
    """The Trainer's ``data_collator``: :func:`pad_right`, as torch tensors."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, features: list[dict]):
        import torch

        return {name: torch.tensor(rows, dtype=torch.long)
                for name, rows in pad_right(features, self.pad_id).items()}
