"""Answers that every run of a model shares: the scores of the seed tasks.

The calibrated classification rule (the refined recipe's) first scores the labelled seed
tasks that the classification prompt does not show: 144 tasks under 10 prompts, 1,440
requests, about two minutes on SmolLM2 on two cores. Those requests are the same in every
run of a model with the same seeds and templates, so they go through one response cache
in the project's home (``shared-cache.sqlite`` in :func:`selfinstruct.home.home_dir`),
and only the first run of a model on a machine pays for them.

The keys are the run cache's (:func:`selfinstruct.backends.base.request_key`: backend
identity, prompt, sampling, prefix split), so a shared answer is the one the run's own
cache would have held. Only a backend whose identity pins its weights (a ``sha256``: the
embedded and transformers backends) shares: a server's model name does not say what it
serves today. Where the home cannot be written, the run's own cache is used: sharing
saves time, nothing else.
"""

from __future__ import annotations

from selfinstruct.backends.cache import ResponseCache
from selfinstruct.errors import UserError
from selfinstruct.home import home_dir

SHARED_CACHE_NAME = "shared-cache.sqlite"


def pins_weights(identity: dict) -> bool:
    """Whether ``identity`` names the exact weights that answer (a sha256 of the model)."""
    return bool(identity.get("sha256"))


def open_shared_cache() -> ResponseCache | None:
    """The cache runs share, or None where the home cannot hold it."""
    path = home_dir() / SHARED_CACHE_NAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return ResponseCache(path)
    except (OSError, UserError):
        return None
