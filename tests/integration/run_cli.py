"""Run the real CLI in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Small but real: the paper recipe and settings, fewer instructions and shorter instance
# outputs. The paper recipe, not the default, because these runs test what every recipe
# shares (resume, kills, exports, executors), and the refined recipe's calibration would
# add about two minutes to each model and backend; test_refined_run.py runs the default.
SMALL = ["--recipe", "paper", "--num-instructions", "12", "--seed", "7", "--quiet",
         "--instance-max-tokens-classification", "120", "--instance-max-tokens-generation", "120"]


def cli(*args: str, env: dict | None = None, check: bool = True,
        timeout: float = 900) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "selfinstruct", *args],
                          capture_output=True, text=True, env=full_env, timeout=timeout,
                          check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\n"
                             f"stderr:\n{proc.stderr}")
    return proc


def popen(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "selfinstruct", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})


def export_bytes(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run / "exports").iterdir())}


def line_count(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(1 for line in path.read_bytes().split(b"\n") if line.strip())
