"""Run a list of requests against a backend: cache, retries, bounded concurrency, in order.

:func:`run_requests` is the one place where these concerns wrap the backend protocol:

1. every request is looked up in the response cache (if one is given);
2. the requests are cut into fixed groups of ``batch_size`` in request order; a group the
   cache answers whole is served from it, any other group is sent whole (so a batched
   backend decodes the same compositions on a resumed run), at most ``max_concurrency``
   groups in flight, each retried on transient errors with backoff;
3. a request that still fails becomes a ``Completion`` with ``finish_reason="error"``
   and the reason, never an exception and never a silent gap;
4. results are yielded strictly in request order, whatever order they arrive in, so
   the stage consuming them makes the same decisions on every run.

What it leaves out: where the work runs. Scale-out is a backend: several servers or
Ray actors pooled in a :class:`~selfinstruct.backends.pool.balanced.BalancedBackend` look like
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
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from selfinstruct.backends.base import (
    Backend,
    BackendError,
    Completion,
    FatalBackendError,
    Request,
    TransientBackendError,
    request_key,
)
from selfinstruct.backends.budget import Budget, BudgetExhausted
from selfinstruct.backends.cache import ResponseCache
from selfinstruct.backends.limiter import AIMDLimiter, shared_limiter
from selfinstruct.backends.retry import RetryPolicy, RetryStats, call_with_retry
from selfinstruct.errors import ServerUnavailable


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
    last_error: str | None = None  # the reason of the last request that failed for good
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, completion: Completion) -> None:
        with self._lock:
            self.requests += 1
            if completion.cached:
                self.cached += 1
                return
            if not completion.ok:
                self.failed += 1
                self.last_error = completion.error
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


class Outage:
    """How long the backend has failed without one answer in between, shared by every
    request loop of a run: past ``give_up_after`` seconds (None or 0: never) the loop
    stops retrying and sending, and raises :class:`ServerUnavailable`."""

    def __init__(self, give_up_after: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.give_up_after = give_up_after or None
        self.clock = clock
        self.failing_since: float | None = None
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def answered(self) -> None:
        with self._lock:
            self.failing_since = None

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            if self.failing_since is None:
                self.failing_since = self.clock()
            self.last_error = f"{type(exc).__name__}: {exc}"

    def over(self) -> bool:
        with self._lock:
            return (self.give_up_after is not None and self.failing_since is not None
                    and self.clock() - self.failing_since >= self.give_up_after)


class _Sender:
    """Sends one group of requests with retries (and the limiter, when there is one); a
    group that fails for good comes back as failed completions, never as an exception."""

    def __init__(self, backend: Backend, policy: RetryPolicy, stats: UsageStats,
                 limiter: AIMDLimiter | None, outage: Outage):
        self.backend, self.policy, self.stats, self.limiter = backend, policy, stats, limiter
        self.outage = outage

    def _attempt(self, group: Sequence[Request]) -> list[Completion]:
        try:
            if self.limiter is None:
                results = self.backend.complete(group)
            else:
                results = self.limiter.call(lambda: self.backend.complete(group))
        except TransientBackendError as exc:
            self.outage.failed(exc)
            raise
        self.outage.answered()
        return results

    def send(self, group: Sequence[Request], seed: int) -> list[Completion]:
        started = time.perf_counter()
        try:
            results = call_with_retry(lambda: self._attempt(group), self.policy,
                                      self.stats.retry, jitter_seed=seed,
                                      give_up=self.outage.over)
        except FatalBackendError:  # a rejected key: the run stops, nothing is recorded failed
            raise
        except BackendError as exc:
            return [Completion.failed(f"{type(exc).__name__}: {exc}") for _ in group]
        except Exception as exc:  # noqa: BLE001 - a backend bug costs one group, not the run
            return [Completion.failed(f"unexpected {type(exc).__name__}: {exc}") for _ in group]
        if len(results) != len(group):
            return [Completion.failed("backend returned the wrong number of completions")
                    for _ in group]
        elapsed = time.perf_counter() - started
        for completion in results:
            if not completion.seconds:
                completion.seconds = elapsed / len(group)
        return results


class _InOrder:
    """Completions as they arrive, handed out strictly in request order."""

    def __init__(self, stats: UsageStats,
                 on_complete: Callable[[int, Completion], None] | None):
        self.stats, self.on_complete = stats, on_complete
        self.ready: dict[int, Completion] = {}
        self.next = 0

    def put(self, index: int, completion: Completion) -> None:
        self.ready[index] = completion

    def drain(self) -> Iterator[tuple[int, Completion]]:
        while self.next in self.ready:
            index, completion = self.next, self.ready.pop(self.next)
            self.stats.add(completion)
            if self.on_complete:
                self.on_complete(index, completion)
            self.next += 1
            yield index, completion


def batches(backend: object) -> bool:
    """Whether ``backend`` decodes requests together (the embedded model with
    ``--max-concurrency`` above 1). Its completions depend on which requests share a
    group, so a caller that resumes must ask the same request list again (done requests
    included; the cache answers them) for the groups, and the text, to be the same."""
    return getattr(backend, "group_size", 1) > 1


def fixed_groups(count: int, size: int) -> list[list[int]]:
    """Consecutive groups of ``size`` request indices: a function of the request list
    alone, never of what the cache holds, so a batched backend decodes the same
    compositions on a resumed run as on an uninterrupted one."""
    size = max(1, size)
    return [list(range(start, min(start + size, count))) for start in range(0, count, size)]


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
    outage: Outage | None = None,
) -> Iterator[tuple[int, Completion]]:
    """Yield ``(index, completion)`` for every request, in request order.

    Requests go out in :func:`fixed_groups` of ``batch_size``; a group with every answer
    in the cache is served from it, any other group is sent whole. With a ``budget``, no
    group is sent once it is exhausted: the groups in flight finish and are yielded, then
    :class:`BudgetExhausted` is raised. ``adaptive``: AIMD concurrency up to
    ``max_concurrency``; None: when the backend declares ``adaptive_concurrency``.
    With an ``outage`` whose time is up (the backend failed every attempt for its
    ``give_up_after`` seconds), no group is sent any more: those in flight stop retrying,
    fail and are yielded, then :class:`ServerUnavailable` is raised."""
    outage = outage if outage is not None else Outage()
    stats = stats if stats is not None else UsageStats()
    keys = ([request_key(backend.identity, request) for request in requests]
            if cache is not None else [])
    hits = {i: hit for i in range(len(requests))
            if cache is not None and (hit := cache.get(keys[i])) is not None}
    in_order = _InOrder(stats, on_complete)
    to_send: deque[list[int]] = deque()
    # A backend that decodes requests together (the embedded model's batch) gets whole
    # groups of the size it asks for, one at a time: its concurrency is the batch.
    group_size = getattr(backend, "group_size", 1)
    if group_size > 1:
        batch_size, max_concurrency = group_size, 1
    for group in fixed_groups(len(requests), batch_size):
        if all(i in hits for i in group):
            for i in group:
                in_order.put(i, hits[i])
        else:
            to_send.append(group)
    window = max(1, max_concurrency, getattr(backend, "parallelism", 1))
    if adaptive is None:
        adaptive = bool(getattr(backend, "adaptive_concurrency", False))
    sender = _Sender(backend, retry or RetryPolicy(), stats,
                     shared_limiter(backend, window) if adaptive else None, outage)

    yield from in_order.drain()
    stopped: str | None = None
    gave_up = False
    pool = ThreadPoolExecutor(max_workers=window)
    pending: dict[Future, list[int]] = {}
    try:
        while to_send or pending:
            while to_send and len(pending) < window and stopped is None:
                stopped = budget.exhausted() if budget is not None else None
                if stopped is None and outage.over():
                    gave_up = True
                    break
                if stopped is None:
                    group = to_send.popleft()
                    pending[pool.submit(sender.send, [requests[i] for i in group],
                                        group[0])] = group
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                group = pending.pop(future)
                for i, completion in zip(group, future.result()):
                    if cache is not None:
                        cache.put(keys[i], completion)
                    if budget is not None:
                        budget.spend(completion.prompt_tokens, completion.completion_tokens)
                    in_order.put(i, completion)
            yield from in_order.drain()
    except GeneratorExit:  # the stage stopped reading: the backend is free again after
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    except BaseException:
        # Ctrl-C, SIGTERM, an error: stop now, without waiting for the requests in flight
        # (their answers would be lost anyway; the cache holds every one received)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    if stopped is not None:
        raise BudgetExhausted(stopped)
    if gave_up and to_send:
        unsent = sum(len(group) for group in to_send)
        raise ServerUnavailable(
            f"the model server failed every attempt for {outage.give_up_after:g} s "
            f"(--give-up-after); {unsent} requests not sent; last error: "
            f"{outage.last_error}")
