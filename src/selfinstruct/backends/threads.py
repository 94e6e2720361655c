"""How many threads the embedded model should use: the cores that are actually free.

llama.cpp's threads meet at a barrier after every operation of every step, so one thread
that loses its core to another process holds all the others up. On 2 cores with one busy
process beside it, a 2-thread run goes 2.5x slower, a 1-thread run only 1.35x. So the
embedded backend counts the cores another process keeps busy and uses the rest:

- usable cores: those this process may run on (``os.sched_getaffinity``);
- busy by others: the busy time of those cores in ``/proc/stat`` over a window, minus this
  process's own CPU time over the same window (``/proc/self/stat``);
- threads: the usable cores less the busy ones, a core counting as free while others use
  less than ``tolerance`` of it; at least 1.

:class:`ThreadPolicy` measures once when created and again at most every ``recheck_s``
seconds, over the window since its last look (no waiting). The backend asks it between
requests and between decode steps and applies a change with ``llama_set_n_threads``.
The thread count does not change a result: llama.cpp's CPU kernels split each operation's
output rows between threads, not its sums, so 1 and 2 threads give the same logits to the
bit (checked with SmolLM2 in ``tests/backends/test_threads.py``), and adapting the count
keeps the backend deterministic.

Where ``/proc`` cannot be read (not Linux, a sandbox), the policy uses every usable core,
as llama.cpp would. An explicit thread count (``--threads N``) bypasses all of this.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# A core counts as free while other processes use less than this share of it: a little
# background noise (an editor, a shell) should not halve the thread count.
DEFAULT_TOLERANCE = 0.25
DEFAULT_RECHECK_S = 2.0
# The first measurement waits this long; later ones use the time since the last.
FIRST_WINDOW_S = 0.2


def usable_cores() -> set[int]:
    """The CPUs this process may run on (its affinity mask), or all of them."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return set(range(os.cpu_count() or 1))


@dataclass(frozen=True)
class CpuSample:
    """CPU time at one moment, in clock ticks: ``busy`` and ``total`` summed over the
    usable cores (from ``/proc/stat``), ``own`` for this process (user + system)."""

    busy: int
    total: int
    own: int


def parse_proc_stat(text: str, cores: Iterable[int]) -> tuple[int, int]:
    """(busy, total) ticks of the given cores from the text of ``/proc/stat``.

    The fields are user nice system idle iowait irq softirq steal guest guest_nice; guest
    time is already counted in user and nice, and idle and iowait are the idle ones.
    """
    wanted = {f"cpu{c}" for c in cores}
    busy = total = 0
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if name not in wanted:
            continue
        ticks = [int(v) for v in rest.split()[:8]]
        ticks += [0] * (8 - len(ticks))
        total += sum(ticks)
        busy += sum(ticks) - ticks[3] - ticks[4]
    return busy, total


def parse_self_stat(text: str) -> int:
    """This process's user + system ticks from the text of ``/proc/self/stat`` (fields
    14 and 15; the command name in parentheses may contain spaces)."""
    fields = text.rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def read_sample(cores: Iterable[int]) -> CpuSample | None:
    """The current :class:`CpuSample`, or None where ``/proc`` cannot be read."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            busy, total = parse_proc_stat(f.read(), cores)
        with open("/proc/self/stat", encoding="utf-8", errors="replace") as f:
            own = parse_self_stat(f.read())
    except (OSError, ValueError, IndexError):
        return None
    return CpuSample(busy, total, own) if total > 0 else None


def busy_by_others(before: CpuSample, after: CpuSample, n_cores: int) -> float | None:
    """How many of ``n_cores`` cores other processes kept busy between two samples, on
    average; None when the window is too short to tell (under one tick per core)."""
    elapsed = after.total - before.total
    if elapsed < n_cores:
        return None
    others = (after.busy - before.busy) - (after.own - before.own)
    return min(max(others / (elapsed / n_cores), 0.0), float(n_cores))


def choose_threads(n_cores: int, others: float, tolerance: float = DEFAULT_TOLERANCE) -> int:
    """The threads to use on ``n_cores`` usable cores when others keep ``others`` of them
    busy: the free cores, rounded down unless others use under ``tolerance`` of a core;
    at least one."""
    free = n_cores - others + tolerance
    return max(1, min(n_cores, math.floor(free)))


class ThreadPolicy:
    """The thread count of one embedded model: fixed when ``fixed`` is given (never
    re-checked), else adapted to the free cores, re-measured at most every ``recheck_s``
    seconds when :meth:`refresh` is called."""

    def __init__(self, fixed: int | None = None, *, recheck_s: float = DEFAULT_RECHECK_S,
                 tolerance: float = DEFAULT_TOLERANCE,
                 sample: Callable[[], CpuSample | None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        if fixed is not None and fixed < 1:
            raise ValueError("the thread count must be at least 1")
        self.fixed = fixed
        self.recheck_s = recheck_s
        self.tolerance = tolerance
        self.cores = usable_cores()
        self._sample = sample or (lambda: read_sample(self.cores))
        self._clock = clock
        self._last: CpuSample | None = None
        self._checked = 0.0
        self.threads = fixed or self._first()

    @property
    def adaptive(self) -> bool:
        return self.fixed is None

    def _first(self) -> int:
        """The first measurement, over a short wait (there is no earlier sample)."""
        self._last = self._sample()
        self._checked = self._clock()
        if self._last is None:
            return len(self.cores)
        time.sleep(FIRST_WINDOW_S)
        return self._measure() or len(self.cores)

    def _measure(self) -> int | None:
        """Threads from the window since the last sample; None if it cannot tell."""
        now = self._sample()
        if now is None or self._last is None:
            return None
        others = busy_by_others(self._last, now, len(self.cores))
        if others is None:
            return None
        self._last = now
        self._checked = self._clock()
        return choose_threads(len(self.cores), others, self.tolerance)

    def refresh(self) -> int:
        """The thread count to use now: re-measured if adaptive and ``recheck_s`` has
        passed since the last look, else the current one."""
        if self.fixed is not None or self._clock() - self._checked < self.recheck_s:
            return self.threads
        self._checked = self._clock()  # an unreadable /proc is not retried at every step
        self.threads = self._measure() or self.threads
        return self.threads
