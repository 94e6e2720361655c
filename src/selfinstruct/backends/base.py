"""The one protocol every language-model backend implements.

A backend turns a batch of :class:`Request` into the same number of :class:`Completion`,
in the same order. It does one thing: talk to a model. Caching, retries and concurrency
wrap this protocol once (see ``cache.py``, ``retry.py``, ``executor.py``); no backend
re-implements them.

Errors: a backend raises :class:`TransientBackendError` for failures worth retrying
(429, 5xx, timeouts, dropped connections) and :class:`BackendError` for the rest.
Neither message may contain an API key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol, runtime_checkable

from selfinstruct.errors import (  # re-exported: backends raise them from here
    BackendError,
    FatalBackendError,
    TransientBackendError,
)

__all__ = ["Backend", "BackendError", "Completion", "FatalBackendError", "Request",
           "Sampling", "TransientBackendError", "request_key", "scored"]


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters of one request. Every field takes part in the cache key."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    # A hint, never a change of result: the caller keeps only the first paragraph of the text
    # (``text.strip().split("\n\n")[0]``), so a backend may stop generating once that
    # paragraph is complete. A backend that ignores it returns more text with the same first
    # paragraph. The embedded backend honours it; servers cannot.
    first_paragraph_only: bool = False

    def as_dict(self) -> dict:
        data = asdict(self)
        data["stop"] = list(self.stop)
        if not self.first_paragraph_only:  # keeps the cache keys written before it existed
            del data["first_paragraph_only"]
        return data


@dataclass(frozen=True)
class Request:
    """One prompt to complete.

    ``prefix`` is an optional hint: a leading part of ``prompt`` that many requests share
    (a few-shot template). A backend that can keep a model state per prefix, like the
    embedded llama.cpp one, uses it to pay prefill only for the rest of the prompt.
    It never changes what a backend that ignores it returns.
    ``chat`` asks for the chat endpoint (a single user message) instead of raw completion.
    ``choices`` asks for scoring instead of generation: the log-probability of each choice
    as the continuation of ``prompt`` (e.g. ``(" Yes", " No")``), returned in
    :attr:`Completion.choice_logprobs`; the completion's text is the likeliest choice.
    ``whole`` (with ``choices``) asks for every token of each choice to be scored, not
    only its first: a backend that scores whole texts anyway (embedded, transformers)
    ignores it; the OpenAI-compatible one then asks the server to echo the text with its
    log-probabilities, and returns no scores from a server that cannot. Without it, a
    server scores a choice by its first token (right for one-token choices like
    ``" Yes"``).
    """

    prompt: str
    sampling: Sampling = field(default_factory=Sampling)
    prefix: str | None = None
    chat: bool = False
    choices: tuple[str, ...] = ()
    whole: bool = False

    def __post_init__(self) -> None:
        if self.prefix is not None and not self.prompt.startswith(self.prefix):
            raise ValueError("Request.prefix must be a prefix of Request.prompt")


@dataclass
class Completion:
    """What came back for one request.

    ``finish_reason`` is ``"stop"`` (a stop sequence or end of text), ``"length"``
    (hit max_tokens) or ``"error"`` (the request failed for good; ``error`` says why).
    """

    text: str
    finish_reason: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    cached: bool = False
    seconds: float = 0.0
    # for a scoring request (Request.choices): each choice's log-probability as the
    # continuation of the prompt; None where the backend cannot score
    choice_logprobs: dict[str, float] | None = None

    @property
    def ok(self) -> bool:
        return self.finish_reason != "error"

    @classmethod
    def failed(cls, reason: str) -> Completion:
        return cls(text="", finish_reason="error", error=reason)


@runtime_checkable
class Backend(Protocol):
    """A language model. ``identity`` names it for cache keys and the manifest."""

    @property
    def identity(self) -> dict: ...

    def complete(self, requests: Sequence[Request]) -> list[Completion]: ...


def scored(choice_logprobs: dict[str, float], prompt_tokens: int = 0,
           seconds: float = 0.0) -> Completion:
    """The completion of a scoring request: the likeliest choice as text."""
    best = max(choice_logprobs, key=lambda c: choice_logprobs[c])
    return Completion(text=best, finish_reason="stop", prompt_tokens=prompt_tokens,
                      choice_logprobs=dict(choice_logprobs), seconds=seconds)


def request_key(identity: dict, request: Request) -> str:
    """A stable hash of everything that determines a completion: backend, model, prompt,
    every sampling parameter, and the endpoint kind. Versioned so that a format change
    never serves a stale answer."""
    payload = {
        "v": 1,
        "backend": identity,
        "prompt": request.prompt,
        "sampling": request.sampling.as_dict(),
        "chat": request.chat,
        # The embedded backend evaluates a prompt in two parts when it has a prefix, which
        # can change the low bits of the logits; so the split point is part of the key.
        "prefix_len": len(request.prefix) if request.prefix else 0,
    }
    if request.choices:  # absent otherwise, so keys written before scoring existed stay valid
        payload["choices"] = list(request.choices)
    if request.whole:  # likewise: keys written before whole-text scoring stay valid
        payload["whole"] = True
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()
