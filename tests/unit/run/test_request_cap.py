"""The request cap: a run that cannot reach --num-instructions stops at --max-requests and
says so, with the reason, in the summary, the manifest and the exit code (3)."""

from __future__ import annotations

import json

from selfinstruct.backends.fake import FakeBackend
from selfinstruct.backends.registry import ModelInfo
from selfinstruct.cli import main
from selfinstruct.run.config import RunConfig
from selfinstruct.run.request_cap import cap_reason


def test_the_reason_names_the_cap_and_the_reject_reasons():
    config = RunConfig(num_instructions=50, max_requests=200)
    line = cap_reason(config, 37, 200, {"too_similar": 580, "too_short": 20, "blacklisted": 12,
                                        "non_ascii": 1})
    assert line == ("stopped at the request cap: 200 bootstrap requests (--max-requests 200) "
                    "kept 37 of the 50 instructions asked for; 613 of 650 candidates were "
                    "rejected (too_similar 580, too_short 20, blacklisted 12, ...)")


def test_the_default_cap_is_spelled_out():
    line = cap_reason(RunConfig(num_instructions=5), 0, 100, {})
    assert "(--max-requests default: 20 per instruction asked for, 100)" in line
    assert line.endswith("the model wrote no candidate instruction")
    failed = cap_reason(RunConfig(num_instructions=5), 0, 100, {}, failed_requests=100)
    assert failed.endswith("100 requests failed (failures.jsonl)")
    assert "no candidate" not in failed


# Every bootstrap completion is a list of instructions the filters reject.
BLACKLISTED = " Draw a picture of a cat in the garden.\n10. Plot a graph of the prices over time."


def test_a_run_stopped_at_the_cap_says_so_and_exits_3(tmp_path, monkeypatch, capsys):
    import selfinstruct.analysis
    import selfinstruct.run.context

    monkeypatch.setattr(selfinstruct.run.context, "open_model",
                        lambda options: (FakeBackend(BLACKLISTED), ModelInfo(options.model, "fake")))
    monkeypatch.setattr(selfinstruct.analysis, "analysis_available", lambda: False)
    monkeypatch.setenv("COLUMNS", "200")
    run = tmp_path / "run"
    code = main(["run", "--out", str(run), "--num-instructions", "3", "--max-requests", "7",
                 "--quiet"])
    out = capsys.readouterr().out
    assert code == 3
    reason = ("stopped at the request cap: 7 bootstrap requests (--max-requests 7) kept 0 of "
              "the 3 instructions asked for; 14 of 14 candidates were rejected "
              "(blacklisted 14)")
    assert reason in out and "raise --max-requests" in out
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "stopped_at_request_budget"
    assert manifest["stop_reason"] == reason
    assert (run / "exports" / "alpaca.json").is_file()  # what it made is exported all the same

    code = main(["generate", "--out", str(run), "--quiet"])  # the stage alone says it too
    assert code == 3 and reason in capsys.readouterr().out
