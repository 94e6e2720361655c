"""The pipeline behind a fault-injecting proxy finishes with the fault-free run's output.

Faults: 429 with Retry-After, 500, 503, reset connections, responses slower than the
timeout, truncated JSON and empty choices, in front of the real llama.cpp server.
"""

from __future__ import annotations

import json

import pytest
from fault_proxy import FAULTS, FaultProxy
from run_cli import cli, export_bytes, line_count

pytestmark = pytest.mark.slow

ARGS = ["--recipe", "paper", "--model", "smollm2", "--num-instructions", "5", "--seed", "5", "--quiet",
        "--bootstrap-max-tokens", "256", "--max-concurrency", "2", "--request-timeout", "20",
        "--instance-max-tokens-classification", "96", "--instance-max-tokens-generation", "96"]
# About half of all first attempts. No "slow" fault here: each costs a whole request
# timeout (20 s, kept long for a loaded CI machine); the test below covers it with a 2 s one.
RATES = {"429": 0.10, "500": 0.06, "503": 0.06, "reset": 0.06,
         "truncated": 0.08, "empty_choices": 0.08}


def test_faulty_server_gives_the_fault_free_output(server_url, tmp_path):
    with FaultProxy(server_url.removesuffix("/v1"), rates={}, seed=1) as proxy:
        clean = tmp_path / "clean"
        cli("run", "--out", str(clean), "--base-url", proxy.url, *ARGS)
        proxy.rates = RATES
        proxy.counts.clear()
        faulty = tmp_path / "faulty"
        cli("run", "--out", str(faulty), "--base-url", proxy.url, *ARGS)
        counts = dict(proxy.counts)
    manifest = json.loads((faulty / "manifest.json").read_text())
    retries = sum(stage["retries"] for stage in manifest["usage"].values())
    injected = sum(counts.get(kind, 0) for kind in FAULTS)
    print(f"\nfault proxy: {counts}; retries {retries}; "
          f"final failures {line_count(faulty / 'failures.jsonl')}")
    assert injected >= 3 and len([k for k in FAULTS if counts.get(k)]) >= 2, counts
    assert retries >= injected  # every injected fault was met with a retry
    assert line_count(faulty / "failures.jsonl") == 0
    assert export_bytes(faulty) == export_bytes(clean)


@pytest.mark.parametrize("kind", FAULTS)
def test_each_fault_kind_is_retried_and_recovered(server_url, kind):
    """One forced fault of each kind on one request: one retry, then the real answer."""
    from selfinstruct.backends.base import Request, Sampling
    from selfinstruct.backends.openai_compat import OpenAICompatBackend
    from selfinstruct.backends.requests import UsageStats, run_requests
    from selfinstruct.backends.retry import RetryPolicy

    with FaultProxy(server_url.removesuffix("/v1"), rates={kind: 1.0}, seed=0,
                    slow_seconds=3.0, max_faults_per_request=1) as proxy:
        backend = OpenAICompatBackend("smollm2", base_url=proxy.url, timeout=2.0)
        stats = UsageStats()
        request = Request(f"Fault kind {kind}. The sky is", Sampling(max_tokens=4, seed=1))
        [(_, completion)] = list(run_requests(
            backend, [request], stats=stats,
            retry=RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=1.0)))
        counts = dict(proxy.counts)
    assert counts.get(kind) == 1, counts
    assert stats.retry.retries == 1, (kind, completion.error)
    assert completion.ok and completion.completion_tokens > 0
