"""Run a list of requests against a backend: cache, retries, bounded concurrency, in order.

:func:`run_requests` is the one place where these concerns wrap the backend protocol:

1. every request is looked up in the response cache (if one is given);
2. the misses are sent in batches of ``batch_size``, at most ``max_concurrency`` batches
   in flight, each batch retried on transient errors with backoff;
3. a request that still fails becomes a ``Completion`` with ``finish_reason="error"``
   and the reason, never an exception and never a silent gap;
4. results are yielded strictly in request order, whatever order they arrive in, so
   the stage consuming them makes the same decisions on every run.

What it leaves out: where the work runs. Scale-out is a backend: several servers or
Ray actors pooled in a :class:`~selfinstruct.backends.balanced.BalancedBackend` look like
one backend here. A backend that declares a ``parallelism`` (its number of members) gets
at least that many batches in flight, whatever ``max_concurrency`` says, so that no
member sits idle.

A server backend that declares ``adaptive_concurrency`` (the OpenAI-compatible one) gets an
AIMD limiter (:mod:`selfinstruct.backends.limiter`): ``max_concurrency`` becomes the most
attempts in flight, and the limiter keeps fewer while the server throttles (429, 503,
timeouts), pausing for its Retry-After. The embedded backend runs one request at a time
anyway, and a pool of servers keeps its fixed concurrency.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from selfinstruct.backends.base import (
    Backend,
    BackendError,
    Completion,
    FatalBackendError,
    Request,
    request_key,
)
from selfinstruct.backends.cache import ResponseCache
from selfinstruct.backends.limiter import AIMDLimiter, shared_limiter
from selfinstruct.backends.retry import RetryPolicy, RetryStats, call_with_retry
from selfinstruct.budget import Budget, BudgetExhausted


@dataclass
class UsageStats:
    """Counters for the summary table and the manifest. Thread-safe through ``add``."""

    requests: int = 0
    cached: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    generation_seconds: float = 0.0
    retry: RetryStats = field(default_factory=RetryStats)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, completion: Completion) -> None:
        with self._lock:
            self.requests += 1
            if completion.cached:
                self.cached += 1
                return
            if not completion.ok:
                self.failed += 1
            self.prompt_tokens += completion.prompt_tokens
            self.completion_tokens += completion.completion_tokens
            self.generation_seconds += completion.seconds

    def as_dict(self) -> dict:
        return {
            "requests": self.requests,
            "cached": self.cached,
            "failed": self.failed,
            "retries": self.retry.retries,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "generation_seconds": round(self.generation_seconds, 3),
        }


def _send(backend: Backend, batch: Sequence[Request], policy: RetryPolicy,
          stats: UsageStats, seed: int, limiter: AIMDLimiter | None = None) -> list[Completion]:
    started = time.perf_counter()

    def attempt() -> list[Completion]:
        if limiter is None:
            return backend.complete(batch)
        return limiter.call(lambda: backend.complete(batch))

    try:
        results = call_with_retry(attempt, policy, stats.retry, jitter_seed=seed)
    except FatalBackendError:  # a rejected key: the run stops, nothing is recorded as failed
        raise
    except BackendError as exc:
        reason = f"{type(exc).__name__}: {exc}"
        return [Completion.failed(reason) for _ in batch]
    except Exception as exc:  # noqa: BLE001 - a backend bug costs one request, not the run
        reason = f"unexpected {type(exc).__name__}: {exc}"
        return [Completion.failed(reason) for _ in batch]
    if len(results) != len(batch):
        return [Completion.failed("backend returned the wrong number of completions")] * len(batch)
    elapsed = time.perf_counter() - started
    for completion in results:
        if not completion.seconds:
            completion.seconds = elapsed / len(batch)
    return results


def run_requests(
    backend: Backend,
    requests: Sequence[Request],
    *,
    cache: ResponseCache | None = None,
    max_concurrency: int = 1,
    batch_size: int = 1,
    retry: RetryPolicy | None = None,
    stats: UsageStats | None = None,
    on_complete: Callable[[int, Completion], None] | None = None,
    budget: Budget | None = None,
    adaptive: bool | None = None,
) -> Iterator[tuple[int, Completion]]:
    """Yield ``(index, completion)`` for every request, in request order.

    With a ``budget``, no request is sent once it is exhausted: the requests in flight
    finish and are yielded, then :class:`BudgetExhausted` is raised.
    ``adaptive``: AIMD concurrency up to ``max_concurrency``; None: when the backend
    declares ``adaptive_concurrency``."""
    stats = stats if stats is not None else UsageStats()
    retry = retry or RetryPolicy()
    identity = backend.identity
    keys = [request_key(identity, request) for request in requests] if cache is not None else []
    ready: dict[int, Completion] = {}
    misses: list[int] = []
    for i in range(len(requests)):
        hit = cache.get(keys[i]) if cache is not None else None
        if hit is not None:
            ready[i] = hit
        else:
            misses.append(i)
    batches = [misses[i:i + max(1, batch_size)] for i in range(0, len(misses), max(1, batch_size))]
    in_flight = max(1, max_concurrency, getattr(backend, "parallelism", 1))
    if adaptive is None:
        adaptive = bool(getattr(backend, "adaptive_concurrency", False))
    limiter = shared_limiter(backend, in_flight) if adaptive else None

    next_to_yield = 0

    def drain() -> Iterator[tuple[int, Completion]]:
        nonlocal next_to_yield
        while next_to_yield in ready:
            completion = ready.pop(next_to_yield)
            stats.add(completion)
            if on_complete:
                on_complete(next_to_yield, completion)
            yield next_to_yield, completion
            next_to_yield += 1

    yield from drain()
    if not batches:
        return
    with ThreadPoolExecutor(max_workers=in_flight) as pool:
        pending: dict[Future, list[int]] = {}
        queue = list(reversed(batches))
        stopped: str | None = None

        def submit_next() -> None:
            nonlocal stopped
            if not queue or stopped is not None:
                return
            if budget is not None:
                stopped = budget.exhausted()
                if stopped is not None:
                    return
            batch = queue.pop()
            pending[pool.submit(_send, backend, [requests[i] for i in batch], retry,
                                stats, batch[0], limiter)] = batch

        try:
            for _ in range(in_flight):
                submit_next()
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    batch = pending.pop(future)
                    for i, completion in zip(batch, future.result()):
                        if cache is not None:
                            cache.put(keys[i], completion)
                        if budget is not None:
                            budget.spend(completion.prompt_tokens, completion.completion_tokens)
                        ready[i] = completion
                    submit_next()
                yield from drain()
        finally:
            for future in pending:
                future.cancel()
        if stopped is not None:
            raise BudgetExhausted(stopped)
