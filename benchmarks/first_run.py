"""A newcomer's first run, timed: the README's command with an empty ``$SELFINSTRUCT_HOME``.

    python benchmarks/first_run.py [--num-instructions 50] [--model smollm2] [--preview]

Starts ``selfinstruct run --out DIR/demo --num-instructions N`` in a fresh temporary
directory whose ``home/`` is ``$SELFINSTRUCT_HOME`` (so no shared cache, no assembled model
file: what a fresh clone has), timed from the process start to its end, and prints the
wall time, each stage's requests and generation seconds from the manifest, where the
calibration came from (``shipped`` or ``scored``), and the load average before and after.
With ``--preview`` it times ``selfinstruct run --preview`` the same way first.

The README's time claims and BENCHMARKS.md's "A newcomer's first run" come from this
script; write the load beside any figure you record.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def timed(args: list[str], env: dict) -> tuple[float, str]:
    load = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run(args, env=env, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    print(f"  {seconds:.1f} s (load average before {load:.2f}, after "
          f"{os.getloadavg()[0]:.2f})", flush=True)
    return seconds, done.stderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-instructions", type=int, default=50)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--preview", action="store_true", help="time run --preview first")
    args = parser.parse_args(argv)
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {cpu_name()}, {os.cpu_count()} cores, load "
          f"average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory(prefix="first-run-") as folder:
        env = {**os.environ, "SELFINSTRUCT_HOME": str(Path(folder) / "home")}
        cli = [sys.executable, "-m", "selfinstruct", "run", "--model", args.model]
        if args.preview:
            print("selfinstruct run --preview", flush=True)
            timed([*cli, "--preview"], env)
        out = Path(folder) / "demo"
        print(f"selfinstruct run --out runs/demo --num-instructions {args.num_instructions}",
              flush=True)
        seconds, stderr = timed([*cli, "--out", str(out), "--num-instructions",
                                 str(args.num_instructions)], env)
        manifest = json.loads((out / "manifest.json").read_text())
        for line in stderr.splitlines():  # the phases' end lines (stderr is not a terminal)
            if ": done" in line:
                print(f"  {line}")
        calibration = manifest.get("classification_calibration", {})
        print(f"  classification: {calibration.get('rule')}, calibration "
              f"{calibration.get('source', '-')}")
        for stage, usage in manifest.get("usage", {}).items():
            print(f"  {stage}: {usage.get('requests')} requests ({usage.get('cached')} "
                  f"cached), {usage.get('generation_seconds')} s of generation")
        print(f"  manifest wall_seconds {manifest.get('wall_seconds')}; process {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
