"""Issue #29: nothing a user types destroys a run, and a dead server never ends as
"finished".

Each test is one case, through the CLI (in process, or a real process where a signal is
involved). No model is loaded: runs are built by hand (``test_nothing_lost.make_run``) or
made against ``fake_openai_server.FakeServer``. RELIABILITY.md lists the cases.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cli_in_process import cli
from fake_openai_server import FakeServer
from test_nothing_lost import TASKS, assert_one_line_error, make_run, snapshot

from selfinstruct.files import OUTPUT_MARKER


@pytest.fixture(autouse=True)
def _no_report(monkeypatch):
    import selfinstruct.analysis

    monkeypatch.setattr(selfinstruct.analysis, "analysis_available", lambda: False)


# --- 1. one rule for every output path ---------------------------------------------------

RUN_FILES = ("instructions.jsonl", "tasks.jsonl", "manifest.json", "cache.sqlite", ".lock")


@pytest.mark.parametrize("name", RUN_FILES)
@pytest.mark.parametrize("fmt", ["alpaca", "prompt-completion", "chat", "parquet"])
def test_export_onto_one_of_the_runs_own_files_is_refused(tmp_path, capsys, name, fmt):
    run = make_run(tmp_path)
    (run / "cache.sqlite").write_bytes(b"")
    (run / ".lock").write_bytes(b"")
    before = snapshot(run)
    code, out, err = cli(capsys, "export", run, "--format", fmt, "-o", run / name)
    assert_one_line_error(code, err, "-o", str(run / name), "inside the run directory")
    assert out == ""
    assert snapshot(run) == before


def test_exporting_another_run_into_a_live_runs_files_is_refused(tmp_path, capsys):
    source, live = make_run(tmp_path, name="a"), make_run(tmp_path, name="b")
    before = snapshot(live)
    for target in (live / "instructions.jsonl", live / "new.json", live / "sub" / "x.json",
                   live / "exports" / "alpaca.json"):
        code, _, err = cli(capsys, "export", source, "-o", target)
        assert_one_line_error(code, err, str(live), "inside the run directory")
    assert snapshot(live) == before
    assert not (live / "sub").exists() and not (live / "exports").exists()


def test_export_into_its_own_exports_and_outside_still_works(tmp_path, capsys):
    run = make_run(tmp_path)
    assert cli(capsys, "export", run)[0] == 0
    assert json.loads((run / "exports" / "alpaca.json").read_text())[0]["output"]
    assert cli(capsys, "export", run, "-o", run / "exports" / "mine.json")[0] == 0
    code, _, err = cli(capsys, "export", run, "-o", tmp_path / "out.json")
    assert code == 0, err
    assert len(json.loads((tmp_path / "out.json").read_text())) == len(TASKS)


def test_export_seeds_onto_its_own_input_is_refused(tmp_path, capsys):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(json.dumps({"id": "s1", "name": "s1", "instruction": "Say hi.",
                                 "instances": [{"input": "", "output": "hi"}],
                                 "is_classification": False}) + "\n")
    before = seeds.read_bytes()
    code, _, err = cli(capsys, "export", "--seeds", seeds, "-o", seeds)
    assert_one_line_error(code, err, "-o", "is the input --seeds")
    assert seeds.read_bytes() == before


def test_export_seeds_into_a_run_is_refused(tmp_path, capsys):
    run = make_run(tmp_path)
    before = snapshot(run)
    code, _, err = cli(capsys, "export", "--seeds", "-o", run / "tasks.jsonl")
    assert_one_line_error(code, err, "inside the run directory")
    assert snapshot(run) == before


@pytest.mark.parametrize("case", ["out-is-in", "rejects-is-out", "rejects-is-in",
                                  "out-is-against", "out-in-run"])
def test_dedup_outputs_onto_inputs_each_other_or_a_run_are_refused(tmp_path, capsys, case):
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"Write word {i} down."}) + "\n"
                            for i in range(3)))
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(json.dumps({"instruction": "Say hi."}) + "\n")
    run = make_run(tmp_path)
    other = tmp_path / "a.jsonl"
    args = {"out-is-in": ["-o", data],
            "rejects-is-out": ["-o", other, "--rejects", other],
            "rejects-is-in": ["-o", other, "--rejects", data],
            "out-is-against": ["-o", seeds, "--against", seeds],
            "out-in-run": ["-o", run / "instructions.jsonl"]}[case]
    before = snapshot(tmp_path)
    code, out, err = cli(capsys, "dedup", data, *args)
    assert_one_line_error(code, err)
    assert out == ""
    assert snapshot(tmp_path) == before


def test_dedup_through_a_hard_link_to_its_input_is_refused(tmp_path, capsys):
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"instruction": "Say hi."}) + "\n")
    link = tmp_path / "link.jsonl"
    link.hardlink_to(data)
    code, _, err = cli(capsys, "dedup", data, "-o", link)
    assert_one_line_error(code, err, "is the input IN")


def test_hf_export_refuses_a_users_folder_and_rewrites_its_own(tmp_path, capsys):
    pytest.importorskip("pyarrow")
    run = make_run(tmp_path)
    users = tmp_path / "mine"
    users.mkdir()
    (users / "notes.txt").write_text("keep me")
    code, _, err = cli(capsys, "export", run, "--format", "hf", "-o", users)
    assert_one_line_error(code, err, str(users), "did not create", "notes.txt")
    assert sorted(p.name for p in users.iterdir()) == ["notes.txt"]
    own = tmp_path / "hf"
    assert cli(capsys, "export", run, "--format", "hf", "-o", own)[0] == 0
    assert (own / OUTPUT_MARKER).is_file() and (own / "README.md").is_file()
    assert cli(capsys, "export", run, "--format", "hf", "-o", own)[0] == 0  # its own: again
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli(capsys, "export", run, "--format", "hf", "-o", empty)[0] == 0


def test_hf_export_into_a_run_or_around_its_run_is_refused(tmp_path, capsys):
    pytest.importorskip("pyarrow")
    run = make_run(tmp_path)
    before = snapshot(run)
    code, _, err = cli(capsys, "export", run, "--format", "hf", "-o", run)
    assert_one_line_error(code, err, "inside the run directory")
    code, _, err = cli(capsys, "export", run, "--format", "hf", "-o", run / "hf")
    assert_one_line_error(code, err, "inside the run directory")
    assert snapshot(run) == before


def test_report_refuses_a_report_folder_holding_the_users_files(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from selfinstruct.analysis import missing

    if missing():  # (analysis_available is switched off for this module's runs)
        pytest.skip("needs selfinstruct[analysis]")
    run = make_run(tmp_path)
    (run / "report").mkdir()
    (run / "report" / "draft.docx").write_text("mine")
    code, _, err = cli(capsys, "report", run)
    assert_one_line_error(code, err, "draft.docx", "did not create")
    assert sorted(p.name for p in (run / "report").iterdir()) == ["draft.docx"]
    (run / "report" / "draft.docx").unlink()  # an empty folder: the report is written,
    code, _, err = cli(capsys, "report", run)  # marked, and may be written again
    assert code == 0, err
    assert (run / "report" / "index.html").is_file()
    assert (run / "report" / ".selfinstruct-output").is_file()
    assert cli(capsys, "report", run)[0] == 0


def test_eval_and_finetune_outputs_inside_a_run_are_refused(tmp_path, capsys):
    run = make_run(tmp_path)
    data = tmp_path / "data.jsonl"
    data.write_text("{}\n")
    before = snapshot(run)
    for argv in (["eval", "superni", "score", "--data", data, "--predictions", data,
                  "-o", run / "manifest.json"],
                 ["eval", "superni", "score", "--data", data, "--predictions", data,
                  "-o", data],
                 ["eval", "superni", "compare", "--data", data, "--arm", f"a={data}",
                  "--out", run],
                 ["finetune", "--data", data, "--out", run / "ft"]):
        code, _, err = cli(capsys, *argv)
        assert_one_line_error(code, err)
    assert snapshot(run) == before


# --- 2. a dead server never ends as "finished" -------------------------------------------

def _run(capsys, server: FakeServer, run: Path, *extra) -> tuple[int, str, str]:
    return cli(capsys, "run", "--out", run, "--base-url", server.url, "--model", "fake",
               "--num-instructions", "4", "--quiet", *extra)


def _exports(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run / "exports").glob("*"))}


def test_a_server_that_dies_ends_incomplete_and_a_resume_fills_in_identically(
        tmp_path, capsys):
    with FakeServer(deterministic=True) as server:
        code, _, err = _run(capsys, server, tmp_path / "whole")
        assert code == 0, err
        total = server.requests
    whole = _exports(tmp_path / "whole")
    assert whole["alpaca.json"] != b"[]\n"

    run = tmp_path / "broken"
    with FakeServer(deterministic=True, dead_after=total // 2) as server:
        started = time.monotonic()
        code, _, err = _run(capsys, server, run, "--give-up-after", "1")
        took = time.monotonic() - started
        assert code == 4, err
        assert "Traceback" not in err
        assert "incomplete" in err and "--give-up-after" in err
        assert "asked" in err and "answered" in err and "last error" in err
        assert took < 10, took  # gave up instead of retrying every remaining request
        assert server.dropped < 10
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["status"] == "incomplete"
        assert not (run / "exports").exists() or not any((run / "exports").iterdir())
        assert "exports" not in manifest

        server.revive()  # the server is back: the same command finishes the run
        code, _, err = _run(capsys, server, run)
        assert code == 0, err
    assert json.loads((run / "manifest.json").read_text())["status"] == "finished"
    assert _exports(run) == whole


def test_requests_failing_for_good_end_incomplete_without_exports(tmp_path, capsys):
    run = tmp_path / "r"
    with FakeServer(mode="bad-instances") as server:
        code, _, err = _run(capsys, server, run)
        assert code == 4, err
        assert "Traceback" not in err
        assert "instances: asked" in err and "HTTP 400" in err
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["status"] == "incomplete" and "failed" in manifest["stop_reason"]
        assert not (run / "exports" / "alpaca.json").exists()
        assert (run / "failures.jsonl").read_text().count("\n") >= 1
        server.mode = "ok"  # answers instances again
        code, _, err = _run(capsys, server, run)
    assert code == 0, err
    assert json.loads((run / "manifest.json").read_text())["status"] == "finished"
    assert json.loads((run / "exports" / "alpaca.json").read_text())


def test_give_up_after_is_checked_like_every_option(tmp_path, capsys):
    with FakeServer() as server:
        code, _, err = _run(capsys, server, tmp_path / "r", "--give-up-after", "-1")
    assert_one_line_error(code, err, "--give-up-after")
    assert not (tmp_path / "r").exists()


def test_exporting_an_incomplete_run_warns(tmp_path, capsys):
    run = make_run(tmp_path, status="incomplete")
    code, _, err = cli(capsys, "export", run, "-o", tmp_path / "a.json")
    assert code == 0, err
    assert "warning" in err and "incomplete" in err and "failures.jsonl" in err


# --- 3. credentials in a URL ---------------------------------------------------------------

def _secret_forms() -> list[str]:
    import base64
    from urllib.parse import quote

    raw = ["s3cr@t-pw", "alice:s3cr@t-pw"]
    forms = set(raw) | {quote(x, safe="") for x in raw} | {
        base64.b64encode(x.encode()).decode() for x in raw}
    return sorted(forms)


def _every_byte(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("basic", [False, True])
def test_url_credentials_are_not_sent_unless_asked_and_never_stored_or_printed(
        tmp_path, capsys, monkeypatch, basic):
    if basic:
        monkeypatch.setenv("SELFINSTRUCT_URL_CREDENTIALS", "basic")
    run = tmp_path / "r"
    with FakeServer(mode="echo-auth") as server:
        url = server.url.replace("http://", "http://alice:s3cr%40t-pw@")
        code, out, err = cli(capsys, "run", "--out", run, "--base-url", url, "--model",
                             "fake", "--num-instructions", "2", "--max-requests", "2",
                             "--quiet")
        assert code == 4, err
        code, pout, perr = cli(capsys, "run", "--preview", "--base-url", url, "--model",
                               "fake", "--quiet")
        sent = list(server.authorizations)
    assert sent
    assert any(h.startswith("Basic ") for h in sent) == basic  # only when asked
    assert "who are you" in (run / "failures.jsonl").read_text()  # the echo did land
    stored = _every_byte(run).decode("utf-8", "replace")
    for form in _secret_forms():
        for where, text in (("run directory", stored), ("run output", out + err),
                            ("preview", pout + perr)):
            assert form not in text, (form, where)


# --- 5. --out on a user's folder; records without an id; 9. a dead server on a new --out --

def test_run_out_on_a_non_empty_folder_that_is_not_a_run_is_refused(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("keep me")
    (folder / "data.csv").write_text("1,2\n")
    before = snapshot(folder)
    with FakeServer() as server:
        for extra in ((), ("--force-new",)):
            code, _, err = _run(capsys, server, folder, *extra)
            assert_one_line_error(code, err, str(folder), "not a run directory",
                                  "data.csv", "thesis.tex")
        assert server.requests == 0
    assert snapshot(folder) == before and sorted(p.name for p in folder.iterdir()) == [
        "data.csv", "thesis.tex"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with FakeServer() as server:
        assert _run(capsys, server, empty)[0] == 0


@pytest.mark.parametrize("name", ["instructions.jsonl", "tasks.jsonl"])
@pytest.mark.parametrize("line", ['{"instruction": "no id here"}', "[1, 2]"])
def test_a_record_without_an_id_is_one_line_naming_file_and_line(tmp_path, capsys, name,
                                                                  line):
    run = tmp_path / "r"
    with FakeServer() as server:
        assert _run(capsys, server, run)[0] == 0
        expected_line = (run / name).read_text().count("\n") + 1
        with open(run / name, "a") as handle:
            handle.write(line + "\n")
        before = snapshot(run)
        if name == "instructions.jsonl":  # the run reads it to resume
            code, _, err = _run(capsys, server, run)
        else:  # the run rewrites tasks.jsonl whole; export reads it
            code, _, err = cli(capsys, "export", run, "-o", tmp_path / "x.json")
    assert_one_line_error(code, err, f"{run / name}:{expected_line}")
    after = snapshot(run)
    for path in ("instructions.jsonl", "tasks.jsonl", "cache.sqlite", "exports/alpaca.json"):
        assert after[path] == before[path]


def test_a_dead_base_url_on_a_new_out_leaves_nothing_behind(tmp_path, capsys):
    with FakeServer() as server:
        url = server.url
    for out in (tmp_path / "new", tmp_path / "deep" / "new"):
        code, _, err = cli(capsys, "run", "--out", out, "--base-url", url, "--model", "fake",
                           "--quiet")
        assert_one_line_error(code, err, "cannot connect")
        assert not out.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = cli(capsys, "generate", "--out", empty, "--base-url", url, "--model",
                       "fake", "--quiet")
    assert_one_line_error(code, err, "cannot connect")
    assert list(empty.iterdir()) == []


# --- 6. --prompts fine-tuning templates are checked when the run opens ---------------------

def _prompts_with(tmp_path: Path, change) -> Path:
    import shutil

    from selfinstruct.prompts.templates import bundled_dir

    folder = tmp_path / "prompts"
    shutil.copytree(bundled_dir(), folder)
    path = folder / "finetuning_templates.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return folder


def _set(key, value):
    return lambda data: data.__setitem__(key, value)


@pytest.mark.parametrize("change,fragment", [
    (_set("finetuning_templates_with_input", []), "non-empty list"),
    (_set("finetuning_templates_without_input", [["{instruction} {colour}", "{output}"]]),
     "unknown field {colour}"),
    (_set("finetuning_templates_without_input", [["{instruction} {input}", "{output}"]]),
     "unknown field {input}"),
    (_set("finetuning_templates_with_input", [["{instruction { {input}", "{output}"]]),
     "not a valid template"),
    (_set("finetuning_templates_with_input", [["{instruction}", "{output}", "x"]]),
     "[prompt, completion] pair"),
    (_set("finetuning_templates_with_input", "{instruction}"), "non-empty list"),
    (_set("finetuning_templates_with_input", [["Input: {input}", "{output}"]]),
     "lacks {instruction}"),
    (_set("finetuning_templates_with_input", [["{instruction}", "done"]]), "lacks {output}"),
    (_set("human_eval_prompt_without_input", 7), "must be a string"),
    (_set("human_eval_prompt_with_input", "{instruction} {0}"), "unknown field {0}"),
    (_set("finetuning_templates_without_input", [["{instruction!r}", "{output}"]]),
     "no conversion or format spec"),
])
def test_bad_finetuning_templates_are_refused_before_any_model_call(tmp_path, capsys,
                                                                    change, fragment):
    prompts = _prompts_with(tmp_path, change)
    run = tmp_path / "r"
    with FakeServer() as server:
        code, _, err = _run(capsys, server, run, "--prompts", prompts)
        assert server.requests == 0
    assert_one_line_error(code, err, "finetuning_templates.json", fragment)
    assert not run.exists()


# --- 7. deep nesting and huge integers ------------------------------------------------------

DEEP_JSON = "[" * 100_000 + "]" * 100_000
HUGE_INT = "9" * 100_000
NESTED_65 = "[" * 65 + "]" * 65


@pytest.mark.parametrize("what", ["deep", "huge", "nested65"])
@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_a_config_file_too_deep_or_with_a_huge_integer_is_one_line(tmp_path, capsys, what,
                                                                   suffix):
    value = {"deep": DEEP_JSON, "huge": HUGE_INT, "nested65": NESTED_65}[what]
    config = tmp_path / f"c{suffix}"
    config.write_text(f'{{"seed": {value}}}' if suffix == ".json" else f"seed = {value}\n")
    code, _, err = cli(capsys, "run", "--out", tmp_path / "r", "--config", config, "--quiet")
    fragment = "integer longer than 4300 digits" if what == "huge" else "nested deeper than 64"
    assert_one_line_error(code, err, str(config), fragment)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("value", [DEEP_JSON, HUGE_INT, NESTED_65])
def test_seeds_and_dedup_input_too_deep_or_with_a_huge_integer_are_one_line(tmp_path,
                                                                             capsys, value):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(json.dumps({"id": "s1", "instruction": "Say hi.", "instances": [
        {"input": "", "output": "hi"}], "is_classification": False})
        + "\n" + f'{{"id": "s2", "x": {value}}}\n')
    code, _, err = cli(capsys, "export", "--seeds", seeds, "-o", tmp_path / "a.json")
    assert_one_line_error(code, err, f"{seeds}:2", "refusing to read it")
    code, _, err = cli(capsys, "dedup", seeds, "-o", tmp_path / "b.jsonl")
    assert_one_line_error(code, err, f"{seeds}:2", "refusing to read it")
    listed = tmp_path / "list.json"
    listed.write_text(f'[{{"instruction": "a", "x": {value}}}]')
    code, _, err = cli(capsys, "dedup", listed, "-o", tmp_path / "c.jsonl")
    assert_one_line_error(code, err, str(listed), "refusing to read it")
    assert not (tmp_path / "a.json").exists() and not (tmp_path / "b.jsonl").exists()


@pytest.mark.parametrize("value", [DEEP_JSON, HUGE_INT, NESTED_65])
@pytest.mark.parametrize("where", ["manifest.json", "tasks.jsonl"])
def test_a_run_file_too_deep_or_with_a_huge_integer_is_one_line(tmp_path, capsys, value,
                                                                where):
    run = make_run(tmp_path)
    if where == "manifest.json":
        manifest = (run / "manifest.json").read_text()
        (run / "manifest.json").write_text(manifest.replace('"resumed": 0',
                                                            f'"resumed": 0, "x": {value}'))
    else:
        with open(run / "tasks.jsonl", "a") as handle:
            handle.write(f'{{"id": "x", "x": {value}}}\n')
    before = snapshot(run)
    code, _, err = cli(capsys, "export", run, "-o", tmp_path / "a.json")
    assert_one_line_error(code, err, str(run / where))
    assert "refusing" in err or "damaged" in err
    assert snapshot(run) == before


# --- 8. signals (real processes) -------------------------------------------------------------

def _slow_server():
    """A FakeServer in a process of its own whose every completion takes 60 s."""
    import subprocess
    import sys

    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve().parents[2] / "fake_openai_server.py"),
         "ok", "60"], stdout=subprocess.PIPE, text=True)
    return server, server.stdout.readline().strip()


def _start_run(run: Path, url: str):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "selfinstruct", "run", "--out", str(run), "--base-url", url,
         "--model", "fake", "--num-instructions", "4", "--max-concurrency", "4", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until its requests are in flight
        manifest = run / "manifest.json"
        if manifest.exists() and '"running"' in manifest.read_text():
            time.sleep(1.0)
            return proc
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    raise AssertionError("the run never started")


@pytest.mark.parametrize("signals,code,word", [
    (["SIGINT"], 130, "interrupted"),
    (["SIGTERM"], 143, "terminated (SIGTERM)"),
    (["SIGINT", "SIGINT"], 130, "interrupted"),
])
def test_a_signal_stops_the_run_at_once_and_saves_it(tmp_path, signals, code, word):
    import signal

    server, url = _slow_server()
    try:
        run = tmp_path / "r"
        proc = _start_run(run, url)
        started = time.monotonic()
        for name in signals:
            proc.send_signal(getattr(signal, name))
            time.sleep(0.05)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - started
    finally:
        server.kill()
        server.wait(timeout=30)
    assert proc.returncode == code, err
    assert took < 2, took  # about a second at most, not the 60 s of the requests in flight
    assert "Traceback" not in err
    assert word in err
    if len(signals) == 1:  # the first signal's handling completed: the state is saved
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["status"] == "interrupted"
        assert manifest["sessions"][-1]["error"] in ("KeyboardInterrupt", "Terminated")
        assert "usage" in manifest["sessions"][-1]


# --- 9. messages ------------------------------------------------------------------------------

def test_a_seed_file_edited_between_sessions_is_named_as_the_cause(tmp_path, capsys):
    from selfinstruct.seeds import bundled_seeds_path

    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(bundled_seeds_path().read_text())
    run = tmp_path / "r"
    with FakeServer() as server:
        assert _run(capsys, server, run, "--seeds", seeds)[0] == 0
        lines = seeds.read_text().splitlines(keepends=True)
        record = json.loads(lines[0])
        record["instruction"] = "Write a limerick about a teapot."
        seeds.write_text(json.dumps(record) + "\n" + "".join(lines[1:]))
        before = snapshot(run)
        code, _, err = cli(capsys, "run", "--out", run, "--base-url", server.url, "--model",
                           "fake", "--num-instructions", "6", "--quiet", "--seeds", seeds)
        line = assert_one_line_error(code, err, "--seeds", str(seeds),
                                     "changed since this run started")
        assert "cache" not in line and "answered differently" not in line
        assert snapshot(run) == before
        seeds.write_text("".join(lines))  # restored: the run resumes
        code, _, err = cli(capsys, "run", "--out", run, "--base-url", server.url, "--model",
                           "fake", "--num-instructions", "6", "--quiet", "--seeds", seeds)
        assert code == 0, err


def test_a_full_disk_under_the_cache_says_so_without_advising_to_move_it(tmp_path, capsys,
                                                                          monkeypatch):
    import sqlite3

    from selfinstruct.backends import cache as cache_module

    class FullDisk:
        def __init__(self, db):
            self.db = db

        def execute(self, sql, *args):
            if sql.startswith("INSERT OR REPLACE"):
                raise sqlite3.OperationalError("database or disk is full")
            return self.db.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self.db, name)

    original = cache_module.ResponseCache.put

    def put(self, key, completion):
        if not isinstance(self._db, FullDisk):
            self._db = FullDisk(self._db)
        return original(self, key, completion)

    monkeypatch.setattr(cache_module.ResponseCache, "put", put)
    run = tmp_path / "r"
    with FakeServer() as server:
        code, _, err = _run(capsys, server, run)
    line = assert_one_line_error(code, err, str(run / "cache.sqlite"), "no space left")
    assert "move it away" not in line and "afresh" not in line


def test_the_review_database_in_a_read_only_folder_names_the_path(tmp_path, monkeypatch):
    import sqlite3

    from selfinstruct.errors import UserError
    from selfinstruct.review import store

    def refuse(*args, **kwargs):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(store.sqlite3, "connect", refuse)
    with pytest.raises(UserError) as caught:
        store.ReviewStore(tmp_path)
    message = str(caught.value)
    assert str(tmp_path / store.DB_NAME) in message and "readonly" in message
    assert "\n" not in message


def test_report_on_a_run_still_being_written_warns(tmp_path, capsys, monkeypatch):
    """Through the CLI; the report itself (matplotlib, spaCy) is stood in for, since the
    warning comes before it."""
    import selfinstruct.analysis
    from selfinstruct.analysis import report

    monkeypatch.setattr(selfinstruct.analysis, "require_analysis", lambda command: None)
    monkeypatch.setattr(report, "write_report",
                        lambda run, **kw: Path(run) / "report" / "index.html")
    run = make_run(tmp_path, status="running")
    code, out, err = cli(capsys, "report", run)
    assert code == 0 and "index.html" in out
    assert err.startswith("selfinstruct: warning: ") and "not finished" in err
    assert str(run) in err
    finished = make_run(tmp_path, name="done")
    code, _, err = cli(capsys, "report", finished)
    assert code == 0 and err == ""


def test_the_stage_commands_end_incomplete_too(tmp_path, capsys):
    run = tmp_path / "r"
    with FakeServer(mode="bad-instances") as server:
        common = ["--base-url", server.url, "--model", "fake"]
        code, _, err = cli(capsys, "generate", "--out", run, *common, "--num-instructions",
                           "4", "--quiet")
        assert code == 0, err
        assert cli(capsys, "classify", run, "--quiet")[0] == 0
        code, _, err = cli(capsys, "instances", run, "--quiet")
        assert code == 4, err
        assert "incomplete" in err and "instances: asked" in err and "HTTP 400" in err
        server.mode = "ok"
        code, _, err = cli(capsys, "instances", run, "--quiet")
        assert code == 0, err
