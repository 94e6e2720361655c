"""Threads or processes? Raw llama.cpp decode speed: 1 process x 1 thread (the reference),
1 process x N threads, and N processes x 1 thread at the same time.

    python benchmarks/llamacpp_processes.py [--model smollm2] [--parallel 2] [--tokens 200]

Why: it explains benchmarks/ray_scaling.py. Each configuration generates ``--tokens``
greedy tokens three times from a fixed prompt (no selfinstruct code on the hot path, no
Ray) and reports tokens/s; the ratios are against 1 process x 1 thread, in the same run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time


def decode_speed(model: str, threads: int, tokens: int) -> float:
    import llama_cpp

    from selfinstruct.backends.bundled import resolve_gguf

    llm = llama_cpp.Llama(model_path=str(resolve_gguf(model)), n_ctx=1024, n_threads=threads,
                          verbose=False)
    started, generated = time.perf_counter(), 0
    for _ in range(3):
        llm.reset()
        out = llm.create_completion("Write a long story about a dragon.\n", max_tokens=tokens,
                                    temperature=0.0, seed=0)
        generated += out["usage"]["completion_tokens"]
    return generated / (time.perf_counter() - started)


def _worker(args: tuple[str, int, int]) -> float:
    return decode_speed(*args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=200)
    args = parser.parse_args()
    n = args.parallel
    reference = decode_speed(args.model, 1, args.tokens)
    threads = decode_speed(args.model, n, args.tokens)
    with multiprocessing.get_context("spawn").Pool(n) as pool:
        processes = pool.map(_worker, [(args.model, 1, args.tokens)] * n)
    result = {"1 process x 1 thread (reference)": round(reference, 1),
              f"1 process x {n} threads": round(threads, 1),
              f"{n} processes x 1 thread, total": round(sum(processes), 1),
              "ratio threads": round(threads / reference, 2),
              "ratio processes": round(sum(processes) / reference, 2)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
