"""Several --base-url: two real llama.cpp servers on two loopback ports, one run, no Ray.

Each server sits behind a pass-through proxy that counts the completion requests it
forwards, so that the test sees from the servers' side that both received traffic, and
that the run's own per-server counts in the manifest are right."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from fault_proxy import FaultProxy
from llama_server import llama_server
from run_cli import cli, line_count

pytestmark = pytest.mark.slow


class CountingProxy(FaultProxy):
    """No faults; counts the POSTs (completions) apart from ``GET /models`` checks."""

    def __init__(self, upstream: str):
        super().__init__(upstream, rates={}, pin=False)
        self.posts = Counter()

    def _forward(self, method, path, body, headers):
        if method == "POST":
            with self.lock:
                self.posts[path] += 1
        return super()._forward(method, path, body, headers)


def test_two_servers_both_serve_one_run(tmp_path):
    from selfinstruct.backends.bundled import smollm2_path

    model = smollm2_path()
    with llama_server(model) as first, llama_server(model) as second, \
            CountingProxy(first) as a, CountingProxy(second) as b:
        run = tmp_path / "run"
        cli("run", "--out", str(run), "--model", "smollm2", "--base-url", a.url,
            "--base-url", b.url, "--recipe", "paper", "--num-instructions", "2", "--seed", "3", "--quiet", "--bootstrap-max-tokens", "256",
            "--instance-max-tokens-classification", "64",
            "--instance-max-tokens-generation", "64", "--request-timeout", "600")
        sent = {proxy.url: sum(proxy.posts.values()) for proxy in (a, b)}
    assert all(count > 0 for count in sent.values()), sent
    assert line_count(run / "instructions.jsonl") == 2
    assert line_count(run / "instances.jsonl") == 2
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["model"]["base_url"] == f"{a.url},{b.url}"
    assert manifest["config"]["base_url"] == f"{a.url},{b.url}"
    assert {m["member"]: m["requests"] for m in manifest["members"]} == sent
