"""Append-only logs: a torn last line is dropped, anything else corrupt is reported."""

import json
import os

import pytest

from selfinstruct.errors import UserError
from selfinstruct.files import atomic_write_text
from selfinstruct.run.rundir import JsonlLog


def test_append_and_read(tmp_path):
    log = JsonlLog(tmp_path / "a.jsonl")
    log.append([{"id": 1}, {"id": 2}])
    log.append([{"id": "é"}])
    assert log.recover() == [{"id": 1}, {"id": 2}, {"id": "é"}]


def test_torn_last_line_is_dropped_and_truncated(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"id": 1}) + "\n" + '{"id": 2, "te')
    log = JsonlLog(path)
    assert log.recover() == [{"id": 1}]
    assert path.read_text() == json.dumps({"id": 1}) + "\n"
    log.append([{"id": 3}])
    assert log.recover() == [{"id": 1}, {"id": 3}]


def test_corrupt_middle_line_is_an_error(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"id": 1}\ngarbage\n{"id": 2}\n')
    with pytest.raises(UserError, match=r"a.jsonl:2: corrupt record"):
        JsonlLog(path).recover()


def test_atomic_write_leaves_no_temp_files(tmp_path):
    atomic_write_text(tmp_path / "x.json", "hello")
    atomic_write_text(tmp_path / "x.json", "world")
    assert (tmp_path / "x.json").read_text() == "world"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_read_leaves_a_torn_line_in_place(tmp_path):
    path = tmp_path / "a.jsonl"
    content = json.dumps({"id": 1}) + "\n" + '{"id": 2'
    path.write_text(content)
    assert JsonlLog(path).read() == [{"id": 1}]
    assert path.read_text() == content  # a reader never truncates a run being written


def test_atomic_write_removes_only_temp_files_of_dead_writers(tmp_path):
    import subprocess
    import sys

    # a process of its own: the pid of a writer known to be dead
    dead_writer = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_writer.wait()
    orphan = tmp_path / f".x.json.{dead_writer.pid}.abc123.tmp"
    live = tmp_path / f".x.json.{os.getppid()}.def456.tmp"  # our parent: alive, may rename
    other_target = tmp_path / f".y.json.{dead_writer.pid}.abc123.tmp"
    for path in (orphan, live, other_target):
        path.write_text("partial")
    atomic_write_text(tmp_path / "x.json", "whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["x.json", live.name, other_target.name])
    assert (tmp_path / "x.json").read_text() == "whole"
