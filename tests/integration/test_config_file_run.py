"""A config file's values reach a real run: its manifest records them, under the flags."""

from __future__ import annotations

import json
import shutil

import pytest
from run_cli import cli

pytestmark = pytest.mark.slow


def test_config_file_values_reach_a_resumed_run(reference_run, tmp_path):
    reference, _ = reference_run
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    config = tmp_path / "resume.toml"
    config.write_text("# only parameters a finished run may change on resumption\n"
                      "max-tokens-total = 1000000\nrequest_timeout = 33\nmax_cost = 0\n")
    cli("classify", str(run), "--quiet", "--config", str(config), "--request-timeout", "44")
    manifest = json.loads((run / "manifest.json").read_text())
    # (max_concurrency is not one of them on the embedded model: it is the decoding batch)
    assert manifest["config"]["max_tokens_total"] == 1000000  # from the file
    assert manifest["config"]["request_timeout"] == 44.0      # the flag beats the file
    assert manifest["config"]["seed"] == 7                    # the run's own
    assert manifest["config"]["bootstrap_top_p"] == 0.5       # the default
    assert manifest["resumed"] == json.loads((reference / "manifest.json").read_text())[
        "resumed"] + 1
    for name in ("instructions.jsonl", "classifications.jsonl", "tasks.jsonl"):
        assert (run / name).read_bytes() == (reference / name).read_bytes()
