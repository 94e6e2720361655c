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


def test_the_agreement_is_fitted_on_the_tasks_given(tmp_path, capsys):
    """``--agreement-fit-seeds``: tasks the answerer was not trained on, named in the
    manifest's fit; a missing file is refused before anything is written."""
    from selfinstruct.seeds import load_seeds

    held_out = [t for t in load_seeds(None) if not t.is_classification][100:112]
    fit_file = tmp_path / "held-out.jsonl"
    fit_file.write_text("".join(json.dumps({
        "id": t.id, "name": t.id, "instruction": t.instruction, "is_classification": False,
        "instances": [{"input": i.input, "output": i.output} for i in t.instances]}) + "\n"
        for t in held_out))
    run = tmp_path / "run"
    args = ["--base-url", None, "--model", "fake", "--num-instructions", "2", "--quiet",
            "--recipe", "curated", "--answers", "2", "--agreement-fit-tasks", "0"]
    with FakeServer(deterministic=True) as server:
        args[1] = server.url
        code, _, err = cli(capsys, "run", "--out", tmp_path / "none", *args,
                           "--agreement-fit-seeds", tmp_path / "missing.jsonl")
        assert code == 2 and "--agreement-fit-seeds: file not found" in err
        assert not (tmp_path / "none").exists()
        code, _, err = cli(capsys, "run", "--out", run, *args,
                           "--agreement-fit-seeds", fit_file)
    assert code == 0, err
    fit = json.loads((run / "manifest.json").read_text())["curation"]["agreement"]
    assert fit["source"] == f"fitted on {fit_file}"
    # every held-out task but those shown as demonstrations (drawn from the run's seeds)
    assert 0 < fit["tasks"] <= len(held_out)
