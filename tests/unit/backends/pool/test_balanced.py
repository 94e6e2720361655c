"""The least-outstanding picker and the pool around it (pure logic: fake members only here).

The real thing is tested in tests/integration/test_multi_endpoint.py (two llama.cpp
servers) and tests/integration/test_ray_executor.py (Ray actors)."""

import threading
import time

import pytest

from selfinstruct.backends.base import BackendError, Completion, Request, TransientBackendError
from selfinstruct.backends.pool.balanced import BalancedBackend, MemberState, pick_member
from selfinstruct.backends.requests import run_requests


def states(*outstanding, sent=None, cooling=None):
    sent = sent or [0] * len(outstanding)
    cooling = cooling or [0.0] * len(outstanding)
    return [MemberState(f"m{i}", outstanding=o, sent=s, cooling_until=c)
            for i, (o, s, c) in enumerate(zip(outstanding, sent, cooling))]


def test_picks_the_member_with_fewest_outstanding_requests():
    assert pick_member(states(3, 1, 2), now=0.0) == 1
    assert pick_member(states(0, 4, 0, 2), now=0.0) == 0


def test_ties_go_to_the_member_that_has_served_least_then_the_first():
    assert pick_member(states(1, 1, 1, sent=[9, 4, 4]), now=0.0) == 1
    assert pick_member(states(0, 0, sent=[5, 5]), now=0.0) == 0


def test_a_cooling_member_is_skipped_while_another_is_ready():
    # member 0 failed fast, so it has nothing outstanding; it must not attract the retry
    assert pick_member(states(0, 5, cooling=[10.0, 0.0]), now=1.0) == 1
    assert pick_member(states(0, 5, cooling=[10.0, 0.0]), now=10.0) == 0  # cooled down


def test_when_all_are_cooling_the_first_to_recover_is_picked():
    assert pick_member(states(0, 0, 0, cooling=[9.0, 4.0, 6.0]), now=1.0) == 1


def test_no_member_is_an_error():
    with pytest.raises(ValueError):
        pick_member([], now=0.0)
    with pytest.raises(ValueError):
        BalancedBackend([])


# A class, not the package's FakeBackend: a member blocks on a gate, fails on demand, and
# the pool compares members' identities.
class Member:
    """A fake member that answers with its own name and can block or fail on demand."""

    def __init__(self, name, identity=None):
        self.name = name
        self.identity = identity or {"backend": "fake", "model": "m"}
        self.gate = threading.Event()
        self.gate.set()
        self.fail_with: Exception | None = None

    def complete(self, requests):
        self.gate.wait(5)
        if self.fail_with is not None:
            raise self.fail_with
        return [Completion(text=f"{self.name}:{r.prompt}", finish_reason="stop")
                for r in requests]


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_an_idle_pool_takes_turns_and_counts_requests_per_member():
    a, b = Member("a"), Member("b")
    pool = BalancedBackend([a, b], labels=["a", "b"])
    served = [pool.complete([Request(f"p{i}")])[0].text.split(":")[0] for i in range(4)]
    assert served == ["a", "b", "a", "b"]
    pool.complete([Request("x"), Request("y"), Request("z")])  # a batch counts as 3
    assert pool.member_usage() == [
        {"member": "a", "requests": 5, "failed_calls": 0},
        {"member": "b", "requests": 2, "failed_calls": 0},
    ]


def test_a_busy_member_gets_no_new_call_while_another_is_free():
    a, b = Member("a"), Member("b")
    pool = BalancedBackend([a, b])
    a.gate.clear()  # a holds its first call
    held = threading.Thread(target=pool.complete, args=([Request("slow")],))
    held.start()
    while pool.states[0].outstanding == 0:
        time.sleep(0.001)
    texts = [pool.complete([Request(f"q{i}")])[0].text for i in range(3)]
    assert texts == ["b:q0", "b:q1", "b:q2"]
    a.gate.set()
    held.join()
    assert [s.outstanding for s in pool.states] == [0, 0]


def test_a_transient_failure_cools_the_member_down_and_a_permanent_one_does_not():
    clock = Clock()
    a, b = Member("a"), Member("b")
    pool = BalancedBackend([a, b], clock=clock)
    a.fail_with = TransientBackendError("connection refused")
    with pytest.raises(TransientBackendError):
        pool.complete([Request("p")])
    assert [pool.complete([Request(f"r{i}")])[0].text for i in range(2)] == ["b:r0", "b:r1"]
    clock.now = 100.0  # cooled down; a is back, and its next failure cools it for longer
    a.fail_with = None
    assert pool.complete([Request("s")])[0].text == "a:s"
    a.fail_with = BackendError("HTTP 400")
    with pytest.raises(BackendError):
        pool.complete([Request("bad")])
    assert pool.states[0].cooling_until == 0.0
    assert pool.member_usage()[0]["failed_calls"] == 1


def test_identity_is_the_members_shared_one_or_the_pools_own():
    assert BalancedBackend([Member("a"), Member("b")]).identity == {"backend": "fake",
                                                                     "model": "m"}
    with pytest.raises(ValueError):
        BalancedBackend([Member("a"), Member("b", {"backend": "fake", "model": "other"})])
    pool = BalancedBackend([Member("a", {"u": 1}), Member("b", {"u": 2})],
                           identity={"u": "1,2"})
    assert pool.identity == {"u": "1,2"}


def test_the_executor_keeps_one_call_in_flight_per_member_even_at_concurrency_one():
    a, b = Member("a"), Member("b")
    pool = BalancedBackend([a, b])
    a.gate.clear()
    release = threading.Timer(0.5, a.gate.set)  # b must not wait for a
    release.start()
    out = list(run_requests(pool, [Request(f"p{i}") for i in range(6)], max_concurrency=1))
    release.join()
    assert [i for i, _ in out] == list(range(6))  # still in request order
    assert out[0][1].text == "a:p0"
    assert [c.text.split(":")[0] for _, c in out[1:]].count("b") >= 4
