"""The CLI surface: help, lazy imports, bad input as one line with exit code 2."""

import re
import subprocess
import sys
from dataclasses import fields

import pytest
from cli_in_process import cli

from selfinstruct.cli import main
from selfinstruct.cli.options import METAVARS, OPTIONS
from selfinstruct.run.config import RunConfig


def test_import_is_light():
    code = ("import sys, selfinstruct; from selfinstruct import run_pipeline, RunConfig; "
            "print(sorted(m for m in ('llama_cpp', 'torch', 'transformers', 'ray', 'openai') "
            "if m in sys.modules))")
    # a fresh interpreter: this test process has imported the heavy modules long ago
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_run_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for name, *_ in OPTIONS:
        assert "--" + name.replace("_", "-") in text
    assert "--out" in text and "--force-new" in text


def _option_blocks(capsys, monkeypatch, command: str) -> dict[str, str]:
    """``command --help``, one entry per option: its flags and help on one line."""
    monkeypatch.setenv("COLUMNS", "200")  # no wrapping inside "(default: ...)"
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    blocks = {}
    for block in re.split(r"\n(?=  -)", text.split("\noptions:\n", 1)[1]):
        flat = " ".join(block.split("\n\n")[0].split())  # without a group heading after it
        blocks[flat.split()[0].rstrip(",")] = flat
    return blocks


def test_run_help_shows_each_real_default_once(capsys, monkeypatch):
    blocks = _option_blocks(capsys, monkeypatch, "run")
    defaults = {f.name: f.default for f in fields(RunConfig)}
    for block in blocks.values():
        assert block.count("(default:") <= 1, block
        assert "(default: None)" not in block, block
    for name, _, kind, _ in OPTIONS:
        block = blocks["--" + name.replace("_", "-")]
        if defaults[name] is not None:
            assert block.endswith(f"(default: {defaults[name]})"), block
        if kind is not bool:  # a metavar that says what the value is, not the flag's last word
            assert block.startswith(f"--{name.replace('_', '-')} {METAVARS[name]} "), block
    for said_nothing in ("TASK", "CLASSIFICATION", "GENERATION", "INSTRUCTIONS", "TOTAL"):
        assert not any(f" {said_nothing} " in block for block in blocks.values())


def test_report_help_shows_no_default_twice(capsys, monkeypatch):
    blocks = _option_blocks(capsys, monkeypatch, "report")
    assert blocks["--sample-seed"].endswith("(default: the run's seed)")
    assert blocks["--sample"].endswith("(default: 20)")


@pytest.mark.parametrize("args,message", [
    (["--num-instructions", "0"], "--num-instructions: must be at least 1, got 0"),
    (["--similarity-threshold", "1.5"], "--similarity-threshold: must be between 0.0 and 1.0"),
    (["--model", "no-such-model"], "--model: unknown model 'no-such-model'"),
    (["--seeds", "missing.jsonl"], "--seeds: file not found"),
])
def test_bad_options_exit_2_with_one_line(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "run", "--out", tmp_path / "r", *args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r" / "manifest.json").exists()


def test_bad_seed_file_names_line_and_field(tmp_path, capsys):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text('{"id": "a", "instruction": "Do x now please.", "instances": [], '
                     '"is_classification": false}\n{"id": "b", "instances": []}\n')
    code, _, err = cli(capsys, "run", "--out", tmp_path / "r", "--seeds", seeds)
    assert code == 2
    assert f"{seeds}:2: field 'instruction' is missing" in err
    assert "Traceback" not in err


def test_export_on_a_directory_that_is_not_a_run(tmp_path, capsys):
    code, _, err = cli(capsys, "export", tmp_path)
    assert code == 2 and "is not a run directory" in err


def test_export_seeds_writes_every_seed_instance(tmp_path):
    """``export --seeds``: the training file of the seeds-only ("no bootstrapping") arm."""
    import json

    from selfinstruct.seeds import load_seeds

    out = tmp_path / "seeds.alpaca.json"
    assert main(["export", "--seeds", "--format", "alpaca", "-o", str(out)]) == 0
    rows = json.loads(out.read_text())
    tasks = load_seeds()
    assert rows == [{"instruction": t.instruction, "input": i.input, "output": i.output}
                    for t in tasks for i in t.instances]
    seeds = tmp_path / "mine.jsonl"
    seeds.write_text(json.dumps({"id": "s1", "instruction": "Add one.", "is_classification":
                                 False, "instances": [{"input": "2", "output": "3"}]}) + "\n")
    pairs = tmp_path / "mine.prompt-completion.jsonl"
    assert main(["export", "--seeds", str(seeds), "--format", "prompt-completion",
                 "-o", str(pairs)]) == 0
    [row] = [json.loads(line) for line in pairs.read_text().splitlines()]
    assert "Add one." in row["prompt"] and row["completion"].strip().startswith("3")


@pytest.mark.parametrize("args,message", [
    (["--seeds"], "export --seeds: give the output file with --output"),
    ([], "export: give a run directory (RUN) or --seeds"),
    (["RUN", "--seeds", "-o", "x.json"], "give either a run directory (RUN) or --seeds"),
    (["--seeds", "nope.jsonl", "-o", "x.json"], "--seeds: file not found: nope.jsonl"),
])
def test_export_seeds_bad_usage_exits_2(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "export", *args)
    assert code == 2 and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_run_directory_with_other_parameters_is_refused(tmp_path, capsys):
    from selfinstruct.run.config import RunConfig
    from selfinstruct.run.context import open_context

    ctx = open_context(tmp_path / "r", RunConfig(num_instructions=5, seed=42))
    ctx.run.instructions.append([{"id": "000000.00", "instruction": "Do a thing now."}])
    ctx.close()
    before = (tmp_path / "r" / "instructions.jsonl").read_bytes()
    code, _, err = cli(capsys, "run", "--out", tmp_path / "r", "--seed", "9",
                       "--bootstrap-temperature", "1.0")
    assert code == 2 and "Traceback" not in err
    assert "bootstrap_temperature: 0.7 -> 1.0" in err and "seed: 42 -> 9" in err
    assert "--force-new" in err
    assert (tmp_path / "r" / "instructions.jsonl").read_bytes() == before  # nothing lost
