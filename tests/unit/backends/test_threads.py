"""The thread policy of the embedded backend: arithmetic on sample /proc numbers, the
re-check schedule, and (with the real SmolLM2) that a thread count never changes a result."""

from __future__ import annotations

import numpy as np
import pytest

from selfinstruct.backends import threads
from selfinstruct.backends.threads import (
    CpuSample,
    ThreadPolicy,
    busy_by_others,
    choose_threads,
    parse_proc_stat,
    parse_self_stat,
    read_sample,
)

PROC_STAT = """\
cpu  93615 0 10327 49987 765 0 233 1194 0 0
cpu0 39164 0 3788 34396 110 0 21 587 0 0
cpu1 54451 0 6538 15591 654 0 212 607 0 0
intr 553422 0 0 0
"""


def test_proc_stat_sums_only_the_usable_cores():
    busy, total = parse_proc_stat(PROC_STAT, {1})
    assert total == 54451 + 6538 + 15591 + 654 + 212 + 607
    assert busy == total - 15591 - 654  # idle and iowait are not busy
    both = parse_proc_stat(PROC_STAT, {0, 1})
    assert both[1] == sum(parse_proc_stat(PROC_STAT, {c})[1] for c in (0, 1))


def test_self_stat_survives_spaces_in_the_command_name():
    text = "4242 (my (odd) cmd) R 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0 1"
    assert parse_self_stat(text) == 150 + 25


@pytest.mark.parametrize(("busy", "own", "expected"), [
    (0, 0, 0.0),        # idle machine
    (200, 200, 0.0),    # only this process worked, on both cores
    (100, 0, 1.0),      # another process held one core
    (300, 100, 2.0),    # more than the cores: capped
    (150, 100, 0.5),    # others used half a core
])
def test_busy_by_others_over_one_second_on_two_cores(busy, own, expected):
    before = CpuSample(busy=1000, total=5000, own=10)
    after = CpuSample(busy=1000 + busy, total=5200, own=10 + own)  # 100 ticks a core
    assert busy_by_others(before, after, n_cores=2) == pytest.approx(min(expected, 2.0))


def test_a_window_under_one_tick_per_core_tells_nothing():
    sample = CpuSample(busy=10, total=100, own=0)
    assert busy_by_others(sample, CpuSample(11, 101, 0), n_cores=2) is None


@pytest.mark.parametrize(("cores", "others", "expected"), [
    (2, 0.0, 2), (2, 0.2, 2), (2, 0.3, 1), (2, 1.0, 1), (2, 2.0, 1),
    (8, 0.0, 8), (8, 2.9, 5), (8, 3.0, 5), (8, 8.0, 1), (1, 0.9, 1),
])
def test_threads_are_the_free_cores_with_some_tolerance(cores, others, expected):
    assert choose_threads(cores, others) == expected


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _samples(*others_per_window: float, n_cores: int = 2):
    """Samples 100 ticks per core apart, others busy as given in each window."""
    state = {"busy": 0, "total": 0}
    windows = iter((0.0, *others_per_window))

    def sample() -> CpuSample:
        others = next(windows)
        state["busy"] += round(others * 100)
        state["total"] += 100 * n_cores
        return CpuSample(state["busy"], state["total"], 0)
    return sample


def test_the_policy_follows_the_load_no_more_often_than_asked(monkeypatch):
    monkeypatch.setattr(threads, "FIRST_WINDOW_S", 0.0)
    monkeypatch.setattr(threads, "usable_cores", lambda: {0, 1})
    clock = _Clock()
    policy = ThreadPolicy(sample=_samples(0.0, 1.0, 0.0), clock=clock, recheck_s=2.0)
    assert policy.adaptive and policy.threads == 2
    clock.now += 1.0
    assert policy.refresh() == 2  # too soon: no new sample taken
    clock.now += 1.5
    assert policy.refresh() == 1  # another process took a core
    clock.now += 2.5
    assert policy.refresh() == 2  # and gave it back


def test_an_explicit_count_is_never_rechecked():
    def fail() -> CpuSample:
        raise AssertionError("a fixed policy must not sample")
    policy = ThreadPolicy(3, sample=fail)
    assert not policy.adaptive
    assert policy.threads == policy.refresh() == 3


def test_without_proc_every_usable_core_is_used(monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: {0, 1, 2})
    policy = ThreadPolicy(sample=lambda: None, clock=_Clock())
    assert policy.threads == 3 and policy.refresh() == 3


def test_this_machine_can_be_sampled():
    sample = read_sample(threads.usable_cores())
    assert sample is not None and sample.total > 0 and sample.own >= 0


@pytest.mark.slow
def test_the_thread_count_never_changes_a_result():
    """Adaptive threads must keep the backend deterministic: 1 and 2 threads give the
    same logits, to the bit, and so the same completion."""
    import llama_cpp

    from selfinstruct.backends.base import Request, Sampling
    from selfinstruct.backends.bundled import smollm2_path
    from selfinstruct.backends.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend(smollm2_path(), n_ctx=512, n_threads=1)
    request = Request("List three colours of the rainbow:", Sampling(max_tokens=12))
    outputs, logits = [], []
    for n in (1, 2):
        llama_cpp.llama_set_n_threads(backend.llm._ctx.ctx, n, n)
        outputs.append(backend.complete([request])[0].text)
        logits.append(backend._last_logits(np).copy())
    assert outputs[0] == outputs[1]
    assert np.array_equal(logits[0], logits[1])


@pytest.mark.slow
def test_the_backend_adapts_unless_told_a_count():
    from selfinstruct.backends.bundled import smollm2_path
    from selfinstruct.backends.llamacpp import LlamaCppBackend

    fixed = LlamaCppBackend(smollm2_path(), n_ctx=256, n_threads=1)
    assert not fixed.threads.adaptive and fixed.llm.n_threads == 1
    adaptive = LlamaCppBackend(smollm2_path(), n_ctx=256)
    assert adaptive.threads.adaptive
    assert 1 <= adaptive.threads.threads <= len(threads.usable_cores())
