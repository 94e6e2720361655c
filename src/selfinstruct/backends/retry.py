"""Retries with exponential backoff and jitter, honouring Retry-After.

Only :class:`TransientBackendError` is retried (429, 5xx, timeouts, reset connections);
any other error fails the request at once. The jitter comes from a generator seeded by
the request, so waits never change results, only timing.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from selfinstruct.backends.base import TransientBackendError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (attempt counts from 1)."""
        backoff = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        backoff *= 0.5 + rng.random() / 2  # jitter in [50%, 100%] of the backoff
        if retry_after is not None:
            return min(self.max_delay, max(retry_after, backoff))
        return backoff


@dataclass
class RetryStats:
    retries: int = 0
    failures: int = 0


def call_with_retry(
    fn: Callable[[], T],
    policy: RetryPolicy,
    stats: RetryStats | None = None,
    sleep: Callable[[float], None] = time.sleep,
    jitter_seed: int = 0,
    give_up: Callable[[], bool] | None = None,
) -> T:
    """``fn()``, retried on :class:`TransientBackendError` up to the policy's attempts;
    ``give_up()`` true after a failed attempt, or during the wait before the next one
    (checked every half second), ends the retries at once (the server has been failing for
    too long: :class:`selfinstruct.backends.requests.Outage`)."""
    rng = random.Random(jitter_seed)
    for attempt in range(1, policy.max_attempts + 1):
        try:
            return fn()
        except TransientBackendError as exc:
            if attempt == policy.max_attempts or (give_up is not None and give_up()):
                raise
            if stats is not None:
                stats.retries += 1
            delay = policy.delay(attempt, exc.retry_after, rng)
            if give_up is None:
                sleep(delay)
                continue
            steps = max(1, math.ceil(delay / 0.5))
            for _ in range(steps):
                if give_up():
                    raise
                sleep(delay / steps)
    raise AssertionError("unreachable")  # pragma: no cover
