"""--executor ray on a real local Ray cluster (started here with 2 CPUs): 2 actors, each
running the embedded model with one thread, driven by the real CLI in a subprocess that
joins the cluster with --ray-address.

The Ray run must write byte for byte what the local executor writes at the same seed
when it resumes a run the local executor began, and one of its actors is killed
(SIGKILL) in the middle of it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import tempfile
import time

import pytest
from run_cli import cli, export_bytes, line_count, popen

pytestmark = pytest.mark.slow

# Small but real; shorter instance outputs than the paper's to keep three runs quick.
SMALL_RUN = ["--recipe", "paper", "--num-instructions", "6", "--seed", "11", "--quiet",
             "--instance-max-tokens-classification", "120",
             "--instance-max-tokens-generation", "120"]
RECORDS = ("instructions.jsonl", "rejects.jsonl", "classifications.jsonl", "instances.jsonl",
           "instance_rejects.jsonl", "tasks.jsonl")


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("local") / "run"
    cli("run", "--out", str(run), *SMALL_RUN)
    return run


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray cluster of 2 CPUs for this module; the CLI joins it as another driver."""
    import ray

    # Short: the cluster's Unix socket paths must fit in 107 bytes.
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    try:
        info = ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp_dir,
                        logging_level=logging.ERROR, log_to_driver=False)
        yield info.address_info["gcs_address"]
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def on_ray(address: str) -> list[str]:
    return ["--executor", "ray", "--ray-address", address, "--replicas", "2"]


def file_bytes(path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


def assert_same_records(run, reference) -> None:
    assert export_bytes(run) == export_bytes(reference)
    for name in RECORDS:
        assert file_bytes(run / name) == file_bytes(reference / name), name
    assert line_count(run / "failures.jsonl") == 0


def workers() -> list[dict]:
    """The selfinstruct actors alive on the cluster: name and namespace."""
    import ray

    return [entry for entry in ray.util.list_named_actors(all_namespaces=True)
            if entry["name"].startswith("selfinstruct-worker-")]


def worker_pids() -> dict[str, int]:
    import ray

    pids = {}
    for entry in workers():
        actor = ray.get_actor(entry["name"], namespace=entry["namespace"])
        pids[entry["name"]] = ray.get(actor.describe.remote(), timeout=60)["pid"]
    return pids


def test_a_run_resumed_on_ray_writes_what_the_local_executor_writes(local_run, ray_address,
                                                                    tmp_path):
    """A run begun by the local executor and stopped at its token budget after its first
    bootstrap request is resumed on Ray, which does the rest of the bootstrap, classification and
    instances; one of the two actors is killed with SIGKILL during instance generation.

    (One test rather than a clean Ray run plus a faulty one: the faulty run must match the
    same reference, so the clean one would add a minute and no claim.)"""
    run = tmp_path / "run"
    stopped = cli("run", "--out", str(run), *SMALL_RUN, "--max-tokens-total", "300",
                  check=False)
    assert stopped.returncode == 3, stopped.stderr  # a clean stop, a few records written
    proc = popen("run", "--out", str(run), *SMALL_RUN, "--max-tokens-total", "0",
                 *on_ray(ray_address))
    try:
        deadline = time.monotonic() + 900
        # Instance generation: both actors are busy with a request each from here on.
        while line_count(run / "instances.jsonl") < 1:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the run never reached instance generation"
            time.sleep(0.05)
        name, pid = min(worker_pids().items())
        os.kill(pid, signal.SIGKILL)
        _, stderr = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr.decode()
    assert_same_records(run, local_run)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["resumed"] == 1 and manifest["config"]["executor"] == "ray"
    assert manifest["usage"]["instances"]["retries"] >= 1  # its request was sent again
    killed = next(m for m in manifest["members"] if m["member"] == name)
    assert killed["failed_calls"] >= 1
    served = {m["member"]: m["requests"] for m in manifest["members"]}
    assert len(served) == 2 and all(count > 0 for count in served.values()), served
    deadline = time.monotonic() + 60  # the run ended its actors (Ray removes them soon after)
    while workers() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert workers() == []
