"""The AIMD limiter's logic (a fake clock, no threads) and its use by the executor."""

import threading
import time

import pytest

from selfinstruct.backends.base import (
    BackendError,
    Completion,
    Request,
    TransientBackendError,
)
from selfinstruct.backends.limiter import OK, OTHER, THROTTLED, AIMDLimiter, shared_limiter
from selfinstruct.backends.requests import run_requests
from selfinstruct.backends.retry import RetryPolicy


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def fill(limiter):
    """Acquire every slot there is now; returns the tickets."""
    tickets = []
    while (ticket := limiter.try_acquire()) is not None:
        tickets.append(ticket)
    return tickets


def test_slow_start_grows_by_one_per_success_up_to_the_maximum():
    limiter = AIMDLimiter(10, clock=Clock())
    assert limiter.allowed == 4  # starts low: a server that throttles sees a small burst
    assert len(fill(limiter)) == 4
    for _ in range(4):
        limiter.release(0, OK)
    assert limiter.allowed == 8  # doubled in one round trip
    for _ in range(20):
        limiter.release(limiter.acquire(), OK)
    assert limiter.allowed == 10 and limiter.limit == 10.0  # never above max_concurrency


def test_a_throttle_halves_the_limit_once_per_window():
    limiter = AIMDLimiter(32, initial=16, clock=Clock())
    tickets = fill(limiter)
    assert len(tickets) == 16
    for ticket in tickets[:10]:  # a burst of 429s to requests of the same window
        limiter.release(ticket, THROTTLED)
    assert limiter.limit == 8.0  # cut once, not ten times
    assert limiter.stats.throttles == 10 and limiter.stats.decreases == 1
    newer = limiter.try_acquire()  # sent after the cut: a new window
    limiter.release(newer, THROTTLED)
    assert limiter.limit == 4.0 and limiter.stats.decreases == 2


def test_after_a_cut_the_increase_is_additive():
    limiter = AIMDLimiter(32, initial=16, clock=Clock())
    limiter.release(limiter.try_acquire(), THROTTLED)
    assert limiter.limit == 8.0
    for _ in range(8):  # one window's worth of successes
        limiter.release(limiter.try_acquire(), OK)
    assert 8.9 < limiter.limit < 9.0  # about +1 per round trip, not doubled
    assert limiter.allowed == 8


def test_the_limit_never_goes_below_the_minimum():
    limiter = AIMDLimiter(8, min_limit=2, initial=2, clock=Clock())
    for _ in range(5):
        limiter.release(limiter.try_acquire(), THROTTLED)
    assert limiter.limit == 2.0 and limiter.allowed == 2


def test_retry_after_pauses_every_new_request_once_the_limit_is_at_its_floor():
    clock = Clock()
    limiter = AIMDLimiter(8, clock=clock)
    limiter.release(limiter.try_acquire(), THROTTLED, retry_after=2.0)
    assert limiter.limit == 2.0
    assert limiter.try_acquire() is not None  # merely full: the cut is the answer
    limiter.release(0, OTHER)
    for _ in range(2):  # refused even at 2, then at 1 at a time: out of quota
        limiter.release(limiter.try_acquire(), THROTTLED, retry_after=2.0)
    assert limiter.limit == 1.0
    assert limiter.try_acquire() is None  # slots are free, but the server asked to wait
    clock.now += 1.9
    assert limiter.try_acquire() is None
    clock.now += 0.2
    assert limiter.try_acquire() is not None
    assert limiter.stats.paused_seconds == pytest.approx(2.0)


def test_other_failures_neither_raise_nor_cut_the_limit():
    limiter = AIMDLimiter(8, clock=Clock())
    before = limiter.limit
    limiter.release(limiter.try_acquire(), OTHER)
    assert limiter.limit == before and limiter.in_flight == 0


def test_call_classifies_the_outcome():
    limiter = AIMDLimiter(8, initial=4, clock=Clock())
    assert limiter.call(lambda: "done") == "done"
    assert limiter.limit == 5.0

    def raise_(exc):
        def fn():
            raise exc
        return fn

    with pytest.raises(TransientBackendError):
        limiter.call(raise_(TransientBackendError("HTTP 500")))  # not throttling
    assert limiter.limit == 5.0
    with pytest.raises(BackendError):
        limiter.call(raise_(BackendError("HTTP 400")))
    assert limiter.limit == 5.0
    with pytest.raises(TransientBackendError):
        limiter.call(raise_(TransientBackendError("HTTP 429", throttled=True)))
    assert limiter.limit == 2.5 and limiter.in_flight == 0


