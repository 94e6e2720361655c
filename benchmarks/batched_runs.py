"""Batched decoding on real work: a SuperNI run and the instance stage, one request at a
time against ``--max-concurrency B`` (the embedded model decodes B requests together).

    python benchmarks/batched_runs.py [--model gemma-3-270m] [--batch 16]
        [--superni ../shared/data/superni-test/superni_test_en.jsonl] [--per-task 1]
        [--tasks N]   # the first N tasks only
        [--run RUN]   # a finished run whose instance stage is redone (skipped if absent)

SuperNI: the same instances (``--per-task`` per task, all 119 tasks), the same prompts,
greedy, first paragraph kept, in two fresh evaluation directories; generated tokens per
second of wall time for each, and the ratio. Instance stage: the run's classifications are
copied twice, the instances and the cache removed, and the stage runs at batch 1 and at
``--batch``. Every figure comes from this one invocation; run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from selfinstruct.backends.opening import ModelOptions, open_model
from selfinstruct.evaluation.superni import load_instances
from selfinstruct.evaluation.superni_run import run_superni, select


def superni(model: str, batch: int, data: Path, per_task: int, tasks: int,
            out: Path) -> dict:
    backend, info = open_model(ModelOptions(model=model, batch_size=batch))
    everything = load_instances(data)
    names = list(dict.fromkeys(inst.task for inst in everything))[:tasks] if tasks else None
    chosen = select(everything, names, per_task)
    started = time.perf_counter()
    result = run_superni(backend, info.as_dict(), data, chosen, out, max_concurrency=batch)
    wall = time.perf_counter() - started
    tokens = result.usage["completion_tokens"]
    report = {"instances": len(chosen), "seconds": round(wall, 1), "tokens": tokens,
              "tokens_per_s": round(tokens / wall, 1),
              "rougeL": round(result.scores.as_dict()["rougeL"], 2)}
    stats = getattr(backend, "decode_stats", None)
    if batch > 1 and stats is not None:  # where the batched time went
        report["decode"] = stats.as_dict()
    return report


def instance_stage(run: Path, batch: int, out: Path) -> dict:
    from selfinstruct.run.config import RunConfig
    from selfinstruct.run.context import open_context
    from selfinstruct.stages.instances import generate_instances

    shutil.copytree(run, out)
    for name in ("instances.jsonl", "cache.sqlite", "cache.sqlite-wal", "cache.sqlite-shm"):
        (out / name).unlink(missing_ok=True)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["config"]["max_concurrency"] = batch
    (out / "manifest.json").write_text(json.dumps(manifest))
    ctx = open_context(out, RunConfig.from_dict(manifest["config"]))
    try:
        started = time.perf_counter()
        result = generate_instances(ctx)
        wall = time.perf_counter() - started
        tokens = ctx.usage("instances").completion_tokens
    finally:
        ctx.close()
    return {"tasks": result.tasks, "seconds": round(wall, 1), "tokens": tokens,
            "tokens_per_s": round(tokens / wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--superni", type=Path,
                        default=Path("../shared/data/superni-test/superni_test_en.jsonl"))
    parser.add_argument("--per-task", type=int, default=1)
    parser.add_argument("--tasks", type=int, default=0, help="the first N tasks (0: all)")
    parser.add_argument("--run", type=Path, default=None)
    parser.add_argument("--skip-superni", action="store_true")
    parser.add_argument("--batched-only", action="store_true",
                        help="the batched SuperNI arm alone, with its decode profile")
    args = parser.parse_args()
    print(subprocess.run(["uptime"], check=False, capture_output=True, text=True).stdout.strip())
    report: dict = {"model": args.model, "batch": args.batch}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_superni:
            batched = superni(args.model, args.batch, args.superni, args.per_task, args.tasks,
                              Path(tmp) / "sB")
            print(f"batch {args.batch}: {json.dumps(batched)}", flush=True)
            if args.batched_only:
                return
            solo = superni(args.model, 1, args.superni, args.per_task, args.tasks,
                           Path(tmp) / "s1")
            ratio = batched["tokens_per_s"] / solo["tokens_per_s"]
            report["superni"] = {"solo": solo, "batched": batched, "ratio": round(ratio, 2),
                                 "wall_ratio": round(solo["seconds"] / batched["seconds"], 2)}
            print(f"SuperNI {solo['instances']} instances: solo {solo['tokens_per_s']} tok/s "
                  f"({solo['seconds']} s, ROUGE-L {solo['rougeL']}), batch {args.batch} "
                  f"{batched['tokens_per_s']} tok/s ({batched['seconds']} s, ROUGE-L "
                  f"{batched['rougeL']}): {ratio:.2f}x tokens/s", flush=True)
        if args.run is not None and args.run.is_dir():
            solo = instance_stage(args.run, 1, Path(tmp) / "i1")
            batched = instance_stage(args.run, args.batch, Path(tmp) / "iB")
            ratio = batched["tokens_per_s"] / solo["tokens_per_s"]
            report["instances"] = {"solo": solo, "batched": batched, "ratio": round(ratio, 2),
                                   "wall_ratio": round(solo["seconds"] / batched["seconds"], 2)}
            print(f"instance stage, {solo['tasks']} tasks: solo {solo['tokens_per_s']} tok/s "
                  f"({solo['seconds']} s), batch {args.batch} {batched['tokens_per_s']} tok/s "
                  f"({batched['seconds']} s): {ratio:.2f}x tokens/s", flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
