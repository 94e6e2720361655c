"""The whole pipeline on the real embedded model (SmolLM2-135M-Instruct via llama.cpp)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from run_cli import SMALL, cli, export_bytes, line_count

pytestmark = pytest.mark.slow


def _copy(reference_run, tmp_path) -> Path:
    """The reference run, copied: the commands below write into a run directory."""
    run = tmp_path / "run"
    shutil.copytree(reference_run[0], run)
    return run


def test_run_keeps_the_target_and_exports(reference_run):
    run, proc = reference_run
    assert line_count(run / "instructions.jsonl") == 12
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "finished"
    assert len(manifest["model"]["sha256"]) == 64
    assert manifest["config"]["seed"] == 7
    assert manifest["started_at"] <= manifest["finished_at"]
    alpaca = json.loads((run / "exports" / "alpaca.json").read_text())
    assert alpaca and set(alpaca[0]) == {"instruction", "input", "output"}
    assert "instructions generated" in proc.stdout and "tokens in" in proc.stdout


def test_kept_instructions_record_provenance(reference_run):
    run, _ = reference_run
    records = [json.loads(line) for line in (run / "instructions.jsonl").read_text().splitlines()]
    for record in records:
        assert len(record["most_similar"]) == 10
        assert all(score <= 0.7 for _, score in record["most_similar"])
        assert 0 <= record["avg_similarity"] <= 0.7
        # the kept instruction is a line of the completion (capitalized as the original
        # does, so compared in lower case, whitespace collapsed)
        assert " ".join(record["instruction"].lower().split()) in \
            " ".join(record["raw_completion"].lower().split())
        assert isinstance(record["request_index"], int)


def test_every_classified_instruction_has_an_instance_record(reference_run):
    run, _ = reference_run
    ids = {json.loads(x)["id"] for x in (run / "classifications.jsonl").read_text().splitlines()}
    inst = {json.loads(x)["id"] for x in (run / "instances.jsonl").read_text().splitlines()}
    assert ids == inst and len(ids) == 12


def test_rerun_resends_nothing_and_exports_the_same_bytes(reference_run, tmp_path):
    run = _copy(reference_run, tmp_path)
    before = export_bytes(run)
    proc = cli("run", "--out", str(run), *SMALL)
    assert export_bytes(run) == before
    assert "tokens out (this session)" in proc.stdout
    row = next(line for line in proc.stdout.splitlines() if "tokens out (this session)" in line)
    assert row.split("│")[2].strip() == "0"


def test_stage_commands_and_other_formats(reference_run, tmp_path):
    run = _copy(reference_run, tmp_path)
    cli("classify", str(run))
    cli("instances", str(run))
    out = tmp_path / "train.json"
    cli("export", str(run), "--format", "alpaca", "-o", str(out))
    assert out.read_bytes() == (run / "exports" / "alpaca.json").read_bytes()
    cli("export", str(run), "--format", "parquet", "-o", str(tmp_path / "d.parquet"))
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "d.parquet")
    assert table.num_rows == len(json.loads(out.read_text()))
    chat = (run / "exports" / "chat.jsonl").read_text().splitlines()
    assert json.loads(chat[0])["messages"][1]["role"] == "assistant"
