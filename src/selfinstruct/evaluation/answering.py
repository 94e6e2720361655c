"""Send an evaluation's requests through the executor, with the evaluation directory's
response cache and a progress bar, and count what failed.

Every evaluation (SuperNI, user-oriented responses, the judge) asks a model the same way;
each only builds its own prompts and its own record from a completion.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from selfinstruct.backends.base import Backend, Completion, Request
from selfinstruct.backends.cache import ResponseCache
from selfinstruct.backends.requests import UsageStats, run_requests
from selfinstruct.progress import Reporter


@dataclass
class Tally:
    """What the requests cost and how many failed for good (after the retries)."""

    stats: UsageStats = field(default_factory=UsageStats)
    failed: int = 0
    first_error: str | None = None


def answers(backend: Backend, requests: list[Request], folder: Path, reporter: Reporter,
            stage: str, max_concurrency: int, tally: Tally) -> Iterator[tuple[int, Completion]]:
    """Yield ``(index, completion)`` for each request answered, in request order; a
    failed request is counted in ``tally`` and skipped, so a re-run asks it again."""
    cache = ResponseCache(folder / "cache.sqlite")
    try:
        with reporter.stage(stage, len(requests)) as bar:
            for i, completion in run_requests(backend, requests, cache=cache,
                                              max_concurrency=max_concurrency,
                                              stats=tally.stats):
                bar.advance()
                if not completion.ok:
                    tally.failed += 1
                    tally.first_error = tally.first_error or completion.error
                    bar.note(f"{tally.failed} failed")
                    continue
                yield i, completion
    finally:
        cache.close()
