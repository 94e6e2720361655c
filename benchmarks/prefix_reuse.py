"""Classification and instance stages with and without prefix KV reuse, same run, same data.

    python benchmarks/prefix_reuse.py [--model smollm2] [--instructions 12]

A small run is bootstrapped once (its instructions are reused by both arms). Then the
classify and instances stages run twice on copies of that run directory with an empty
response cache: once with ``prefix_cache`` off (every prompt prefilled in full), once on
(each few-shot template prefilled once, each call pays only for its own tokens).
Prints the stage times and the speed-up, and checks that both arms wrote the same
labels (reuse changes low-order bits of the logits; greedy answers rarely move).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from selfinstruct.run.config import RunConfig
from selfinstruct.run.context import open_context
from selfinstruct.stages.bootstrap import bootstrap
from selfinstruct.stages.classify import classify
from selfinstruct.stages.instances import generate_instances


def timed_stages(run_dir: Path, config: RunConfig) -> dict:
    ctx = open_context(run_dir, config)
    ctx.backend  # noqa: B018 - load the model outside the timings
    out = {}
    started = time.perf_counter()
    classify(ctx)
    out["classify_s"] = time.perf_counter() - started
    started = time.perf_counter()
    generate_instances(ctx)
    out["instances_s"] = time.perf_counter() - started
    out["labels"] = [r["is_classification"] for r in ctx.run.classifications.open()]
    out["instances"] = {r["id"]: r["instances"] for r in ctx.run.instances.open()}
    ctx.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--instructions", type=int, default=12)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="prefix-bench-"))
    config = RunConfig(num_instructions=args.instructions, model=args.model, seed=11,
                       recipe="paper")  # no calibration: the shared cache would serve one arm
    ctx = open_context(base / "seed-run", config)
    bootstrap(ctx)
    ctx.close()
    results = {}
    for label, reuse in (("full prefill", False), ("prefix reuse", True)):
        run = base / label.replace(" ", "-")
        run.mkdir()
        for name in ("instructions.jsonl", "rejects.jsonl"):
            shutil.copy(base / "seed-run" / name, run / name)
        cfg = RunConfig(**{**config.as_dict(), "prefix_cache": reuse})
        results[label] = timed_stages(run, cfg)
    ref, ours = results["full prefill"], results["prefix reuse"]
    print(f"model {args.model}, {args.instructions} instructions")
    print(f"{'stage':<12}{'full prefill':>14}{'prefix reuse':>14}{'speed-up':>10}")
    for key, name in (("classify_s", "classify"), ("instances_s", "instances")):
        print(f"{name:<12}{ref[key]:>13.1f}s{ours[key]:>13.1f}s{ref[key] / ours[key]:>9.2f}x")
    total_ref = ref["classify_s"] + ref["instances_s"]
    total = ours["classify_s"] + ours["instances_s"]
    print(f"{'both':<12}{total_ref:>13.1f}s{total:>13.1f}s{total_ref / total:>9.2f}x")
    same_labels = ref["labels"] == ours["labels"]
    same_instances = sum(ref["instances"][k] == ours["instances"].get(k) for k in ref["instances"])
    print(f"same labels: {same_labels}; identical instance sets: "
          f"{same_instances}/{len(ref['instances'])}")
    print(json.dumps({"full_prefill": {k: ref[k] for k in ("classify_s", "instances_s")},
                      "prefix_reuse": {k: ours[k] for k in ("classify_s", "instances_s")}}))
    shutil.rmtree(base)


if __name__ == "__main__":
    main()
