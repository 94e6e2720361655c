"""The request loop (backends/requests.py) with its cache, retries and budget, on the
package's fake backend built from a plain function (pure logic only)."""

import random
import time

from selfinstruct.backends.base import (
    BackendError,
    Completion,
    Request,
    Sampling,
    TransientBackendError,
)
from selfinstruct.backends.cache import ResponseCache
from selfinstruct.backends.fake import FakeBackend
from selfinstruct.backends.requests import UsageStats, run_requests
from selfinstruct.backends.retry import RetryPolicy, call_with_retry


def echo(request):
    time.sleep(random.random() / 100)  # arrive out of order
    return Completion(text=request.prompt.upper(), finish_reason="stop", completion_tokens=1)


def test_results_come_back_in_request_order_under_concurrency():
    requests = [Request(f"p{i}") for i in range(40)]
    out = list(run_requests(FakeBackend(echo), requests, max_concurrency=8))
    assert [i for i, _ in out] == list(range(40))
    assert [c.text for _, c in out] == [f"P{i}" for i in range(40)]


def test_cache_answers_repeats_and_keys_on_sampling(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    backend = FakeBackend(echo)
    requests = [Request("a", Sampling(seed=1)), Request("b", Sampling(seed=1))]
    list(run_requests(backend, requests, cache=cache))
    stats = UsageStats()
    again = list(run_requests(backend, requests + [Request("a", Sampling(seed=2))],
                              cache=cache, stats=stats))
    assert len(backend.requests) == 3  # only the new seed was sent
    assert [c.cached for _, c in again] == [True, True, False]
    assert stats.cached == 2


def test_transient_errors_are_retried_then_recorded():
    attempts = {"n": 0}

    def flaky(request):
        attempts["n"] += 1
        raise TransientBackendError("HTTP 503", retry_after=0)

    policy = RetryPolicy(max_attempts=3, base_delay=0, max_delay=0)
    stats = UsageStats()
    [(_, completion)] = list(run_requests(FakeBackend(flaky), [Request("x")],
                                          retry=policy, stats=stats))
    assert attempts["n"] == 3 and stats.retry.retries == 2
    assert completion.finish_reason == "error" and "HTTP 503" in completion.error
    assert stats.failed == 1


def test_permanent_error_fails_at_once_and_is_not_cached(tmp_path):
    def broken(request):
        raise BackendError("HTTP 400: bad request")

    cache = ResponseCache(tmp_path / "c.sqlite")
    backend = FakeBackend(broken)
    [(_, completion)] = list(run_requests(backend, [Request("x")], cache=cache))
    assert not completion.ok and len(backend.requests) == 1 and len(cache) == 0


def test_retry_after_is_honoured():
    waits = []
    calls = iter([TransientBackendError("429", retry_after=7.0), None])

    def fn():
        exc = next(calls)
        if exc:
            raise exc
        return "ok"

    assert call_with_retry(fn, RetryPolicy(base_delay=0.1), sleep=waits.append) == "ok"
    assert waits == [7.0]


def test_backoff_grows_exponentially():
    policy = RetryPolicy(base_delay=1, max_delay=100)
    rng = random.Random(0)
    delays = [policy.delay(a, None, rng) for a in range(1, 6)]
    assert all(0.5 * 2 ** (a - 1) <= d <= 2 ** (a - 1) for a, d in zip(range(1, 6), delays))


def test_budget_stops_sending_and_raises_after_in_flight_work():
    import pytest

    from selfinstruct.backends.budget import Budget, BudgetExhausted

    def costly(request):
        return Completion(text="x", finish_reason="stop", prompt_tokens=60, completion_tokens=40)

    backend = FakeBackend(costly)
    budget = Budget(max_tokens_total=250)
    seen = []
    with pytest.raises(BudgetExhausted, match="--max-tokens-total 250 reached"):
        for i, _ in run_requests(backend, [Request(f"p{i}") for i in range(10)], budget=budget):
            seen.append(i)
    assert seen == [0, 1, 2] and len(backend.requests) == 3 and budget.tokens == 300


def test_budget_cost_and_no_stop_when_work_is_done():
    from selfinstruct.backends.budget import Budget

    budget = Budget(max_cost=0.001, input_price=2.0, output_price=8.0)
    budget.spend(100, 100)
    assert abs(budget.cost - 0.001) < 1e-12 and "--max-cost" in budget.exhausted()
    backend = FakeBackend(echo)
    loose = Budget(max_tokens_total=1)
    out = list(run_requests(backend, [Request("only")], budget=loose))
    assert len(out) == 1  # the last request finished the work: no stop to report


def test_a_backend_failing_past_give_up_after_stops_the_loop_without_retrying_the_rest():
    import pytest

    from selfinstruct.backends.requests import Outage
    from selfinstruct.errors import ServerUnavailable

    calls = {"n": 0}

    def dead(request):
        calls["n"] += 1
        time.sleep(0.01)
        raise TransientBackendError("APIConnectionError: Connection error.")

    clock = {"t": 0.0}

    def tick():  # 1 s of "time" per look at the clock: the outage is over after a few
        clock["t"] += 1.0
        return clock["t"]

    stats = UsageStats()
    policy = RetryPolicy(max_attempts=6, base_delay=0, max_delay=0)
    seen = []
    with pytest.raises(ServerUnavailable, match="give-up-after.*requests not sent"):
        for index, completion in run_requests(FakeBackend(dead), [Request(f"p{i}") for i in
                                                                  range(100)],
                                              retry=policy, stats=stats,
                                              outage=Outage(5, clock=tick)):
            seen.append((index, completion.ok))
    assert calls["n"] < 10  # not 100 requests x 6 attempts
    assert seen and all(not ok for _, ok in seen)  # what was sent is yielded, as failed
    assert stats.failed == len(seen) and "Connection error" in stats.last_error


def test_one_answer_resets_the_outage_clock():
    from selfinstruct.backends.requests import Outage

    clock = {"t": 0.0}
    outage = Outage(10, clock=lambda: clock["t"])
    outage.failed(TransientBackendError("x"))
    clock["t"] = 9.0
    assert not outage.over()
    outage.answered()
    clock["t"] = 30.0
    assert not outage.over()
    outage.failed(TransientBackendError("y"))
    clock["t"] = 40.0
    assert outage.over() and outage.last_error.endswith("y")
    assert not Outage(0).over()  # 0: never give up


def test_the_wait_between_attempts_ends_when_the_outage_does():
    import pytest

    waited = []
    state = {"over": False}

    def fail():
        raise TransientBackendError("down")

    def sleep(seconds):
        waited.append(seconds)
        state["over"] = len(waited) >= 3  # the give-up time passes during the wait

    policy = RetryPolicy(max_attempts=6, base_delay=60, max_delay=60)
    with pytest.raises(TransientBackendError):
        call_with_retry(fail, policy, sleep=sleep, give_up=lambda: state["over"])
    assert len(waited) == 3 and sum(waited) < 60  # not the whole backoff
