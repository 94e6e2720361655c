"""Several copies of one model behind the Backend protocol, balanced on the client side.

A :class:`BalancedBackend` holds members that serve the same model (a list of vLLM
servers, or Ray actors each holding the embedded model) and sends each ``complete`` call
to the member with the fewest requests outstanding. That rule needs no knowledge of how
fast each member is: a slow or busy member keeps its requests longer and so gets fewer
new ones, which is what round robin cannot do.

One exception to the rule: a member whose last call failed with a transient error is
cooling down for a while, and is only picked when every member is. Without it, a server
that refuses connections (it fails fast, so it never has anything outstanding) would
attract every retry.

Caching, retries and ordering stay in :func:`selfinstruct.backends.requests.run_requests`, which
treats the pool as one backend: its ``identity`` is the members' shared model identity,
so a cache key does not depend on which member answered. ``parallelism`` tells the
executor to keep at least one request in flight per member.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from selfinstruct.backends.base import Backend, Completion, Request, TransientBackendError
from selfinstruct.errors import ServerUnavailable

COOLDOWN_SECONDS = 2.0
MAX_COOLDOWN_SECONDS = 60.0


@dataclass
class MemberState:
    """What the picker knows about one member. Counts are requests, not calls."""

    label: str
    outstanding: int = 0
    sent: int = 0
    failed_calls: int = 0
    consecutive_failures: int = 0
    cooling_until: float = 0.0

    def as_dict(self) -> dict:
        return {"member": self.label, "requests": self.sent, "failed_calls": self.failed_calls}


def pick_member(states: Sequence[MemberState], now: float) -> int:
    """The index of the member to send the next call to.

    Members not cooling down come first; among them the fewest outstanding requests,
    then the fewest sent so far (so that an idle pool still takes turns), then the lowest
    index. When all are cooling down, the one that recovers first."""
    if not states:
        raise ValueError("a balanced backend needs at least one member")
    ready = [i for i, s in enumerate(states) if s.cooling_until <= now]
    if not ready:
        return min(range(len(states)), key=lambda i: (states[i].cooling_until, i))
    return min(ready, key=lambda i: (states[i].outstanding, states[i].sent, i))


class BalancedBackend:
    def __init__(self, members: Sequence[Backend], labels: Sequence[str] | None = None,
                 identity: dict | None = None, clock: Callable[[], float] = time.monotonic):
        if not members:
            raise ValueError("a balanced backend needs at least one member")
        labels = list(labels) if labels is not None else [f"member-{i}" for i in
                                                          range(len(members))]
        if len(labels) != len(members):
            raise ValueError("one label per member")
        if identity is None:
            identities = [m.identity for m in members]
            if any(other != identities[0] for other in identities[1:]):
                raise ValueError("the members of a balanced backend must serve the same model "
                                 "(or the pool must be given its own identity)")
            identity = identities[0]
        self.members = list(members)
        self.states = [MemberState(label) for label in labels]
        self._identity = dict(identity)
        self._clock = clock
        self._lock = threading.Lock()

    @property
    def identity(self) -> dict:
        return self._identity

    @property
    def parallelism(self) -> int:
        """How many calls the pool can serve at once: one per member."""
        return len(self.members)

    @property
    def scores_whole_texts(self) -> bool:
        """Whether every member scores whole texts, since any member may answer a scoring
        request. A server member asks its server once
        (:meth:`~selfinstruct.backends.openai_compat.OpenAICompatBackend.
        probe_whole_text_scoring`); one that cannot be reached is left out of the answer
        (its scoring requests, should it come back without echo, get no scores), unless
        no member can be."""
        answers: list[bool] = []
        unreachable: ServerUnavailable | None = None
        for member in self.members:
            try:
                answers.append(bool(getattr(member, "scores_whole_texts", False)))
            except ServerUnavailable as exc:
                unreachable = exc
        if not answers and unreachable is not None:
            raise unreachable
        return all(answers)

    def complete(self, requests: Sequence[Request]) -> list[Completion]:
        with self._lock:
            index = pick_member(self.states, self._clock())
            state = self.states[index]
            state.outstanding += len(requests)
            state.sent += len(requests)
        failed = False
        try:
            return self.members[index].complete(requests)
        except TransientBackendError:
            failed = True  # the member's health; a permanent error is the request's fault
            raise
        finally:
            self._settle(state, len(requests), failed)

    def _settle(self, state: MemberState, count: int, failed: bool) -> None:
        with self._lock:
            state.outstanding -= count
            if failed:
                state.failed_calls += 1
                state.consecutive_failures += 1
                pause = COOLDOWN_SECONDS * 2 ** (state.consecutive_failures - 1)
                state.cooling_until = self._clock() + min(MAX_COOLDOWN_SECONDS, pause)
            else:
                state.consecutive_failures = 0
                state.cooling_until = 0.0

    def member_usage(self) -> list[dict]:
        """Requests sent to each member (retries included), for the manifest."""
        with self._lock:
            return [s.as_dict() for s in self.states]

    def close(self) -> None:
        for member in self.members:
            close = getattr(member, "close", None)
            if close is not None:
                close()
