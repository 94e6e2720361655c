"""Adaptive concurrency for a server that throttles: additive increase, multiplicative decrease.

A server that answers 429 or 503, or stops answering in time, is telling the client to send
less. :class:`AIMDLimiter` listens, as TCP's congestion control does:

- **slow start**: the limit starts low (``initial``, 4 or ``max_limit`` if smaller) and grows
  by one per successful request, i.e. doubles every round trip, until the first throttle;
- **additive increase**: after that, it grows by ``1 / limit`` per success, i.e. by one per
  round trip;
- **multiplicative decrease**: a throttle (429, 503, a timeout) multiplies it by ``decrease``
  (0.5), at most once per window: a throttle of a request sent before the last decrease is
  counted but does not cut again, since that window was already cut (without this, a burst
  of 429s to the same window would collapse the limit to its minimum);
- **Retry-After**: the throttled request's own retry always waits that long (``retry.py``).
  Once the limit is at its minimum, a throttle's Retry-After also pauses every new request
  until then: when even ``min_limit`` requests at a time are refused, the server is out of
  quota (a rate limit), not of capacity, and only waiting helps. Above the minimum the cut
  is the answer: a global pause there would idle a server that is merely full (measured in
  BENCHMARKS.md);
- the limit stays between ``min_limit`` and ``max_limit`` (``--max-concurrency``).

Other failures (500, a reset connection, a bad request) neither raise nor cut the limit:
they say nothing about load. The requests' own retries and backoff stay in ``retry.py``; the
limiter only decides how many attempts are in flight at once. It changes timing, never
results: the executor applies completions in request order whatever order they arrive in.

:func:`shared_limiter` keeps one limiter per backend object, so what a stage learned about
the server carries over to the next call of :func:`~selfinstruct.backends.requests.run_requests`.

What it leaves out: per-server limits inside a pool of servers (a
:class:`~selfinstruct.backends.pool.balanced.BalancedBackend` keeps a fixed concurrency and
cools down a failing member instead), and latency-based control (Vegas-style): throttles
are the only signal.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from selfinstruct.backends.base import TransientBackendError

T = TypeVar("T")

OK, THROTTLED, OTHER = "ok", "throttled", "other"


@dataclass
class LimiterStats:
    """What the limiter did, for benchmarks and the curious."""

    successes: int = 0
    throttles: int = 0  # every throttled attempt
    decreases: int = 0  # the cuts they caused (at most one per window)
    lowest: float = 0.0
    highest: float = 0.0
    paused_seconds: float = 0.0  # total Retry-After pause set (overlaps merged)


class AIMDLimiter:
    """How many requests may be in flight now; thread-safe.

    Use :meth:`call` around one attempt, or :meth:`acquire` and :meth:`release` by hand.
    ``clock`` is injectable for tests."""

    def __init__(self, max_limit: int, *, min_limit: int = 1, initial: float | None = None,
                 decrease: float = 0.5, clock: Callable[[], float] = time.monotonic):
        if max_limit < 1:
            raise ValueError(f"max_limit must be at least 1, got {max_limit}")
        if not 0.0 < decrease < 1.0:
            raise ValueError(f"decrease must be between 0 and 1, got {decrease}")
        self.max_limit = max_limit
        self.min_limit = max(1, min(min_limit, max_limit))
        start = min(4, max_limit) if initial is None else initial
        self.limit = float(min(max(start, self.min_limit), max_limit))
        self.threshold = float(max_limit)  # slow start below it; set at each decrease
        self.decrease = decrease
        self.clock = clock
        self.stats = LimiterStats(lowest=self.limit, highest=self.limit)
        self._in_flight = 0
        self._epoch = 0
        self._paused_until = 0.0
        self._cond = threading.Condition()

    # --- state ------------------------------------------------------------------------
    @property
    def allowed(self) -> int:
        """Requests that may be in flight at once now."""
        return max(self.min_limit, min(self.max_limit, int(self.limit)))

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def set_max(self, max_limit: int) -> None:
        """A new ``--max-concurrency`` (a resumed run may change it)."""
        with self._cond:
            self.max_limit = max(1, max_limit)
            self.min_limit = min(self.min_limit, self.max_limit)
            self.threshold = min(self.threshold, float(self.max_limit))
            self.limit = min(self.limit, float(self.max_limit))
            self._cond.notify_all()

    # --- slots ------------------------------------------------------------------------
    def try_acquire(self) -> int | None:
        """A ticket (the window it was sent in) when a request may start now, else None."""
        with self._cond:
            return self._try_acquire_locked()

    def _try_acquire_locked(self) -> int | None:
        if self.clock() < self._paused_until or self._in_flight >= self.allowed:
            return None
        self._in_flight += 1
        return self._epoch

    def acquire(self) -> int:
        """Wait for a slot (and for any Retry-After pause to end); returns the ticket."""
        with self._cond:
            while True:
                ticket = self._try_acquire_locked()
                if ticket is not None:
                    return ticket
                pause = self._paused_until - self.clock()
                self._cond.wait(timeout=pause if pause > 0 else None)

    def release(self, ticket: int, outcome: str, retry_after: float | None = None) -> None:
        """End the attempt that holds ``ticket``: ``ok``, ``throttled`` or ``other``."""
        with self._cond:
            self._in_flight = max(0, self._in_flight - 1)
            if outcome == OK:
                self._increase()
            elif outcome == THROTTLED:
                self._throttled(ticket, retry_after)
            self._cond.notify_all()

    def _increase(self) -> None:
        self.stats.successes += 1
        step = 1.0 if self.limit < self.threshold else 1.0 / self.limit
        self.limit = min(float(self.max_limit), self.limit + step)
        self.stats.highest = max(self.stats.highest, self.limit)

    def _throttled(self, ticket: int, retry_after: float | None) -> None:
        self.stats.throttles += 1
        at_floor = self.limit <= self.min_limit
        if retry_after is not None and retry_after > 0 and at_floor:
            until = self.clock() + retry_after
            if until > self._paused_until:
                self.stats.paused_seconds += until - max(self._paused_until, self.clock())
                self._paused_until = until
        if ticket != self._epoch:
            return  # sent in a window that was already cut
        self.limit = max(float(self.min_limit), self.limit * self.decrease)
        self.threshold = self.limit
        self._epoch += 1
        self.stats.decreases += 1
        self.stats.lowest = min(self.stats.lowest, self.limit)

    # --- one attempt ------------------------------------------------------------------
    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in a slot. A :class:`TransientBackendError` marked ``throttled`` (429,
        503, timeout) cuts the limit; success raises it; anything else leaves it."""
        ticket = self.acquire()
        outcome, retry_after = OTHER, None
        try:
            result = fn()
            outcome = OK
            return result
        except TransientBackendError as exc:
            if getattr(exc, "throttled", False):
                outcome, retry_after = THROTTLED, exc.retry_after
            raise
        finally:
            self.release(ticket, outcome, retry_after)


_SHARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


def shared_limiter(backend: object, max_limit: int) -> AIMDLimiter:
    """The limiter of ``backend``, made on first use; its maximum follows ``max_limit``."""
    with _SHARED_LOCK:
        try:
            limiter = _SHARED.get(backend)
        except TypeError:  # not weak-referenceable: a limiter for this call only
            return AIMDLimiter(max_limit)
        if limiter is None:
            limiter = AIMDLimiter(max_limit)
            _SHARED[backend] = limiter
        elif limiter.max_limit != max_limit:
            limiter.set_max(max_limit)
        return limiter
