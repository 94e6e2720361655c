"""Stop a real run at its budget, kill -9 it at several points, resume it each time, and
compare with an uninterrupted run.

The resumed run must export byte-identical files, with no record lost or duplicated.
"""

from __future__ import annotations

import json
import signal
import time

import pytest
from run_cli import SMALL, cli, export_bytes, line_count, popen

pytestmark = pytest.mark.slow


# The budget is part of the run's parameters: later sessions lift it explicitly.
UNLIMITED = [*SMALL, "--max-tokens-total", "0"]


def _kill_when(run, file_name: str, at_least: int, timeout: float = 600) -> None:
    proc = popen("run", "--out", str(run), *UNLIMITED)
    deadline = time.monotonic() + timeout
    try:
        while line_count(run / file_name) < at_least:
            if proc.poll() is not None:
                raise AssertionError(f"the run ended before it could be killed: "
                                     f"{proc.stderr.read().decode()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{file_name} never reached {at_least} lines")
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def _ids(path):
    return [json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()]


def test_killed_and_resumed_run_exports_the_same_bytes(reference_run, tmp_path):
    reference, _ = reference_run
    run = tmp_path / "run"
    # One request (about 400 tokens) spends this budget: a clean stop after at most 7 kept
    # instructions, so the first kill below lands in the bootstrap's next requests.
    stopped = cli("run", "--out", str(run), *SMALL, "--max-tokens-total", "300", check=False)
    assert stopped.returncode == 3, stopped.stderr  # a clean stop at the token budget
    assert "--max-tokens-total 300 reached" in stopped.stderr
    _kill_when(run, "instructions.jsonl", 9)        # during the bootstrap
    _kill_when(run, "classifications.jsonl", 4)     # during classification
    _kill_when(run, "instances.jsonl", 3)           # during instance generation
    cli("run", "--out", str(run), *UNLIMITED)
    assert export_bytes(run) == export_bytes(reference)
    for name in ("instructions.jsonl", "classifications.jsonl", "instances.jsonl",
                 "rejects.jsonl"):
        ids = _ids(run / name)
        assert len(ids) == len(set(ids)), f"duplicated records in {name}"
        assert sorted(ids) == sorted(_ids(reference / name)), f"lost records in {name}"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "finished"


def test_twenty_kills_at_random_times_lose_and_duplicate_nothing(reference_run, tmp_path):
    """kill -9 at 20 seeded-random moments across all stages, resuming after each one."""
    import random

    reference, _ = reference_run
    run = tmp_path / "run"
    rng = random.Random(2026)
    kills = 0
    for _ in range(20):
        proc = popen("run", "--out", str(run), *UNLIMITED)
        time.sleep(rng.uniform(0.5, 4.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        manifest = run / "manifest.json"
        if manifest.exists():
            json.loads(manifest.read_text())  # always valid JSON: written by rename
    cli("run", "--out", str(run), *UNLIMITED)
    print(f"\n{kills} kills landed before the run finished")
    assert kills >= 15
    assert export_bytes(run) == export_bytes(reference)
    for name in ("instructions.jsonl", "classifications.jsonl", "instances.jsonl",
                 "rejects.jsonl"):
        ids = _ids(run / name)
        assert len(ids) == len(set(ids)), f"duplicated records in {name}"
        assert sorted(ids) == sorted(_ids(reference / name)), f"lost records in {name}"

