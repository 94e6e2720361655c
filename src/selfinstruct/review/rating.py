"""The list of responses a human rates, blind and shuffled.

Every (model, instance) response of the prediction files given becomes one item. Items
are grouped by instance, so that the responses to one instruction come one after another
and are rated against each other, as in the paper's human evaluation; the order of the
instances and, within an instance, the order of the models are shuffled with ``seed``.
An item shows the instruction, the input and the response, never the model's name: the
page addresses items by their position (1..N) only.

What it leaves out: reading prediction files
(:func:`selfinstruct.evaluation.user_oriented.load_responses` does) and storing ratings
(:mod:`.store`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from selfinstruct.errors import UserError
from selfinstruct.evaluation.user_oriented import Response, load_responses


@dataclass(frozen=True)
class RateItem:
    number: int          # 1-based position in the rating order
    response: Response


def rating_items(responses: list[Response], seed: int = 0) -> list[RateItem]:
    by_instance: dict[str, list[Response]] = {}
    for r in responses:
        by_instance.setdefault(r.instance_id, []).append(r)
    rng = random.Random(seed)
    instance_ids = sorted(by_instance)
    rng.shuffle(instance_ids)
    ordered: list[Response] = []
    for instance_id in instance_ids:
        group = sorted(by_instance[instance_id], key=lambda r: r.model)
        rng.shuffle(group)
        ordered.extend(group)
    return [RateItem(k, r) for k, r in enumerate(ordered, start=1)]


def load_prediction_files(paths: list[str]) -> list[Response]:
    """Responses of every file; two files may not carry the same model name."""
    responses: list[Response] = []
    seen: dict[str, str] = {}
    for path in paths:
        batch = load_responses(path, option="--rate")
        model = batch[0].model
        if model in seen:
            raise UserError(f"--rate: {path} and {seen[model]} have the same model name "
                            f"'{model}' (the file name minus _predictions.jsonl); rename one")
        seen[model] = path
        responses.extend(batch)
    return responses
