"""Compute a bundled model's classification calibration and write it into the package.

    python scripts/ship_calibration.py --model smollm2
    python scripts/ship_calibration.py --model gemma-3-270m

It scores the held-out seed tasks (the bundled seeds the classification prompt does not
show) under the calibrated rule's 10 prompts on the embedded model, exactly as the classify
stage does, fits the calibration, and writes ``src/selfinstruct/calibrations/<model>.json``
(every score, the labels, the fit at full precision, and where and how long it took). A
run whose model, seeds and templates match the file's key then skips the 1,440 scorings
(:mod:`selfinstruct.calibrations`). Re-run it whenever the seeds, the classification
template or the scoring prompts change (the key changes, and the old file stops matching;
``tests/unit/rules/test_shipped_calibration.py`` fails until it is recomputed).

It lives in ``scripts/``, not ``benchmarks/``: it measures nothing, it builds package data.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

from selfinstruct.backends.opening import ModelOptions, open_model
from selfinstruct.calibrations import (
    SHIPPED_DIR,
    calibration_document,
    calibration_key,
    score_tasks,
)
from selfinstruct.progress import reporter_for
from selfinstruct.prompts import PromptTemplates
from selfinstruct.rules.classification import calibrate, held_out_tasks, scoring_templates
from selfinstruct.seeds import load_seeds


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def dumps_document(doc: dict) -> str:
    """JSON with one line per prompt's scores, so that a diff of two files reads."""
    margins = doc.pop("margins")
    head = json.dumps(doc, indent=1, ensure_ascii=False)
    rows = ",\n".join("  " + json.dumps(row) for row in margins)
    return head[:-2] + ',\n "margins": [\n' + rows + "\n ]\n}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--out", type=Path, default=None,
                        help="default: src/selfinstruct/calibrations/<model>.json")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    seeds = load_seeds(None)
    templates = PromptTemplates.load(None)
    tasks = held_out_tasks(seeds, templates)
    prompts = scoring_templates(templates)
    reporter = reporter_for(sys.stderr)
    load_before = os.getloadavg()
    started = time.perf_counter()
    with reporter.stage("load model", None):
        backend, info = open_model(ModelOptions(model=args.model, n_threads=args.threads))
    key = calibration_key(backend.identity, tasks, prompts)
    if key is None:
        parser.error(f"{args.model}: not an embedded model with a known sha256")
    scoring_started = time.perf_counter()
    with reporter.stage("calibrate", len(prompts) * len(tasks)) as bar:
        margins = score_tasks(backend, prompts, [t.instruction for t in tasks],
                              on_each=lambda: bar.advance())
    scoring_seconds = time.perf_counter() - scoring_started
    calibration = calibrate(margins, [bool(t.is_classification) for t in tasks])
    import llama_cpp

    computed = {"date": date.today().isoformat(), "cpu": cpu_name(),
                "cores": os.cpu_count(), "llama_cpp_python": llama_cpp.__version__,
                "scorings": len(prompts) * len(tasks),
                "scoring_seconds": round(scoring_seconds, 1),
                "load_average_before": [round(x, 2) for x in load_before],
                "load_average_after": [round(x, 2) for x in os.getloadavg()],
                "command": f"python scripts/ship_calibration.py --model {args.model}"}
    doc = calibration_document(info.name, key, tasks, margins, calibration, computed)
    out = args.out or SHIPPED_DIR / f"{info.name}.json"
    out.write_text(dumps_document(doc), encoding="utf-8")
    print(f"{out}: {len(tasks)} tasks x {len(prompts)} prompts in {scoring_seconds:.0f} s "
          f"(total {time.perf_counter() - started:.0f} s); threshold "
          f"{calibration.threshold:.4f}, held-out balanced accuracy "
          f"{calibration.held_out.balanced_accuracy:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
