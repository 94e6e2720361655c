"""Where the test data lives: ../shared beside the repository, and tests/fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
ORIGINAL = SHARED / "data" / "self-instruct-original"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def require_shared() -> Path:
    if not ORIGINAL.is_dir():
        pytest.skip(f"the shared data directory is not there: {ORIGINAL}")
    return ORIGINAL
