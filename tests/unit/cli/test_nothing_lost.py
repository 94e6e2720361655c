"""Nothing lost, nothing clobbered, one clear line and exit code 2.

Each test is one case of the reliability issue, through the CLI (``selfinstruct.cli.main``
in process) wherever the case concerns the CLI. No model is loaded: runs are built by
hand, or made against ``fake_openai_server.FakeServer``, a tiny OpenAI-compatible server
in a thread. RELIABILITY.md lists the cases and these tests.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from cli_in_process import cli
from fake_openai_server import FakeServer

from selfinstruct.errors import UserError
from selfinstruct.files import atomic_write_text, check_output_path
from selfinstruct.run.config import RunConfig, differences
from selfinstruct.run.rundir import LOCK_NAME, RunDir

TASKS = [
    {"id": "000000.00", "instruction": "Name three colours of the rainbow.",
     "instances": [{"input": "", "output": "Red, green and blue."}],
     "is_classification": False, "name": None},
    {"id": "000000.01", "instruction": "Is this sentence a question or a statement?",
     "instances": [{"input": "Is it raining?", "output": "question"}],
     "is_classification": True, "name": None},
]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(autouse=True)
def _no_report(monkeypatch):
    """``run`` writes an HTML report when the analysis extra is installed; not needed here
    and it costs seconds per run."""
    import selfinstruct.analysis

    monkeypatch.setattr(selfinstruct.analysis, "analysis_available", lambda: False)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def make_run(root: Path, *, status: str = "finished", name: str = "r") -> Path:
    """A finished run directory, built by hand: manifest, one instruction, tasks."""
    run = root / name
    run.mkdir(parents=True)
    manifest = {"format_version": 1, "started_at": "2026-01-01T00:00:00+00:00",
                "config": RunConfig(num_instructions=2).as_dict(), "seed": 42,
                "status": status, "resumed": 0, "usage": {}}
    (run / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (run / "instructions.jsonl").write_text(
        "".join(json.dumps({"id": t["id"], "instruction": t["instruction"]}) + "\n"
                for t in TASKS))
    (run / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in TASKS))
    return run


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder``: its bytes and mode."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mode)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_one_line_error(code: int, err: str, *fragments: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("selfinstruct: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def fake_run(capsys, server: FakeServer, run: Path, *extra: str) -> tuple[int, str, str]:
    return cli(capsys, "run", "--out", run, "--base-url", server.url, "--model", "fake",
               "--num-instructions", "2", "--quiet", *extra)


# --- 1. the writer never replaces what is not a regular file --------------------------

def _special(tmp_path: Path, kind: str) -> Path:
    target = tmp_path / f"target-{kind}"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "symlink":
        (tmp_path / "real.json").write_text("mine\n")
        target.symlink_to(tmp_path / "real.json")
    elif kind == "directory":
        target.mkdir()
    return target


@pytest.mark.parametrize("kind,word", [("fifo", "named pipe"), ("symlink", "symbolic link"),
                                       ("directory", "a directory")])
def test_export_refuses_a_target_that_is_not_a_regular_file(tmp_path, capsys, kind, word):
    run = make_run(tmp_path)
    target = _special(tmp_path, kind)
    before = snapshot(tmp_path)
    code, _, err = cli(capsys, "export", run, "-o", target)
    assert_one_line_error(code, err, str(target), word, "not a regular file")
    assert snapshot(tmp_path) == before  # the link's file too; and no temporary left
    assert {"fifo": stat.S_ISFIFO, "symlink": stat.S_ISLNK, "directory": stat.S_ISDIR}[kind](
        os.lstat(target).st_mode)


@pytest.mark.parametrize("kind", ["fifo", "symlink", "directory"])
def test_dedup_refuses_a_target_that_is_not_a_regular_file(tmp_path, capsys, kind):
    src = tmp_path / "in.jsonl"
    src.write_text('{"instruction": "Write a poem about the sea."}\n')
    target = _special(tmp_path, kind)
    before = snapshot(tmp_path)
    for flag in ("-o", "--rejects"):
        args = ["dedup", src, "-o", target] if flag == "-o" else \
            ["dedup", src, "-o", tmp_path / "out.jsonl", "--rejects", target]
        code, _, err = cli(capsys, *args)
        assert_one_line_error(code, err, str(target), "not a regular file")
        assert snapshot(tmp_path) == before  # refused before any output was written


def test_dev_null_and_devices_are_refused_without_writing():
    # checked, never written: a regression here must not replace the real /dev/null
    with pytest.raises(UserError, match="/dev/null: is a character device"):
        check_output_path("/dev/null")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


# --- 7. modes: the umask's default for a new file, the old mode for a replaced one -----

def test_new_files_get_the_umask_default_and_replaced_files_keep_their_mode(
        tmp_path, capsys, umask_022):
    run = make_run(tmp_path)
    assert cli(capsys, "export", run)[0] == 0
    assert stat.S_IMODE((run / "exports" / "alpaca.json").stat().st_mode) == 0o644
    os.chmod(run / "exports" / "alpaca.json", 0o640)
    assert cli(capsys, "export", run)[0] == 0
    assert stat.S_IMODE((run / "exports" / "alpaca.json").stat().st_mode) == 0o640
    mine = tmp_path / "mine.jsonl"
    mine.write_text("old\n")
    os.chmod(mine, 0o664)
    assert cli(capsys, "export", run, "--format", "chat", "-o", mine)[0] == 0
    assert stat.S_IMODE(mine.stat().st_mode) == 0o664 and mine.read_text() != "old\n"
    os.umask(0o077)
    assert cli(capsys, "export", run, "-o", tmp_path / "private.json")[0] == 0
    assert stat.S_IMODE((tmp_path / "private.json").stat().st_mode) == 0o600
    src = tmp_path / "in.jsonl"
    src.write_text('{"instruction": "Write a poem about the sea."}\n')
    os.umask(0o022)
    assert cli(capsys, "dedup", src, "-o", tmp_path / "kept.jsonl")[0] == 0
    assert stat.S_IMODE((tmp_path / "kept.jsonl").stat().st_mode) == 0o644


def test_a_run_writes_its_manifest_tasks_and_exports_0644(tmp_path, capsys, umask_022):
    with FakeServer() as server:
        code, _, err = fake_run(capsys, server, tmp_path / "r")
    assert code == 0, err
    run = tmp_path / "r"
    for name in ("manifest.json", "tasks.jsonl", "instance_rejects.jsonl",
                 "exports/alpaca.json", "exports/chat.jsonl", "exports/prompt_completion.jsonl"):
        assert stat.S_IMODE((run / name).stat().st_mode) == 0o644, name


# --- 2. one writer per run directory ---------------------------------------------------

# Another process holds the run's lock (the lock is per process, re-entrant within one):
# these tests start one, and kill it, on purpose.
HOLD_LOCK = ("import sys, time\n"
             "from selfinstruct.run.rundir import RunDir\n"
             "lock = RunDir(sys.argv[1]).lock()\n"
             "print('locked', flush=True)\n"
             "time.sleep(120)\n")


def test_a_second_writer_is_refused_and_a_killed_holder_never_blocks(tmp_path, capsys):
    run = tmp_path / "r"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with FakeServer() as server:
            before = snapshot(tmp_path)
            code, _, err = fake_run(capsys, server, run)
            assert_one_line_error(code, err, f"process {holder.pid} is writing this run")
            assert snapshot(tmp_path) == before and server.requests == 0
            holder.send_signal(signal.SIGKILL)  # the lock file stays; the lock goes with it
            holder.wait(timeout=30)
            assert (run / LOCK_NAME).exists()
            code, _, err = fake_run(capsys, server, run)
            assert code == 0, err
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_two_runs_on_one_directory_do_not_multiply_records(tmp_path, capsys):
    """The issue's reproduction: two ``selfinstruct`` writers on the same --out at once."""
    run = tmp_path / "r"
    # the first writer is a process of its own: a second writer in this process would share
    # its lock
    with FakeServer(delay=0.5) as server:
        first = subprocess.Popen(
            [sys.executable, "-m", "selfinstruct", "generate", "--out", str(run),
             "--base-url", server.url, "--model", "fake", "--num-instructions", "2",
             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and first.poll() is None:
                lock = run / LOCK_NAME
                if lock.exists() and lock.read_text().strip() == str(first.pid):
                    break
                time.sleep(0.05)
            assert first.poll() is None, first.communicate()
            code, _, err = fake_run(capsys, server, run)
            assert_one_line_error(code, err, f"process {first.pid} is writing this run")
            _, first_err = first.communicate(timeout=300)
            assert first.returncode == 0, first_err
        finally:
            first.kill()
            first.wait()
        code, _, err = fake_run(capsys, server, run)  # now it resumes, alone
        assert code == 0, err
    kept = [json.loads(line) for line in (run / "instructions.jsonl").read_text().splitlines()]
    assert len(kept) == 2 and len({r["id"] for r in kept}) == 2


def test_the_lock_is_reentrant_within_one_process_and_released_on_close(tmp_path):
    first = RunDir(tmp_path).lock()
    second = RunDir(tmp_path).lock()  # the same process: shares the hold
    first.release()
    probe = subprocess.run([sys.executable, "-c", HOLD_LOCK.replace("time.sleep(120)", ""),
                            str(tmp_path)], capture_output=True, text=True, timeout=120,
                           check=False)
    assert probe.returncode != 0 and f"process {os.getpid()}" in probe.stderr
    second.release()
    probe = subprocess.run([sys.executable, "-c", HOLD_LOCK.replace("time.sleep(120)", ""),
                            str(tmp_path)], capture_output=True, text=True, timeout=120,
                           check=False)
    assert probe.returncode == 0 and probe.stdout.strip() == "locked"


# --- 3. read-only commands never write the run directory; usage adds up -----------------

def test_export_elsewhere_or_failing_leaves_the_run_directory_untouched(tmp_path, capsys):
    run = make_run(tmp_path)
    before = snapshot(run)
    mtime = (run / "manifest.json").stat().st_mtime_ns
    assert cli(capsys, "export", run, "-o", tmp_path / "a.json")[0] == 0
    code, _, err = cli(capsys, "export", run, "--reviewed", "-o", tmp_path / "b.json")
    assert_one_line_error(code, err, "review.sqlite")
    assert snapshot(run) == before and (run / "manifest.json").stat().st_mtime_ns == mtime
    assert not (run / LOCK_NAME).exists()
    assert cli(capsys, "export", run)[0] == 0  # into RUN/exports: that file only
    after = snapshot(run)
    assert set(after) - set(before) == {"exports/alpaca.json"}
    assert {k: v for k, v in after.items() if k in before} == before


def test_export_of_a_run_it_cannot_write_is_one_line(tmp_path, capsys, monkeypatch):
    run = make_run(tmp_path)
    if IS_ROOT:  # root writes through permissions: simulate the read-only directory
        def refuse(*args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied", str(run / "exports"))

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
        (run / "exports").mkdir()
    else:
        (run / "exports").mkdir()
        os.chmod(run / "exports", 0o555)
    code, _, err = cli(capsys, "export", run)
    assert_one_line_error(code, err, str(run / "exports" / "alpaca.json"), "Permission denied")
    os.chmod(run / "exports", 0o755)


def test_usage_adds_up_across_resumes_and_a_failed_resume_keeps_the_status(tmp_path, capsys):
    run = tmp_path / "r"
    with FakeServer() as server:
        assert fake_run(capsys, server, run)[0] == 0
        first = json.loads((run / "manifest.json").read_text())
        assert cli(capsys, "export", run)[0] == 0  # a read-only command: no session
        code, _, err = fake_run(capsys, server, run, "--num-instructions", "4")
        assert code == 0, err
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["resumed"] == 1 and len(manifest["sessions"]) == 2
        assert manifest["sessions"][0]["usage"] == first["usage"]
        for stage, counters in manifest["usage"].items():
            for name in ("requests", "prompt_tokens", "completion_tokens"):
                assert counters[name] == sum(s["usage"].get(stage, {}).get(name, 0)
                                             for s in manifest["sessions"])
        assert manifest["usage"]["bootstrap"]["requests"] > \
            first["usage"]["bootstrap"]["requests"]
        # a resume that fails (here the server now refuses the key) leaves it "finished"
        server.mode = "unauthorized-completions"
        code, _, err = fake_run(capsys, server, run, "--num-instructions", "6")
        assert_one_line_error(code, err, "401")
    after = json.loads((run / "manifest.json").read_text())
    assert after["status"] == "finished" and after["sessions"][-1]["error"]
    assert after["usage"]["bootstrap"]["requests"] >= manifest["usage"]["bootstrap"]["requests"]


def test_a_manifest_from_before_sessions_keeps_its_usage(tmp_path, capsys):
    run = tmp_path / "r"
    with FakeServer() as server:
        assert fake_run(capsys, server, run)[0] == 0
        manifest = json.loads((run / "manifest.json").read_text())
        old_usage = manifest["sessions"][0]["usage"]
        del manifest["sessions"]
        (run / "manifest.json").write_text(json.dumps(manifest))
        assert fake_run(capsys, server, run)[0] == 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["sessions"][0] == {"usage": old_usage}
    assert manifest["usage"]["bootstrap"]["requests"] == \
        old_usage["bootstrap"]["requests"] + manifest["sessions"][1]["usage"]["bootstrap"][
            "requests"]


# --- 4. tracebacks become one line naming the path ------------------------------------

def test_an_unreadable_seed_file_is_one_line(tmp_path, capsys, monkeypatch):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("{}\n")
    if IS_ROOT:
        real = Path.read_bytes

        def read_bytes(self):
            if self == seeds:
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
            return real(self)

        monkeypatch.setattr(Path, "read_bytes", read_bytes)
    else:
        os.chmod(seeds, 0)
    code, _, err = cli(capsys, "run", "--out", tmp_path / "r", "--seeds", seeds)
    assert_one_line_error(code, err, f"cannot read {seeds}", "Permission denied")
    assert not (tmp_path / "r").exists()


def test_out_where_no_directory_can_be_made_is_one_line(tmp_path, capsys):
    with FakeServer() as server:
        code, _, err = fake_run(capsys, server, "/proc/selfinstruct-test/r")
        assert_one_line_error(code, err, "--out: cannot create /proc/selfinstruct-test/r")
        (tmp_path / "file").write_text("x")
        code, _, err = fake_run(capsys, server, tmp_path / "file" / "r")
        assert_one_line_error(code, err, str(tmp_path / "file" / "r"))


@pytest.mark.parametrize("content,fragment", [
    (b"[1, 2]\n", "must hold a JSON object, not a list"),
    (b'{"format_version": 1, "resumed": "two"}', "field 'resumed' must be an integer"),
    (b'{"format_version": 1, "config": []}', "field 'config' must be an object"),
    (b'{"format_version": 1, "config": {"num_instructions": "five"}}',
     "config: --num-instructions: expected an integer, got the string 'five'"),
    (b'{"format_version": 1, "config": {"bootstrap_top_p": NaN}}', "holds NaN"),
    (b'{"format_version": 1, "wall_seconds": 1e999}', "field 'wall_seconds'"),
    (b'{"format_version": 1, "status": "\xff"}', ":1: not UTF-8 text"),
    (b'{"format_version": 1, "sessions": [3]}', "field 'sessions' must be a list of objects"),
])
def test_a_damaged_manifest_is_one_line_for_every_command(tmp_path, capsys, content, fragment):
    run = make_run(tmp_path)
    (run / "manifest.json").write_bytes(content)
    before = snapshot(run)
    code, _, err = cli(capsys, "export", run)
    assert_one_line_error(code, err, str(run / "manifest.json"), fragment)
    code, _, err = cli(capsys, "run", "--out", run, "--base-url", "http://127.0.0.1:9/v1",
                       "--model", "fake")
    assert_one_line_error(code, err, str(run / "manifest.json"), fragment)
    assert snapshot(run) == before


def test_a_jsonl_line_that_is_not_utf8_is_one_line(tmp_path, capsys):
    run = make_run(tmp_path)
    (run / "tasks.jsonl").write_bytes((run / "tasks.jsonl").read_bytes() + b'{"id": "\xff"}\n')
    code, _, err = cli(capsys, "export", run)
    assert_one_line_error(code, err, f"{run / 'tasks.jsonl'}:3: not UTF-8 text")
    with FakeServer() as server:
        assert fake_run(capsys, server, tmp_path / "s")[0] == 0
        log = tmp_path / "s" / "instructions.jsonl"
        log.write_bytes(log.read_bytes() + b'{"id": "x\xfe"}\n')
        code, _, err = fake_run(capsys, server, tmp_path / "s")
    assert_one_line_error(code, err, f"{log}:3: not UTF-8 text")
    assert json.loads((tmp_path / "s" / "manifest.json").read_text())["status"] == "finished"


def test_a_cache_that_is_not_a_database_is_one_line(tmp_path, capsys):
    with FakeServer() as server:
        assert fake_run(capsys, server, tmp_path / "r")[0] == 0
        cache = tmp_path / "r" / "cache.sqlite"
        for leftover in ("cache.sqlite-wal", "cache.sqlite-shm"):
            (tmp_path / "r" / leftover).unlink(missing_ok=True)
        cache.write_bytes(b"this is not a database, just some text " * 100)
        code, _, err = fake_run(capsys, server, tmp_path / "r")
    assert_one_line_error(code, err, str(cache), "the response cache cannot be used")


def test_a_full_disk_is_one_line_and_loses_nothing(tmp_path, capsys, monkeypatch):
    run = make_run(tmp_path)
    assert cli(capsys, "export", run)[0] == 0
    before = snapshot(tmp_path)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    code, _, err = cli(capsys, "export", run)
    assert_one_line_error(code, err, str(run / "exports" / "alpaca.json"),
                          "no space left on the device")
    src = tmp_path / "in.jsonl"
    src.write_text('{"instruction": "Write a poem about the sea."}\n')
    code, _, err = cli(capsys, "dedup", src, "-o", tmp_path / "out.jsonl")
    assert_one_line_error(code, err, str(tmp_path / "out.jsonl"), "no space left")
    with FakeServer() as server:
        code, _, err = fake_run(capsys, server, tmp_path / "new")
    assert_one_line_error(code, err, "no space left on the device")
    src.unlink()
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("new/")} == before


def test_os_errors_reaching_the_cli_are_one_line(capsys, monkeypatch):
    from selfinstruct.cli import os_error_line

    error = OSError(errno.ENOSPC, "No space left on device", "/x/y")
    assert os_error_line(error) == "/x/y: no space left on the device"
    from selfinstruct.cli import stages

    def boom(args):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", "/some/where")

    monkeypatch.setattr(stages, "_export_seeds", boom)
    code, _, err = cli(capsys, "export", "--seeds", "-o", "x.json")
    assert_one_line_error(code, err, "/some/where: Is a directory")


# --- 5. finite numbers only ------------------------------------------------------------

@pytest.mark.parametrize("flag", ["--bootstrap-temperature", "--bootstrap-top-p",
                                  "--similarity-threshold", "--max-cost", "--request-timeout",
                                  "--input-price", "--bootstrap-presence-penalty"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_nan_and_infinity_are_refused_on_every_float_flag(tmp_path, capsys, flag, value):
    code, _, err = cli(capsys, "run", "--out", tmp_path / "r", f"{flag}={value}",
                       "--base-url", "http://127.0.0.1:9/v1", "--model", "fake")
    assert_one_line_error(code, err, f"{flag}: must be a finite number")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("text", ["similarity_threshold = nan\n", "max_cost = inf\n",
                                  '{"request_timeout": NaN}'])
def test_nan_in_a_config_file_is_refused_naming_the_line(tmp_path, capsys, text):
    config = tmp_path / ("c.json" if text.startswith("{") else "c.toml")
    config.write_text(text)
    code, _, err = cli(capsys, "run", "--out", tmp_path / "r", "--config", config)
    assert_one_line_error(code, err, f"{config}:1:", "finite number")
    assert not (tmp_path / "r").exists()


def test_dedup_threshold_nan_is_refused(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text('{"instruction": "Write a poem about the sea."}\n')
    code, _, err = cli(capsys, "dedup", src, "-o", tmp_path / "o.jsonl", "--threshold", "nan")
    assert_one_line_error(code, err, "--threshold")
    assert not (tmp_path / "o.jsonl").exists()


def test_run_config_validate_checks_types_and_finiteness():
    with pytest.raises(UserError, match="--similarity-threshold: must be a finite number"):
        RunConfig(similarity_threshold=float("nan")).validate()
    with pytest.raises(UserError, match="--seed: expected an integer, got the boolean true"):
        RunConfig(seed=True).validate()
    config = RunConfig(request_timeout=30).validate()
    assert isinstance(config.request_timeout, float)


# --- 6. a rejected key stops the run ---------------------------------------------------

@pytest.mark.parametrize("mode,status", [("unauthorized", "401"), ("forbidden", "403"),
                                         ("unauthorized-completions", "401")])
def test_a_rejected_key_stops_the_run_with_one_line(tmp_path, capsys, mode, status):
    run = tmp_path / "r"
    with FakeServer(mode=mode) as server:
        code, out, err = fake_run(capsys, server, run)
        sent = server.requests
    line = assert_one_line_error(code, err, status, "refused the request", "--api-key-env")
    assert "max-requests" not in out + err and "max-requests" not in line
    assert sent <= 5  # stopped at once (at most the first round in flight), not 40 requests
    assert not (run / "exports").exists() and not (run / "tasks.jsonl").exists()
    failures = run / "failures.jsonl"
    assert not failures.exists() or failures.read_text() == ""
    if mode == "unauthorized-completions":  # the server answered the model list: a run
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest.get("status") in (None, "interrupted")
    else:  # the model list was refused: nothing written (issue 29)
        assert not run.exists()


# --- 10. secrets --------------------------------------------------------------------------

def _grep_tree(folder: Path, secret: str) -> list[str]:
    return [str(p) for p in folder.rglob("*")
            if p.is_file() and secret.lower().encode() in p.read_bytes().lower()]


def test_credentials_in_the_base_url_are_never_printed_or_stored(tmp_path, capsys):
    run = tmp_path / "r"
    with FakeServer() as server:
        url = server.url.replace("http://", "http://alice:s3cretPassw0rd@")
        code, out, err = cli(capsys, "run", "--out", run, "--base-url", url, "--model", "fake",
                             "--num-instructions", "2", "--quiet")
        assert code == 0, err
        assert "s3cretpassw0rd" not in (out + err).lower()
        assert _grep_tree(run, "s3cretPassw0rd") == [] and _grep_tree(run, "alice") == []
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["config"]["base_url"] == server.url.replace("http://", "http://***@")
        # resuming without the URL: it was not saved, so it must be given again
        code, _, err = cli(capsys, "run", "--out", run, "--quiet")
        assert_one_line_error(code, err, "give --base-url again")
        code, _, err = cli(capsys, "run", "--out", run, "--base-url", url, "--model", "fake",
                           "--quiet")
        assert code == 0, err
        # a refused connection names the server without its password
        closed = "http://bob:hunter2secret@127.0.0.1:9/v1"
        code, _, err = cli(capsys, "run", "--out", tmp_path / "s", "--base-url", closed,
                           "--model", "fake", "--quiet")
        assert_one_line_error(code, err, "cannot connect to http://***@127.0.0.1:9/v1")
        assert "hunter2secret" not in err and "bob" not in err
    diff = differences({"base_url": "http://u:pw123456@h/v1", "seed": 1},
                       {"base_url": "http://u:other999@h/v1", "seed": 2})
    assert diff == ["seed: 1 -> 2"]


def test_a_key_echoed_uppercased_never_reaches_a_file(tmp_path, capsys, monkeypatch):
    key = "sk-test-abcDEF123456ghi"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    run = tmp_path / "r"
    with FakeServer(mode="echo-key") as server:
        code, out, err = fake_run(capsys, server, run, "--max-requests", "2")
    assert code == 4, err  # every request failed (400): the run ends incomplete (exit 4)
    failures = (run / "failures.jsonl").read_text()
    assert "KEY=***" in failures
    assert key.lower() not in (out + err + failures).lower()
    assert _grep_tree(run, key) == []


# --- 8. --force-new ------------------------------------------------------------------------

def test_force_new_refuses_while_exports_holds_the_users_files(tmp_path, capsys):
    run = make_run(tmp_path)
    (run / "exports").mkdir()
    (run / "exports" / "alpaca.json").write_text("[]\n")
    (run / "exports" / "my_notes.txt").write_text("mine\n")
    before = snapshot(tmp_path)
    with FakeServer() as server:
        code, _, err = fake_run(capsys, server, run, "--force-new")
        assert_one_line_error(code, err, "--force-new", "my_notes.txt", "move those files")
        assert snapshot(tmp_path) == before and server.requests == 0
        (run / "exports" / "my_notes.txt").unlink()
        code, _, err = fake_run(capsys, server, run, "--force-new")
        assert code == 0, err
    assert json.loads((run / "manifest.json").read_text())["resumed"] == 0
    assert "Name three colours" not in (run / "instructions.jsonl").read_text()


def test_force_new_keeps_the_old_run_when_the_backend_does_not_answer(tmp_path, capsys):
    run = make_run(tmp_path)
    before = snapshot(tmp_path)
    code, _, err = cli(capsys, "run", "--out", run, "--force-new", "--base-url",
                       "http://127.0.0.1:9/v1", "--model", "fake", "--quiet")
    assert_one_line_error(code, err, "cannot connect")
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k != f"r/{LOCK_NAME}"} == before


# --- 11. smaller ones ---------------------------------------------------------------------

def test_seed_files_bom_bad_utf8_and_directories(tmp_path, capsys):
    from selfinstruct.seeds import load_seeds

    line = json.dumps({"id": "s1", "instruction": "Add one to the number.",
                       "is_classification": False, "instances": [{"input": "2", "output": "3"}]})
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + line.encode() + b"\n")
    assert [t.id for t in load_seeds(bom)] == ["s1"]
    assert cli(capsys, "export", "--seeds", bom, "-o", tmp_path / "s.json")[0] == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(line.encode() + b"\n" + b'{"id": "s2", "instruction": "caf\xe9"}\n')
    code, _, err = cli(capsys, "run", "--out", tmp_path / "r", "--seeds", bad)
    assert_one_line_error(code, err, f"{bad}:2: not UTF-8 text")
    bad.write_bytes(b"\xef\xbb\xbf" + line.encode() + b"\n\n" + b'{"x": "\xe9"}\n')
    code, _, err = cli(capsys, "run", "--out", tmp_path / "r", "--seeds", bad)
    assert_one_line_error(code, err, f"{bad}:3: not UTF-8 text")
    code, _, err = cli(capsys, "run", "--out", tmp_path / "r", "--seeds", tmp_path)
    assert_one_line_error(code, err, "--seeds: is a directory, not a file")
    assert not (tmp_path / "r").exists()


def test_export_refuses_a_torn_tasks_file_and_leaves_it(tmp_path, capsys):
    run = make_run(tmp_path)
    torn = (run / "tasks.jsonl").read_bytes() + b'{"id": "000000.02", "instr'
    (run / "tasks.jsonl").write_bytes(torn)
    code, _, err = cli(capsys, "export", run)
    assert_one_line_error(code, err, f"{run / 'tasks.jsonl'}:3: the last line is cut short")
    assert (run / "tasks.jsonl").read_bytes() == torn
    assert not (run / "exports").exists()


def test_an_empty_out_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for command in (["run", "--out", ""], ["generate", "--out", ""], ["export", ""],
                    ["classify", ""], ["instances", ""]):
        code, _, err = cli(capsys, *command)
        assert_one_line_error(code, err, "empty")
    assert list(tmp_path.iterdir()) == []


def test_exporting_a_run_still_being_written_warns(tmp_path, capsys):
    run = make_run(tmp_path, status="running")
    code, _, err = cli(capsys, "export", run)
    assert code == 0
    assert err.startswith("selfinstruct: warning: ") and "marked running" in err
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, _, err = cli(capsys, "export", run, "-o", tmp_path / "x.json")
        assert code == 0 and f"being written by process {holder.pid}" in err
    finally:
        holder.kill()
        holder.wait(timeout=30)
    finished = make_run(tmp_path, name="done")
    code, _, err = cli(capsys, "export", finished)
    assert code == 0 and err == ""


# --- 9. one long record cannot dominate -----------------------------------------------------

def test_one_very_long_record_dedups_in_linear_time(tmp_path, capsys):
    """200,000 characters took 68 s (the join precomputed bounds for every length up to the
    longest text, quadratic in it); now well under a second (1M characters: 0.7 s)."""
    import random

    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefghij") for _ in range(rng.randint(2, 7)))
             for _ in range(5000)]
    long_text = " ".join(rng.choice(words) for _ in range(40_000))[:200_000]
    src = tmp_path / "in.jsonl"
    records = [{"instruction": f"Write a poem about the sea number {i}."} for i in range(20)]
    records.insert(5, {"instruction": long_text})
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    started = time.perf_counter()
    code, _, _ = cli(capsys, "dedup", src, "-o", tmp_path / "out.jsonl")
    assert code == 0 and time.perf_counter() - started < 20
    assert long_text in (tmp_path / "out.jsonl").read_text()


def test_a_seed_instruction_longer_than_the_cap_is_refused(tmp_path, capsys):
    from selfinstruct.seeds import MAX_INSTRUCTION_CHARS

    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(json.dumps({"id": "s1", "instruction": "word " * MAX_INSTRUCTION_CHARS,
                                 "is_classification": False, "instances": []}) + "\n")
    code, _, err = cli(capsys, "run", "--out", tmp_path / "r", "--seeds", seeds)
    assert_one_line_error(code, err, f"{seeds}:1: field 'instruction' is 50,000 characters")


# --- the writer itself ----------------------------------------------------------------------

def test_atomic_write_names_the_path_and_cleans_up_on_error(tmp_path, monkeypatch):
    target = tmp_path / "out.json"
    target.write_text("old\n")

    def fail(*args):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(UserError, match=rf"{target}: cannot write \(Input/output error\)"):
        atomic_write_text(target, "new\n")
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "out.json"]


def test_a_run_off_a_terminal_logs_each_phase_once(tmp_path, capsys, monkeypatch):
    """stderr is not a terminal here: each phase writes a start and an end line (here
    every phase counts as long), no bar."""
    import selfinstruct.progress

    monkeypatch.setattr(selfinstruct.progress, "LINE_DELAY", 0)
    with FakeServer() as server:
        code, _, err = cli(capsys, "run", "--out", tmp_path / "r", "--base-url", server.url,
                           "--model", "fake", "--num-instructions", "2")
    assert code == 0, err
    lines = err.splitlines()
    for phase in ("load model", "generate", "classify", "instances", "export"):
        started = [k for k, line in enumerate(lines) if line.startswith(f"{phase}: started")]
        ended = [k for k, line in enumerate(lines) if line.startswith(f"{phase}: done")]
        assert len(started) == 1 and len(ended) == 1 and started[0] < ended[0], (phase, err)
