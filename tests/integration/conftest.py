"""Integration fixtures: one uninterrupted reference run on the real embedded model,
shared by the tests that inspect it and the test that kills and resumes a run; one real
llama.cpp server for the tests of the OpenAI-compatible backend."""

from __future__ import annotations

import pytest
from llama_server import llama_server
from run_cli import SMALL, cli


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("reference") / "run"
    proc = cli("run", "--out", str(run), *SMALL)
    return run, proc


@pytest.fixture(scope="session")
def server_url():
    from selfinstruct.backends.bundled import smollm2_path

    with llama_server(smollm2_path()) as url:
        yield url
