"""Completions per second with 1 and 2 Ray actors (each the embedded model, one thread).

    python benchmarks/ray_scaling.py [--requests 24] [--replicas 1,2] [--max-tokens 0]

The same fixed set of requests, sent through the executor that a run uses
(``run_requests``, no response cache), to a pool of N actors on a local Ray instance
started here, for each N in ``--replicas``. The requests are those of the instance stage,
the one that dominates a run's time: the instance prompt of each of the first
``--requests`` seed tasks, classification tasks first as the stage orders them, with the
stage's own sampling (greedy, 300/350 new tokens; ``--max-tokens`` caps that).

Model load is outside the timings: each actor answers a short warm-up request first. The
prefill of the few-shot template is inside them, once per actor, as in a run. Speed-up
and efficiency are against the 1-actor pool measured in the same invocation. The local
executor (this process, llama.cpp with one thread per core) is timed too, as the
reference a user would otherwise run. The completions must be the same in every
configuration; the script says so, or stops.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time

from selfinstruct.backends.base import Request, Sampling
from selfinstruct.backends.requests import UsageStats, run_requests
from selfinstruct.prompts import PromptTemplates, instance_prompt
from selfinstruct.run.config import RunConfig
from selfinstruct.seeds import load_seeds


def instance_requests(count: int, max_tokens: int) -> list[Request]:
    templates, config = PromptTemplates.load(None), RunConfig()
    tasks = sorted(load_seeds(None)[:count], key=lambda t: not t.is_classification)
    requests = []
    for task in tasks:
        clf = task.is_classification
        sampling = config.instance_sampling(clf)
        if max_tokens:
            sampling = dataclasses.replace(sampling, max_tokens=max_tokens)
        prefix = templates.instance_output_first if clf else templates.instance_input_first
        requests.append(Request(instance_prompt(templates, task.instruction, clf), sampling,
                                prefix=prefix))
    return requests


def timed(backend, requests: list[Request], in_flight: int) -> dict:
    warm_up = [Request("Name a colour:", Sampling(max_tokens=4))] * max(1, in_flight)
    list(run_requests(backend, warm_up, max_concurrency=in_flight))
    stats = UsageStats()
    started = time.perf_counter()
    out = list(run_requests(backend, requests, max_concurrency=in_flight, stats=stats))
    seconds = time.perf_counter() - started
    failed = [c.error for _, c in out if not c.ok]
    if failed:
        raise SystemExit(f"{len(failed)} requests failed: {failed[0]}")
    return {"seconds": seconds, "completions_per_s": len(requests) / seconds,
            "completion_tokens": stats.completion_tokens,
            "texts": [c.text for _, c in out]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--replicas", default="1,2", help="comma-separated actor counts")
    parser.add_argument("--max-tokens", type=int, default=0,
                        help="cap on new tokens per request (0: the stage's own)")
    parser.add_argument("--no-local", action="store_true", help="skip the local reference")
    args = parser.parse_args()
    counts = [int(n) for n in args.replicas.split(",")]
    requests = instance_requests(args.requests, args.max_tokens)
    options = {"n_ctx": 4096, "prefix_cache": True}
    load_before = os.getloadavg()[0]
    results = {}

    if not args.no_local:
        from selfinstruct.backends.registry import open_backend

        backend, _ = open_backend(args.model, **options)
        results[f"local, 1 process x {os.cpu_count()} threads"] = timed(backend, requests, 1)
        del backend

    import logging

    import ray

    from selfinstruct.backends.pool.ray_actors import open_on_ray

    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    ray.init(num_cpus=max(counts), include_dashboard=False, _temp_dir=temp_dir,
             logging_level=logging.ERROR, log_to_driver=False)
    try:
        for count in counts:
            pool, _ = open_on_ray(args.model, options, replicas=count)
            try:
                results[f"ray, {count} actor{'s' if count > 1 else ''} x 1 thread"] = \
                    timed(pool, requests, count)
            finally:
                pool.close()
    finally:
        ray.shutdown()

    texts = {label: r.pop("texts") for label, r in results.items()}
    reference_texts = next(iter(texts.values()))
    same = all(t == reference_texts for t in texts.values())
    one_actor = next((r for label, r in results.items() if "ray, 1 actor " in label), None)
    print(f"{args.model}, {len(requests)} instance requests, {platform.processor() or 'cpu'}, "
          f"{os.cpu_count()} CPUs; load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after")
    print(f"{'configuration':<34}{'seconds':>9}{'compl/s':>9}{'tok/s':>8}"
          f"{'speed-up':>10}{'efficiency':>12}")
    for label, r in results.items():
        row = (f"{label:<34}{r['seconds']:>9.1f}{r['completions_per_s']:>9.3f}"
               f"{r['completion_tokens'] / r['seconds']:>8.1f}")
        if one_actor is not None and label.startswith("ray"):
            actors = int(label.split(", ")[1].split(" ")[0])
            speed_up = r["completions_per_s"] / one_actor["completions_per_s"]
            row += f"{speed_up:>9.2f}x{speed_up / actors:>11.0%}"
        print(row)
    print(f"same completions in every configuration: {same}")
    print(json.dumps({"requests": len(requests), "load_before": load_before,
                      "results": results, "same_completions": same}))
    if not same:
        raise SystemExit("the completions differ between configurations")


if __name__ == "__main__":
    main()
