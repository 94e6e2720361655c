"""Shared test set-up: a temporary selfinstruct home per session, no API key in the
environment. Paths to test data are in ``paths.py`` (import it; never import conftest)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Each test session gets its own SELFINSTRUCT_HOME; model files assembled once."""
    home = tmp_path_factory.getbasetemp() / "selfinstruct-home"
    monkeypatch.setenv("SELFINSTRUCT_HOME", str(home))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
