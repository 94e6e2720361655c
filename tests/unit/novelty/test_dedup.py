"""``selfinstruct dedup``: files in, files out, bad input as one line and exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from selfinstruct.cli import main
from selfinstruct.errors import UserError
from selfinstruct.novelty.dedup import dedup_file, read_records

RECORDS = [
    {"id": 1, "instruction": "Write a poem about the sea.", "extra": [1, 2]},
    {"id": 2, "instruction": "Write a short poem about the sea."},  # 12/13 vs id 1
    {"id": 3, "instruction": "Explain how a rainbow forms.", "note": "caf\u00e9 \u2028 end"},
    {"id": 4, "instruction": "Explain how a rainbow forms!"},  # same tokens as id 3
    {"id": 5, "instruction": "List five countries in Africa."},
]


def write_jsonl(path: Path, records, *, style: str = "compact") -> list[str]:
    lines = []
    for r in records:
        if style == "compact":
            lines.append(json.dumps(r, ensure_ascii=False, separators=(",", ":")))
        else:
            lines.append(json.dumps(r))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lines


def read_jsonl(path: Path) -> list[dict]:
    # split("\n"), not splitlines(): a record may hold a raw U+2028 inside a string.
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]


def test_keeps_records_unchanged_in_order_and_writes_rejects(tmp_path, capsys):
    src, out, rej = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "rej.jsonl"
    lines = write_jsonl(src, RECORDS)
    code = main(["dedup", str(src), "-o", str(out), "--rejects", str(rej)])
    assert code == 0
    # The kept lines are byte-identical to the input lines (compact separators, raw U+2028).
    assert out.read_text(encoding="utf-8").split("\n")[:-1] == [lines[0], lines[2], lines[4]]
    rejects = read_jsonl(rej)
    assert [r["record"] for r in rejects] == [RECORDS[1], RECORDS[3]]
    assert rejects[0]["nearest"] == RECORDS[0]["instruction"]
    assert rejects[0]["max_score"] == pytest.approx(12 / 13)
    assert rejects[1] == {
        "record": RECORDS[3],
        "max_score": 1.0,
        "nearest": RECORDS[2]["instruction"],
        "line": 4,
    }
    summary = capsys.readouterr().out
    assert "kept 3 of 5 records, rejected 2 (40.0%)" in summary


def test_against_seeds_threshold_field_and_stemmer(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    seeds = tmp_path / "seeds.jsonl"
    write_jsonl(src, [{"prompt": r["instruction"], "id": r["id"]} for r in RECORDS])
    write_jsonl(seeds, [{"prompt": "List five countries in Europe."}])
    args = ["dedup", str(src), "-o", str(out), "--field", "prompt", "--against", str(seeds)]
    assert main([*args, "--threshold", "0.7"]) == 0
    assert [r["id"] for r in read_jsonl(out)] == [1, 3]  # id 5 is 0.8 vs the seed
    assert main([*args, "--threshold", "0.95"]) == 0
    assert [r["id"] for r in read_jsonl(out)] == [1, 2, 3, 5]  # only the exact repeat goes
    assert main([*args, "--threshold", "1"]) == 0
    assert len(read_jsonl(out)) == 5  # nothing scores above 1
    write_jsonl(src, [{"prompt": "the cats are running"}, {"prompt": "the cat runs"}])
    assert main(["dedup", str(src), "-o", str(out), "--field", "prompt", "--threshold", "0.7"]) == 0
    assert len(read_jsonl(out)) == 2
    args = ["dedup", str(src), "-o", str(out), "--field", "prompt", "--threshold", "0.7"]
    assert main([*args, "--stemmer"]) == 0
    assert len(read_jsonl(out)) == 1  # stems: "the cat are run" vs "the cat run", F = 6/7


def test_a_json_list_is_read_and_written_as_jsonl(tmp_path):
    src, out = tmp_path / "in.json", tmp_path / "out.jsonl"
    src.write_text(json.dumps(RECORDS, indent=2), encoding="utf-8")
    assert main(["dedup", str(src), "-o", str(out)]) == 0
    assert read_jsonl(out) == [RECORDS[0], RECORDS[2], RECORDS[4]]
    assert [r.line for r in read_records(src)] == [2, 10, 14, 19, 23]


def test_empty_input_writes_an_empty_output(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("\n\n", encoding="utf-8")
    summary = dedup_file(src, out)
    assert (summary.total, summary.kept) == (0, 0) and out.read_text() == ""


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"instruction": "a"}\n{"instruction": "b"\n', "in.jsonl:2: not valid JSON"),
        ('{"instruction": "a"}\n\n{"text": "b"}\n', "in.jsonl:3: field 'instruction' is missing"),
        ('{"instruction": 7}\n', "in.jsonl:1: field 'instruction' is not a string (got int)"),
        ('{"instruction": null}\n', "in.jsonl:1: field 'instruction' is not a string (got null)"),
        ('["instruction"]\n', "in.jsonl:1: expected a JSON object, got str"),
        ('[{"instruction": "a"},\n {"instruction": 1}]', "in.jsonl:2: field 'instruction' is not"),
        ('[{"instruction": "a"},\n {"instruction": ]', "in.jsonl:2: not valid JSON"),
    ],
)
def test_bad_input_names_file_and_line(tmp_path, monkeypatch, capsys, content, message):
    monkeypatch.chdir(tmp_path)
    Path("in.jsonl").write_text(content, encoding="utf-8")
    Path("out.jsonl").write_text("precious\n", encoding="utf-8")
    assert main(["dedup", "in.jsonl", "-o", "out.jsonl"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"selfinstruct: error: {message}") and err.count("\n") == 1
    assert Path("out.jsonl").read_text() == "precious\n"  # nothing already written is lost


def test_missing_files_bad_threshold_and_bad_bytes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_jsonl(Path("in.jsonl"), RECORDS)
    assert main(["dedup", "missing.jsonl", "-o", "out.jsonl"]) == 2
    assert "missing.jsonl: no such file" in capsys.readouterr().err
    assert main(["dedup", "in.jsonl", "-o", "out.jsonl", "--against", "seeds.jsonl"]) == 2
    assert "seeds.jsonl: no such file" in capsys.readouterr().err
    for bad in ("1.5", "-0.1", "nan"):
        assert main(["dedup", "in.jsonl", "-o", "out.jsonl", "--threshold", bad]) == 2
        assert "--threshold must be between 0 and 1" in capsys.readouterr().err
    Path("latin1.jsonl").write_bytes(b'{"instruction": "a"}\n{"instruction": "caf\xe9"}\n')
    assert main(["dedup", "latin1.jsonl", "-o", "out.jsonl"]) == 2
    assert "latin1.jsonl:2: not UTF-8 text" in capsys.readouterr().err
    assert main(["dedup", "in.jsonl", "-o", "no/such/dir/out.jsonl"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not Path("out.jsonl").exists()
    with pytest.raises(UserError):
        read_records(tmp_path)  # a directory


def test_output_is_replaced_atomically_and_keeps_its_mode(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(src, RECORDS)
    out.write_text("old\n")
    os.chmod(out, 0o640)
    dedup_file(src, out)
    assert len(read_jsonl(out)) == 3 and (out.stat().st_mode & 0o777) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]  # no temp left
    before = src.read_bytes()
    with pytest.raises(UserError, match="is the input IN"):  # issue 29: never onto its input
        dedup_file(src, src)
    assert src.read_bytes() == before


def test_progress_reports_done_and_total(tmp_path):
    src = tmp_path / "in.jsonl"
    write_jsonl(src, [{"instruction": f"task number {i} about topic {i * 7}"} for i in range(3000)])
    calls = []
    dedup_file(
        src, tmp_path / "out.jsonl", progress=lambda done, total: calls.append((done, total))
    )
    assert calls[0] == (0, 3000) and calls[-1] == (3000, 3000)


def test_subprocess_exit_code_2_without_traceback(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"instruction": "fine"}\n{"text": "no instruction"}\n', encoding="utf-8")
    # the process is the point: the `python -m selfinstruct.cli` entry and its exit code
    proc = subprocess.run(
        [sys.executable, "-m", "selfinstruct.cli", "dedup", str(src), "-o", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr == f"selfinstruct: error: {src}:2: field 'instruction' is missing\n"
    assert "Traceback" not in proc.stderr and proc.stdout == ""
