"""``--config FILE``: values reach the configuration in the documented order, and every bad
file is one line naming the file (and line), exit code 2, nothing written."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cli_in_process import cli

from selfinstruct.cli import build_parser, main
from selfinstruct.cli.options import config_from_args
from selfinstruct.run.config import RunConfig


def _run_with(tmp_path, name: str, text: str, *extra: str) -> tuple[int, str]:
    config = tmp_path / name
    config.write_text(text, encoding="utf-8")
    return main(["run", "--out", str(tmp_path / "r"), "--config", str(config), *extra])


@pytest.mark.parametrize("name,text,message", [
    ("bad.toml", "num_instructions = 5\nseed = \"7\n",
     "bad.toml:2: not valid TOML: Illegal character"),
    ("bad.json", '{\n  "num_instructions": 5,\n  "seed": ,\n}\n',
     "bad.json:3: not valid JSON: Expecting value (line 3, column 11)"),
    ("list.json", "[1, 2]", "list.json: must hold one JSON object"),
    ("unknown.toml", "seed = 1\nnum_instruction = 5\n",
     "unknown.toml:2: unknown key 'num_instruction'; did you mean 'num_instructions'?"),
    ("unknown.json", '{"seed": 1,\n "similarity-treshold": 0.5}',
     "unknown.json:2: unknown key 'similarity-treshold'; did you mean 'similarity-threshold'?"),
    ("nothing_close.toml", "qwxz = 'blue'\n", "nothing_close.toml:1: unknown key 'qwxz'\n"),
    ("type.toml", "seed = 1\nnum_instructions = \"ten\"\n",
     "type.toml:2: num_instructions: expected an integer, got the string \"ten\""),
    ("bool.toml", "num_instructions = true\n",
     "bool.toml:1: num_instructions: expected an integer, got the boolean true"),
    ("flag.json", '{"chat": 1}',
     "flag.json:1: chat: expected a boolean (true or false), got the number 1"),
    ("table.toml", "[model]\nname = 'x'\n",
     "table.toml:1: model: expected a string, got a table (object)"),
    ("range.toml", "seed = 1\n\nnum_instructions = 0\n",
     "range.toml:3: num_instructions: must be at least 1, got 0"),
    ("range.json", '{\n"similarity_threshold": 1.5\n}',
     "range.json:2: similarity_threshold: must be between 0.0 and 1.0, got 1.5"),
    ("cross.toml", "num_prompt_instructions = 1\n",
     "--num-machine-instructions: must be between 0 and 1, got 2 (with the options in "),
    ("twice.toml", "num_instructions = 5\nnum-instructions = 6\n",
     "twice.toml:2: 'num-instructions' is given twice"),
    ("options.yaml", "num_instructions: 5\n", "options.yaml: use a .toml or .json file"),
])
def test_bad_config_file_is_one_line_exit_2(tmp_path, capsys, name, text, message):
    assert _run_with(tmp_path, name, text) == 2
    err = capsys.readouterr().err
    assert err.startswith("selfinstruct: error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_missing_config_file(tmp_path, capsys):
    code = main(["run", "--out", str(tmp_path / "r"), "--config", str(tmp_path / "no.toml")])
    assert code == 2
    assert f"--config: file not found: {tmp_path / 'no.toml'}" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_config_path_that_is_a_directory(tmp_path, capsys):
    code = main(["run", "--out", str(tmp_path / "r"), "--config", str(tmp_path)])
    assert code == 2
    assert f"--config: is a directory, not a file: {tmp_path}" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_bad_config_file_in_a_real_process_has_no_traceback(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("num_instructions = [1]\n")
    # the process is the point: the `python -m selfinstruct` entry turns the error into exit 2
    proc = subprocess.run([sys.executable, "-m", "selfinstruct", "generate", "--out",
                           str(tmp_path / "r"), "--config", str(config)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (f"selfinstruct: error: {config}:1: num_instructions: "
                                   "expected an integer, got a list")


def test_bad_config_file_leaves_an_existing_run_untouched(tmp_path, capsys):
    from selfinstruct.run.context import open_context

    ctx = open_context(tmp_path / "r", RunConfig(num_instructions=5, seed=42))
    ctx.run.instructions.append([{"id": "000000.00", "instruction": "Do a thing now."}])
    ctx.close()
    before = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()}
    assert _run_with(tmp_path, "c.toml", "seed = 42\nmax_concurency = 2\n") == 2
    assert "did you mean 'max_concurrency'?" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()} == before


def _config(tmp_path, text: str, *flags: str, base: dict | None = None) -> RunConfig:
    config = tmp_path / "c.toml"
    config.write_text(text)
    args = build_parser().parse_args(["run", "--out", str(tmp_path / "r"),
                                      "--config", str(config), *flags])
    return config_from_args(args, base=base)


def test_precedence_defaults_manifest_file_flags(tmp_path):
    manifest = RunConfig(seed=1, num_instructions=11, max_concurrency=3,
                         request_timeout=9.0).as_dict()
    text = "num_instructions = 22\nmax-concurrency = 4\nbootstrap_top_p = 0.9\n"
    config = _config(tmp_path, text, "--max-concurrency", "5", base=manifest)
    assert config.bootstrap_max_tokens == 1024  # default
    assert config.seed == 1 and config.request_timeout == 9.0  # manifest
    assert config.num_instructions == 22 and config.bootstrap_top_p == 0.9  # file
    assert config.max_concurrency == 5  # flag


def test_a_flag_overrides_a_bad_value_in_the_file(tmp_path):
    assert _config(tmp_path, "num_instructions = 0\n", "--num-instructions", "3") \
        .num_instructions == 3


def test_values_get_the_field_types_and_paths_are_relative_to_the_file(tmp_path):
    config = _config(tmp_path, 'request_timeout = 30\nseeds = "data/seeds.jsonl"\n'
                               'prompts = "/abs/templates"\nchat = true\n')
    assert config.request_timeout == 30.0 and isinstance(config.request_timeout, float)
    assert config.seeds == str(tmp_path / "data" / "seeds.jsonl")
    assert config.prompts == "/abs/templates" and config.chat is True


def test_decontamination_files_in_a_file_are_relative_to_it(tmp_path):
    config = _config(tmp_path, 'decontaminate = "eval/superni.jsonl,/abs/uo.jsonl"\n')
    assert config.decontamination_files == [str(tmp_path / "eval" / "superni.jsonl"),
                                            "/abs/uo.jsonl"]


def test_json_null_keeps_the_default(tmp_path):
    config = tmp_path / "c.json"
    config.write_text('{"base_url": null, "num-instructions": 7}')
    args = build_parser().parse_args(["run", "--out", "x", "--config", str(config)])
    assert config_from_args(args).base_url is None
    assert config_from_args(args).num_instructions == 7


@pytest.mark.parametrize("command", ["run", "generate", "classify", "instances"])
def test_help_documents_config(capsys, command):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--config FILE" in capsys.readouterr().out


def test_a_config_file_cannot_change_a_runs_parameters(tmp_path, capsys):
    from selfinstruct.run.context import open_context

    ctx = open_context(tmp_path / "r", RunConfig(num_instructions=5, seed=42))
    ctx.run.instructions.append([{"id": "000000.00", "instruction": "Do a thing now."}])
    ctx.close()
    before = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()}
    config = tmp_path / "c.json"
    config.write_text('{"seed": 9, "num_instructions": 5}')
    code, _, err = cli(capsys, "run", "--out", tmp_path / "r", "--config", config)
    assert code == 2 and "Traceback" not in err
    assert "seed: 42 -> 9" in err and "--force-new" in err
    assert {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()} == before
