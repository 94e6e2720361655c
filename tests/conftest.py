"""Shared test helpers: where ../shared is, a temporary selfinstruct home per test."""

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


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Each test gets its own SELFINSTRUCT_HOME; model files assembled once per session."""
    home = tmp_path_factory.getbasetemp() / "selfinstruct-home"
    monkeypatch.setenv("SELFINSTRUCT_HOME", str(home))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
