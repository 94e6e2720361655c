"""What the curated recipe costs beside the refined one, stage by stage.

    python benchmarks/curation_cost.py --model smollm2 --instructions 20 [--out DIR]
    python benchmarks/curation_cost.py --run RUN      # the figures of a finished run

Runs the curated recipe (or reads a finished run of it) and prints, from the manifest's
per-stage usage, the seconds of model time per kept instruction of each stage. The
refined recipe asks exactly the requests of the curated run's first stages (bootstrap,
calibration, classify, instances: the same prompts, seeds and cache keys), so the
reference is measured in the same run: the ratio printed is the whole curated run
against those stages alone. One-time costs, paid by the first run of a model on a
machine and then served from the shared cache (the classification calibration and the
agreement fit on seed tasks), are shown apart, and the ratio is given with and without
them. Write the machine's load beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REFINED_STAGES = ("bootstrap", "classify", "instances")
ONE_TIME = ("calibrate", "fit-agreement")
CURATION = ("answers",)


def figures(run: Path) -> None:
    manifest = json.loads((run / "manifest.json").read_text())
    usage = manifest["usage"]
    kept = sum(1 for line in (run / "instructions.jsonl").read_text().splitlines()
               if line.strip())
    seconds = {stage: usage.get(stage, {}).get("generation_seconds", 0.0)
               for stage in (*REFINED_STAGES, *ONE_TIME, *CURATION)}
    print(f"run: {run} ({manifest['config']['model']}, {kept} instructions kept, "
          f"answers {manifest['config']['answers']})")
    for stage, value in seconds.items():
        count = usage.get(stage, {}).get("requests", 0)
        print(f"  {stage:14s} {value:8.1f} s  {value / kept:6.2f} s/instruction  "
              f"({count} requests)")
    refined = sum(seconds[s] for s in REFINED_STAGES)
    curated = refined + sum(seconds[s] for s in CURATION)
    once = sum(seconds[s] for s in ONE_TIME)
    print(f"refined stages {refined:.1f} s, curated {curated:.1f} s: "
          f"{curated / refined:.2f}x the refined recipe (later runs of the model)")
    print(f"with the one-time seed costs ({once:.1f} s): "
          f"{(curated + once) / (refined + seconds['calibrate']):.2f}x the refined recipe's "
          f"first run")
    print(f"load now: {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="read this finished curated run")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--instructions", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args, extra = parser.parse_known_args()
    if args.run:
        figures(args.run)
        return
    out = args.out or Path(tempfile.mkdtemp(prefix="curation-cost-")) / "run"
    home = out.parent / "home"  # an empty shared cache: the one-time costs are paid here
    subprocess.run([sys.executable, "-m", "selfinstruct", "run", "--out", str(out),
                    "--model", args.model, "--recipe", "curated", "--quiet",
                    "--num-instructions", str(args.instructions), "--seed", str(args.seed),
                    *extra], check=True, env={**os.environ, "SELFINSTRUCT_HOME": str(home)})
    figures(out)


if __name__ == "__main__":
    main()
