"""A real full disk and a real read-only mount, not simulated: small tmpfs mounts made
for the test (the tests run as root). Where the machine does not allow mounting, they
skip and say why."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cli_in_process import cli
from fake_openai_server import FakeServer
from test_nothing_lost import assert_one_line_error, make_run, snapshot


def _mount(folder: Path, size: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"this machine does not allow a tmpfs mount here: {proc.stderr.strip()}")


def _remount(folder: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True)


@pytest.fixture
def tmpfs(tmp_path):
    mounted: list[Path] = []

    def make(name: str, size: str) -> Path:
        folder = tmp_path / name
        _mount(folder, size)
        mounted.append(folder)
        return folder

    yield make
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _run(capsys, server: FakeServer, run: Path) -> tuple[int, str, str]:
    return cli(capsys, "run", "--out", run, "--base-url", server.url, "--model", "fake",
               "--num-instructions", "40", "--quiet")


def test_a_real_full_disk_stops_with_one_line_and_the_run_resumes(tmpfs, tmp_path, capsys):
    disk = tmpfs("disk", "160k")
    run = disk / "run"
    with FakeServer(deterministic=True) as server:
        code, _, err = _run(capsys, server, run)
        line = assert_one_line_error(code, err, "no space left")
        assert str(disk) in line and "move it away" not in line
        kept = [json.loads(x) for x in (run / "instructions.jsonl").read_text().splitlines()
                if x.strip()]
        _remount(disk, "size=20m")  # space freed: the same command finishes the run
        code, _, err = _run(capsys, server, run)
        assert code == 0, err
    after = [json.loads(x) for x in (run / "instructions.jsonl").read_text().splitlines()]
    assert after[:len(kept)] == kept  # nothing written before the full disk was lost
    assert len({r["id"] for r in after}) == len(after) == 40  # nor duplicated
    assert json.loads((run / "manifest.json").read_text())["status"] == "finished"


def test_the_review_database_on_a_real_read_only_mount_names_the_path(tmpfs):
    from selfinstruct.errors import UserError
    from selfinstruct.review.store import DB_NAME, ReviewStore

    disk = tmpfs("ro", "1m")
    run = make_run(disk)
    before = snapshot(run)
    _remount(disk, "ro")
    with pytest.raises(UserError) as caught:
        ReviewStore(run)
    message = str(caught.value)
    assert str(run / DB_NAME) in message and "\n" not in message
    assert snapshot(run) == before
