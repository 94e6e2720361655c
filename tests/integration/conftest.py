"""Integration fixtures: one uninterrupted reference run on the real embedded model,
shared by the tests that inspect it and the test that kills and resumes a run."""

from __future__ import annotations

import pytest

from helpers import SMALL, cli


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("reference") / "run"
    proc = cli("run", "--out", str(run), *SMALL)
    return run, proc
