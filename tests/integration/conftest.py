"""Integration fixtures: one uninterrupted reference run on the real embedded model,
shared by the tests that inspect it and the test that kills and resumes a run; one real
llama.cpp server for the tests of the OpenAI-compatible backend."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from llama_server import llama_server
from run_cli import SMALL, cli


def digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path) and the SHA-256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory):
    """``(run directory, finished process)``: read it, never write it. A test that runs a
    command on it works on a ``shutil.copytree`` copy in its own ``tmp_path``; at the end of
    the session every file must still be as the run left it."""
    run = tmp_path_factory.mktemp("reference") / "run"
    proc = cli("run", "--out", str(run), *SMALL)
    before = digest(run)
    yield run, proc
    after = digest(run)
    changed = sorted(name for name in before.keys() | after.keys()
                     if before.get(name) != after.get(name))
    assert not changed, f"a test changed the shared reference run: {changed}"


@pytest.fixture(scope="session")
def server_url():
    from selfinstruct.backends.bundled import smollm2_path

    with llama_server(smollm2_path(), n_threads=2) as url:
        yield url