def test_set_max_lowers_the_bound():
    limiter = AIMDLimiter(16, initial=16, clock=Clock())
    limiter.set_max(4)
    assert limiter.allowed == 4 and limiter.limit == 4.0


def test_shared_limiter_is_one_per_backend():
    class B:
        pass

    a, b = B(), B()
    assert shared_limiter(a, 8) is shared_limiter(a, 8)
    assert shared_limiter(a, 8) is not shared_limiter(b, 8)
    assert shared_limiter(a, 2).max_limit == 2


# A class, not the package's FakeBackend: it counts requests in flight across threads.
class ThrottlingBackend:
    """Answers after a short sleep; 429 when more than ``capacity`` requests are in flight."""

    adaptive_concurrency = True

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.in_flight = 0
        self.peak = 0
        self.throttled = 0
        self.lock = threading.Lock()

    @property
    def identity(self):
        return {"backend": "throttling"}

    def complete(self, requests):
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            over = self.in_flight > self.capacity
            if over:
                self.throttled += 1
        try:
            if over:
                raise TransientBackendError("HTTP 429", retry_after=0.01, throttled=True)
            time.sleep(0.005)
            return [Completion(text=r.prompt.upper(), finish_reason="stop") for r in requests]
        finally:
            with self.lock:
                self.in_flight -= 1


def _run(backend, adaptive):
    requests = [Request(f"p{i}") for i in range(120)]
    policy = RetryPolicy(max_attempts=50, base_delay=0.002, max_delay=0.02)
    return list(run_requests(backend, requests, max_concurrency=16, retry=policy,
                             adaptive=adaptive))


def test_the_executor_backs_off_a_throttling_server():
    fixed, adaptive = ThrottlingBackend(3), ThrottlingBackend(3)
    out_fixed = _run(fixed, adaptive=False)
    out = _run(adaptive, adaptive=None)  # None: the backend's adaptive_concurrency
    assert [c.text for _, c in out] == [c.text for _, c in out_fixed] == \
        [f"P{i}" for i in range(120)]  # same results, in request order
    assert all(c.ok for _, c in out)
    assert adaptive.peak <= 16
    assert adaptive.throttled < fixed.throttled
    limiter = shared_limiter(adaptive, 16)
    assert limiter.stats.decreases >= 1 and limiter.allowed < 16


def test_backends_without_the_flag_keep_a_fixed_concurrency():
    backend = ThrottlingBackend(100)
    backend.adaptive_concurrency = False
    requests = [Request(f"p{i}") for i in range(40)]
    list(run_requests(backend, requests, max_concurrency=8))
    assert backend.peak > 4  # no slow start: all 8 go out at once


def test_openai_backend_marks_429_503_and_timeouts_as_throttling():
    import httpx
    import openai

    from selfinstruct.backends.openai_compat import OpenAICompatBackend

    backend = OpenAICompatBackend("m", base_url="http://127.0.0.1:9/v1")
    assert backend.adaptive_concurrency

    def status_error(code, headers=None):
        request = httpx.Request("POST", "http://127.0.0.1:9/v1/completions")
        response = httpx.Response(code, headers=headers or {}, request=request)
        return openai.APIStatusError("x", response=response, body=None)

    e429 = backend._status_error(status_error(429, {"retry-after": "3"}))
    assert e429.throttled and e429.retry_after == 3.0
    assert backend._status_error(status_error(503)).throttled
    assert not backend._status_error(status_error(500)).throttled
    assert not isinstance(backend._status_error(status_error(400)), TransientBackendError)


def test_openai_backend_marks_a_timeout_as_throttling_and_a_reset_not():
    from types import SimpleNamespace

    import httpx
    import openai

    from selfinstruct.backends.openai_compat import OpenAICompatBackend

    backend = OpenAICompatBackend("m", base_url="http://127.0.0.1:9/v1")
    request = httpx.Request("POST", "http://127.0.0.1:9/v1/completions")
    for exc, throttled in ((openai.APITimeoutError(request=request), True),
                           (openai.APIConnectionError(request=request), False)):
        def create(exc=exc, **_):
            raise exc

        backend._client = SimpleNamespace(completions=SimpleNamespace(create=create))
        with pytest.raises(TransientBackendError) as info:
            backend.complete([Request("p")])
        assert info.value.throttled is throttled
