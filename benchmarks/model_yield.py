"""Valid-instruction yield of each bundled model, stage by stage, plus throughput.

    python benchmarks/model_yield.py [--models smollm2,gemma-3-270m] [--instructions 30]

For each model: a full pipeline run with the paper's settings and our seeds, then
- bootstrap: candidates per request, share kept, rejections by reason;
- classify: share judged classification;
- instances: tasks with at least one valid instance, instances per task;
- throughput: generated tokens per second of generation time, against llama.cpp's raw
  decode speed on the same model measured in the same process (the reference).
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path

from selfinstruct.run.config import RunConfig
from selfinstruct.run.context import open_context
from selfinstruct.run.pipeline import run_pipeline


def raw_decode_speed(backend, tokens: int = 256) -> float:
    """Tokens/s of plain llama.cpp decoding (short prompt, no stop, greedy)."""
    llm = backend.llm
    llm.reset()
    started = time.perf_counter()
    out = llm.create_completion("Once upon a time", max_tokens=tokens, temperature=0.0,
                                top_k=0, min_p=0.0, repeat_penalty=1.0)
    elapsed = time.perf_counter() - started
    return out["usage"]["completion_tokens"] / elapsed


def measure(model: str, n: int, base: Path) -> dict:
    config = RunConfig(num_instructions=n, model=model, seed=42, recipe="paper")  # as recorded
    ctx = open_context(base / model, config)
    raw = raw_decode_speed(ctx.backend)
    started = time.perf_counter()
    summary = run_pipeline(ctx)
    wall = time.perf_counter() - started
    run = ctx.run
    rejects = collections.Counter(r["reason"] for r in run.rejects.open())
    requests = ctx.stats["bootstrap"].requests
    inst = run.instances.open()
    usage = {k: v.as_dict() for k, v in ctx.stats.items()}
    gen_tokens = sum(u["completion_tokens"] for u in usage.values())
    gen_seconds = sum(u["generation_seconds"] for u in usage.values())
    ctx.close()
    return {
        "model": model, "wall_s": wall, "requests": requests,
        "candidates": summary.generated, "kept": summary.kept,
        "kept_share": summary.kept / max(1, summary.generated),
        "rejected": dict(rejects), "classification_share":
            summary.classification_tasks / max(1, summary.kept),
        "tasks_with_instances": summary.tasks, "task_share": summary.tasks / max(1, len(inst)),
        "instances": summary.instances,
        "instances_per_task": summary.instances / max(1, summary.tasks),
        "pipeline_tok_s": gen_tokens / gen_seconds if gen_seconds else 0.0,
        "raw_decode_tok_s": raw, "usage": usage,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="smollm2,gemma-3-270m")
    parser.add_argument("--instructions", type=int, default=30)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="yield-bench-"))
    rows = [measure(m, args.instructions, base) for m in args.models.split(",")]
    print(f"{'model':<14}{'wall':>8}{'req':>5}{'cand':>6}{'kept%':>7}{'clf%':>6}"
          f"{'tasks%':>8}{'inst/task':>10}{'tok/s':>8}{'raw tok/s':>10}{'ratio':>7}")
    for r in rows:
        print(f"{r['model']:<14}{r['wall_s']:>7.0f}s{r['requests']:>5}{r['candidates']:>6}"
              f"{100 * r['kept_share']:>6.0f}%{100 * r['classification_share']:>5.0f}%"
              f"{100 * r['task_share']:>7.0f}%{r['instances_per_task']:>10.2f}"
              f"{r['pipeline_tok_s']:>8.1f}{r['raw_decode_tok_s']:>10.1f}"
              f"{r['pipeline_tok_s'] / r['raw_decode_tok_s']:>7.2f}")
        print(f"   rejected: {r['rejected']}")
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
