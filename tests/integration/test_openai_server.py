"""The pipeline through the OpenAI-compatible backend, against llama.cpp's real server."""

from __future__ import annotations

import json

import pytest
from run_cli import cli, line_count

from selfinstruct.backends.base import Request, Sampling
from selfinstruct.backends.openai_compat import OpenAICompatBackend

pytestmark = pytest.mark.slow

FAKE_KEY = "sk-test-DO-NOT-LEAK-4f9c2b7e"


def test_completions_and_chat_endpoints(server_url, monkeypatch):
    monkeypatch.setenv("SI_TEST_KEY", FAKE_KEY)
    backend = OpenAICompatBackend("smollm2", base_url=server_url, api_key_env="SI_TEST_KEY")
    raw, chat = backend.complete([
        Request("The capital of France is", Sampling(max_tokens=8, stop=("\n",))),
        Request("Name one colour.", Sampling(max_tokens=8), chat=True),
    ])
    assert raw.ok and raw.completion_tokens > 0 and raw.prompt_tokens > 0
    assert chat.ok and chat.text.strip()
    assert FAKE_KEY not in json.dumps(backend.identity)


def test_pipeline_through_the_server(server_url, tmp_path):
    run = tmp_path / "run"
    cli("run", "--out", str(run), "--base-url", server_url, "--model", "smollm2",
        "--recipe", "paper", "--num-instructions", "5", "--max-concurrency", "2", "--seed", "3", "--quiet",
        # short completions: the test is about the transport, not the text
        "--bootstrap-max-tokens", "256", "--instance-max-tokens-classification", "96",
        "--instance-max-tokens-generation", "96",
        "--api-key-env", "SI_TEST_KEY", env={"SI_TEST_KEY": FAKE_KEY})
    assert line_count(run / "instructions.jsonl") == 5
    assert line_count(run / "instances.jsonl") == 5
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["model"]["backend"] == "openai"
    assert manifest["model"]["base_url"] == server_url
    assert json.loads((run / "exports" / "alpaca.json").read_text()) is not None
    # The key never reaches the run directory, not even the SQLite cache.
    for path in run.rglob("*"):
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), path


def test_refused_connection_fails_the_request_not_the_run(tmp_path):
    from llama_server import free_port

    run = tmp_path / "run"
    proc = cli("run", "--out", str(run), "--base-url", f"http://127.0.0.1:{free_port()}/v1",
               "--model", "x", "--num-instructions", "1", "--max-requests", "1", "--quiet",
               check=False, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "refus" in proc.stderr.lower() or "connect" in proc.stderr.lower()
    assert not run.exists()  # nothing left behind: no manifest.json, no .lock (issue 29)
