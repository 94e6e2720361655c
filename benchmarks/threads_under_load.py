"""A fixed thread count against the adaptive policy, on an idle machine and beside busy
processes.

    python benchmarks/threads_under_load.py [--model smollm2] [--busy 0,1,2] [--fixed 2]
                                            [--prompts 6] [--new-tokens 64]

For each load (0, 1, 2 busy processes: ``python -c 'while True: pass'``), the same short
greedy workload runs on the embedded backend twice: with ``--fixed`` threads, and with
the thread count chosen from the free cores (``selfinstruct.backends.threads``; the
backend is created once the busy processes run, and re-checks every 2 s). Prints the
wall times, the slowdown of each against its own idle time, and the threads the adaptive
policy ended with.

llama.cpp threads wait for each other at every step, so one thread that shares its core
with a busy process holds all the others back: on 2 cores, 2 threads beside one busy
process are expected to run about 2.5x slower than idle, 1 thread about 1.35x.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from selfinstruct.backends.base import Request, Sampling
from selfinstruct.backends.bundled import resolve_gguf
from selfinstruct.backends.llamacpp import LlamaCppBackend

PROMPTS = [
    "Explain how a refrigerator keeps food cold.",
    "Write a short story about a lighthouse keeper.",
    "List the steps to plant a tree.",
    "Describe the water cycle to a child.",
    "Give advice to someone starting to learn the piano.",
    "Summarise the rules of chess in a few sentences.",
    "Why do leaves change colour in autumn?",
    "Write a polite email declining a meeting.",
]


def spin(n: int) -> list[subprocess.Popen]:
    """``n`` processes that keep one core busy each until killed."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.kill()
        process.wait()


def workload(backend: LlamaCppBackend, requests: list[Request]) -> float:
    started = time.perf_counter()
    backend.complete(requests)
    return time.perf_counter() - started


def cell(path, threads: int | None, requests: list[Request]) -> tuple[float, int]:
    """Seconds for the workload and the thread count in use at its end."""
    backend = LlamaCppBackend(path, n_ctx=512, n_threads=threads)
    backend.complete([Request("Hello", Sampling(max_tokens=2))])  # warm up, untimed
    seconds = workload(backend, requests)
    return seconds, backend.threads.threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--busy", default="0,1,2", help="busy processes per run, 0 first")
    parser.add_argument("--fixed", type=int, default=2, help="the fixed thread count")
    parser.add_argument("--prompts", type=int, default=6)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--settle", type=float, default=1.0,
                        help="seconds between starting busy processes and measuring")
    args = parser.parse_args()
    loads = [int(n) for n in args.busy.split(",")]
    if 0 not in loads:
        loads = [0, *loads]
    path = resolve_gguf(args.model)
    requests = [Request(PROMPTS[i % len(PROMPTS)], Sampling(max_tokens=args.new_tokens))
                for i in range(args.prompts)]
    results: dict[int, dict] = {}
    for busy in sorted(loads):
        spinners = spin(busy)
        try:
            time.sleep(args.settle)
            fixed_s, _ = cell(path, args.fixed, requests)
            adaptive_s, adaptive_threads = cell(path, None, requests)
        finally:
            stop(spinners)
        results[busy] = {"fixed_s": round(fixed_s, 2), "adaptive_s": round(adaptive_s, 2),
                         "adaptive_threads": adaptive_threads}
    idle = results[0]
    print(f"model {args.model}, {args.prompts} prompts x {args.new_tokens} tokens, greedy")
    print(f"{'busy':>4}{'fixed ' + str(args.fixed):>12}{'slowdown':>10}"
          f"{'adaptive':>11}{'slowdown':>10}{'threads':>9}")
    for busy, r in results.items():
        r["fixed_slowdown"] = round(r["fixed_s"] / idle["fixed_s"], 2)
        r["adaptive_slowdown"] = round(r["adaptive_s"] / idle["adaptive_s"], 2)
        print(f"{busy:>4}{r['fixed_s']:>11.1f}s{r['fixed_slowdown']:>9.2f}x"
              f"{r['adaptive_s']:>10.1f}s{r['adaptive_slowdown']:>9.2f}x"
              f"{r['adaptive_threads']:>9}")
    print(json.dumps({"model": args.model, "fixed_threads": args.fixed, "results": results}))


if __name__ == "__main__":
    main()
