"""The curated recipe's answers stage on an OpenAI-compatible server (the stand-in): with
echo, IFD is scored from whole texts; on a server that refuses echo, round trips and IFD
are skipped with the reason in the manifest, after one request that asked."""

from __future__ import annotations

import json

import pytest
from cli_in_process import cli
from fake_openai_server import FakeServer

from selfinstruct.stages.answers import NO_WHOLE_TEXT_SCORES


@pytest.mark.parametrize("mode", ["ok", "no-echo"])
def test_the_answers_stage_scores_whole_texts_where_the_server_echoes(tmp_path, capsys, mode):
    run = tmp_path / "run"
    with FakeServer(mode=mode, deterministic=True) as server:
        code, _, err = cli(capsys, "run", "--out", run, "--base-url", server.url,
                           "--model", "fake", "--num-instructions", "2", "--quiet",
                           "--recipe", "curated", "--answers", "2", "--min-agreement", "0.0")
    assert code == 0, err
    echoed = [b for b in server.bodies if b.get("echo")]
    assert all(b["max_tokens"] == 0 and b["logprobs"] == 1 for b in echoed)
    curation = json.loads((run / "manifest.json").read_text())["curation"]
    instances = [i for line in (run / "answers.jsonl").read_text().splitlines()
                 for i in json.loads(line)["instances"]]
    assert instances
    if mode == "ok":
        assert "skipped" not in curation
        assert all({"logprob_with_prompt", "logprob_alone", "ifd"} <= set(i)
                   for i in instances)
        assert len(echoed) == 1 + 2 * len(instances)  # the probe, then two per instance
    else:
        assert curation["skipped"] == [NO_WHOLE_TEXT_SCORES]
        assert not any("ifd" in i for i in instances)
        assert len(echoed) == 1  # the probe alone
