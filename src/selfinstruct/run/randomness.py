"""Every random choice of a run derives from the run seed and a stable name for the choice
(``bootstrap:<request index>``, ``instance-cap:<task id>``), never from call order, so a
resumed or reordered run makes the same choices."""

from __future__ import annotations

import hashlib
import random


def derived_rng(seed: int, *parts: object) -> random.Random:
    """A generator that depends only on the run seed and a stable name for the choice."""
    return random.Random(":".join(str(p) for p in (seed, *parts)))


def derived_seed(seed: int, *parts: object) -> int:
    blob = ":".join(str(p) for p in (seed, *parts)).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "big") & 0x7FFFFFFF
