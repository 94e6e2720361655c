"""Tokens per second of the embedded backend decoding 1, 2, 4, ... requests at once.

    python benchmarks/batched_decoding.py [--model smollm2] [--sizes 1,2,4,8,16]
                                          [--threads 2] [--prompts 16] [--new-tokens 64]

The same prompts (about 40 tokens each, no shared prefix) are completed greedily at each
batch size, ``--new-tokens`` tokens at most each, by a fresh ``LlamaCppBackend`` with
``batch_size`` set (1 is the solo path, one request at a time). Prints generated tokens
per second of wall time, the ratio against batch 1 measured in the same run, and how many
completions are identical to the solo ones (batched steps can move the low bits of the
logits, which changes a greedy token where two are nearly tied).

Measure on an idle machine: llama.cpp threads wait for each other every step, so another
busy process distorts every figure (see ``benchmarks/threads_under_load.py``).
"""

from __future__ import annotations

import argparse
import json
import time

from selfinstruct.backends.base import Completion, Request, Sampling
from selfinstruct.backends.bundled import resolve_gguf
from selfinstruct.backends.llamacpp import LlamaCppBackend

TOPICS = [
    "the printing press", "coral reefs", "the steam engine", "honeybees", "volcanoes",
    "the Roman aqueducts", "black holes", "penicillin", "the silk road", "tides",
    "the telephone", "rainforests", "glaciers", "the compass", "vaccines", "lighthouses",
    "the bicycle", "deserts", "the microscope", "earthquakes",
]


def prompts(n: int) -> list[str]:
    """``n`` distinct prompts of about 40 tokens (SmolLM2's tokenizer)."""
    return [
        f"Write a detailed paragraph about {TOPICS[i % len(TOPICS)]}. Explain where it "
        f"comes from, how it works today, and one surprising fact that most people do not "
        f"know about it (variant {i // len(TOPICS) + 1}).\n\n"
        for i in range(n)
    ]


def run(backend: LlamaCppBackend, requests: list[Request]) -> tuple[float, list[Completion]]:
    started = time.perf_counter()
    out = backend.complete(requests)
    return time.perf_counter() - started, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--sizes", default="1,2,4,8,16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--n-ctx", type=int, default=512, help="context per sequence")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if 1 not in sizes:
        sizes = [1, *sizes]
    path = resolve_gguf(args.model)
    requests = [Request(p, Sampling(max_tokens=args.new_tokens)) for p in prompts(args.prompts)]
    results: dict[int, dict] = {}
    solo: list[str] = []
    print(f"model {args.model}, {args.prompts} prompts, {args.new_tokens} new tokens each, "
          f"greedy, {args.threads} threads")
    print(f"{'batch':>5}{'tokens':>8}{'seconds':>9}{'tokens/s':>10}{'vs 1':>7}{'same as solo':>14}")
    for size in sorted(sizes):
        backend = LlamaCppBackend(path, n_ctx=args.n_ctx, n_threads=args.threads,
                                  batch_size=size)
        backend.complete(requests[:max(size, 1)][:2])  # warm up: weights paged in, contexts made
        seconds, out = run(backend, requests)
        backend.close()
        tokens = sum(c.completion_tokens for c in out)
        texts = [c.text for c in out]
        solo = solo or texts
        same = sum(a == b for a, b in zip(solo, texts))
        results[size] = {"tokens": tokens, "seconds": round(seconds, 3),
                         "tokens_per_s": round(tokens / seconds, 2), "same_as_solo": same}
        ratio = results[size]["tokens_per_s"] / results[1]["tokens_per_s"]
        results[size]["ratio"] = round(ratio, 2)
        print(f"{size:>5}{tokens:>8}{seconds:>9.1f}{tokens / seconds:>10.1f}{ratio:>6.2f}x"
              f"{same:>9}/{len(out)}")
    print(json.dumps({"model": args.model, "threads": args.threads, "results": results}))


if __name__ == "__main__":
    main()
