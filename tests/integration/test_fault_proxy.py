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

ARGS = ["--model", "smollm2", "--num-instructions", "5", "--seed", "5", "--quiet",
        "--bootstrap-max-tokens", "256", "--max-concurrency", "2", "--request-timeout", "20"]
RATES = {"429": 0.10, "500": 0.06, "503": 0.06, "reset": 0.06, "slow": 0.04,
         "truncated": 0.08, "empty_choices": 0.08}  # about half of all first attempts


def test_faulty_server_gives_the_fault_free_output(server_url, tmp_path):
    with FaultProxy(server_url.removesuffix("/v1"), rates={}, seed=1) as proxy:
        clean = tmp_path / "clean"
        cli("run", "--out", str(clean), "--base-url", proxy.url, *ARGS)
        proxy.rates, proxy.slow_seconds = RATES, 21.0
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
