"""Review a run by hand: browse, curate, audit quality, and rate responses blind.

- :mod:`.store`      ``RUN/review.sqlite``: decisions and validity marks per task, human
                     ratings; :func:`.store.apply_reviews` for ``export --reviewed``;
- :mod:`.agreement`  Cohen's kappa between a human and a judge;
- :mod:`.rating`     the blind, shuffled list of responses to rate;
- :mod:`.app`        the local web app (FastAPI, Jinja2 templates, served by uvicorn).

The store, the agreement and the rating list use the standard library only; the app needs
the ``[review]`` extra, and :func:`missing` tells, without importing, what is absent.
"""

from __future__ import annotations

import importlib.util

from selfinstruct.errors import UserError

REVIEW_HINT = "pip install 'selfinstruct[review]'"
_REQUIRED = {"fastapi": "FastAPI", "uvicorn": "uvicorn", "jinja2": "Jinja2"}


def missing() -> list[str]:
    absent = []
    for name, label in _REQUIRED.items():
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            absent.append(label)
    return absent


def require_review(command: str = "review") -> None:
    absent = missing()
    if absent:
        raise UserError(f"'{command}' needs {', '.join(absent)}: {REVIEW_HINT}")
