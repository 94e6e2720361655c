"""Kill ``selfinstruct export`` while it writes over an export from a previous run.

The process is really killed, at two points of the write, in a real CLI process on a copy
of a finished run:

- mid-write: the file size limit (RLIMIT_FSIZE) is lowered to half the new export just
  before the export starts, and SIGXFSZ is set back to its default action, so the kernel
  kills the process inside the write() that crosses the limit;
- before the rename: the rename of the finished temporary file onto the export's name
  sends SIGKILL instead.

The tasks change between the previous export and the killed one, so a partly or wholly
replaced file cannot pass for the old one. After the kill the old export must be intact,
nothing partial may sit under the final name, and the next export must remove the orphaned
temporary file and write exactly what an uninterrupted export of the same tasks writes.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys

import pytest
from run_cli import cli

pytestmark = pytest.mark.slow

NAMES = {"alpaca": "alpaca.json", "parquet": "instances.parquet"}

# argv: crash point, export file name, file size limit, then the CLI's own arguments
DRIVER = """
import os, resource, signal, sys
crash_at, target, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
import selfinstruct.stages.export as export_stage
if crash_at == "mid-write":
    real_export = export_stage.export
    def export_under_a_file_size_limit(*args, **kwargs):
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it by default
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        return real_export(*args, **kwargs)
    export_stage.export = export_under_a_file_size_limit
else:
    real_replace = os.replace
    def replace_or_die(src, dst, *args, **kwargs):
        if os.path.basename(dst) == target:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst, *args, **kwargs)
    os.replace = replace_or_die
from selfinstruct.cli import main
sys.exit(main(sys.argv[4:]))
"""


def _temporaries(run, name: str) -> list:
    return sorted((run / "exports").glob(f".{name}.*"))


@pytest.mark.parametrize("crash_at,expected_signal", [("mid-write", signal.SIGXFSZ),
                                                      ("before-rename", signal.SIGKILL)],
                         ids=["mid-write", "before-rename"])
@pytest.mark.parametrize("fmt", ["alpaca", "parquet"])
def test_killed_export_leaves_the_previous_one_intact(reference_run, tmp_path, fmt,
                                                      crash_at, expected_signal):
    reference, _ = reference_run
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    name = NAMES[fmt]
    if not (run / "exports" / name).exists():  # the pipeline does not write parquet
        cli("export", str(run), "--format", fmt)
    previous = (run / "exports" / name).read_bytes()
    # New tasks (the last one dropped), so the new export differs from the previous one.
    tasks = (run / "tasks.jsonl").read_text().splitlines(keepends=True)
    (run / "tasks.jsonl").write_text("".join(tasks[:-1]))
    cli("export", str(run), "--format", fmt, "-o", str(tmp_path / name))
    expected = (tmp_path / name).read_bytes()
    assert expected != previous
    others_before = {p.name: p.read_bytes() for p in (run / "exports").iterdir()}

    limit = len(expected) // 2
    killed = subprocess.run(
        [sys.executable, "-c", DRIVER, crash_at, name, str(limit),
         "export", str(run), "--format", fmt],
        capture_output=True, text=True, timeout=300, check=False)

    assert killed.returncode == -expected_signal, killed.stderr
    assert (run / "exports" / name).read_bytes() == previous
    [orphan] = _temporaries(run, name)
    written = limit if crash_at == "mid-write" else len(expected)
    assert orphan.stat().st_size == written  # the kill came while writing this export
    assert {p.name: p.read_bytes() for p in (run / "exports").iterdir()
            if p != orphan} == others_before

    cli("export", str(run), "--format", fmt)
    assert (run / "exports" / name).read_bytes() == expected
    assert _temporaries(run, name) == []
    assert sorted(p.name for p in (run / "exports").iterdir()) == sorted(others_before)
