"""A backend made from a plain function, for tests of pure logic and for trying the
pipeline's wiring without a model.

``FakeBackend(answer)`` calls ``answer(request)`` for each request; it returns a
:class:`Completion`, or a string (a completion that stopped normally). The backend keeps
every request it was asked, in order, in ``requests``. It is thread-safe, so the request
loop may send it groups concurrently.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from selfinstruct.backends.base import Completion, Request

Answer = Callable[[Request], "Completion | str"]


class FakeBackend:
    def __init__(self, answer: Answer | str = "", *, name: str = "fake"):
        self.answer: Answer = answer if callable(answer) else (lambda _request: answer)
        self.name = name
        self.requests: list[Request] = []
        self._lock = threading.Lock()

    @property
    def identity(self) -> dict:
        return {"backend": "fake", "model": self.name}

    @property
    def prompts(self) -> list[str]:
        """The prompts asked so far, in order."""
        return [request.prompt for request in self.requests]

    def complete(self, requests: Sequence[Request]) -> list[Completion]:
        with self._lock:
            self.requests.extend(requests)
        return [self._one(request) for request in requests]

    def _one(self, request: Request) -> Completion:
        answer = self.answer(request)
        if isinstance(answer, Completion):
            return answer
        return Completion(text=answer, finish_reason="stop")
