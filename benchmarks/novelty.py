"""Benchmark: the exact ROUGE-L novelty filter against Self-Instruct's original loop.

For each size N (default 3K, 52K and 1M) this builds the seeded corpus of
``benchmarks/novelty_corpus.py`` (cached under ``benchmarks/data/``) and runs, in a fresh
subprocess, ``selfinstruct.novelty.dedup.dedup_file`` end to end (read JSONL, filter against the 175
seed instructions, write kept and rejected records), reporting wall time, CPU time and the
subprocess's peak resident memory (VmHWM: the whole Python process, interpreter included).

The reference is the original algorithm: for each candidate, ``RougeScorer(["rougeL"],
use_stemmer=False).score(candidate, text)`` against every seed and every kept candidate,
keep iff the max is <= 0.7 (single process; the original spreads the same work over a
4-process pool). It runs on the first ``--reference-size`` (3,000) candidates in this
process, next to our filter on the same subset, and the decisions are checked to be
identical. Beyond that it is extrapolated: measured seconds per pair times the number of
pairs the original compares at N (the sum over candidates of the pool size they meet,
known exactly from our identical decisions).

    python benchmarks/novelty.py                       # 3K, 52K, 1M (the 3K reference takes minutes)
    python benchmarks/novelty.py --sizes 3000,52000
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
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import novelty_corpus

THRESHOLD = 0.7


def _seeds() -> list[str]:
    with open(novelty_corpus.SEED_TASKS, encoding="utf-8") as f:
        return [json.loads(line)["instruction"] for line in f]


def _texts(path: Path, limit: int | None = None) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["instruction"] for _, line in zip(range(limit or 10**12), f)]


def reference_filter(seeds: list[str], candidates: list[str]) -> tuple[list[bool], int]:
    """Self-Instruct's loop, scored by rouge_score; returns (kept flags, pairs compared)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    pool = list(seeds)
    kept, pairs = [], 0
    for text in candidates:
        scores = [scorer.score(text, other)["rougeL"].fmeasure for other in pool]
        pairs += len(pool)
        keep = max(scores, default=0.0) <= THRESHOLD
        kept.append(keep)
        if keep:
            pool.append(text)
    return kept, pairs


def pairs_compared(n_seeds: int, kept: list[bool]) -> int:
    """How many pairs the original loop scores, given the keep/reject sequence."""
    total, pool = 0, n_seeds
    for keep in kept:
        total += pool
        pool += keep
    return total


def worker(path: str, seeds_path: str, out_dir: str) -> None:
    """Runs in a subprocess: one end-to-end dedup, timings as JSON on stdout."""
    from selfinstruct.novelty.dedup import dedup_file

    wall, cpu = time.perf_counter(), time.process_time()
    summary = dedup_file(
        path,
        os.path.join(out_dir, "kept.jsonl"),
        against=seeds_path,
        threshold=THRESHOLD,
        rejects_path=os.path.join(out_dir, "rejects.jsonl"),
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    result = {"wall": wall, "cpu": cpu, "kept": summary.kept, "total": summary.total}
    result["peak_mb"] = _peak_rss_mb()
    print(json.dumps(result))


def _peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM belongs to the memory image made by exec;
    ru_maxrss would also count the parent's pages the child had before exec."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_worker(path: Path, seeds_path: Path) -> dict:
    with tempfile.TemporaryDirectory() as out_dir:
        cmd = [sys.executable, __file__, "--worker", str(path), str(seeds_path), out_dir]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"worker failed for {path} (exit {proc.returncode})")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        with open(os.path.join(out_dir, "kept.jsonl"), encoding="utf-8") as f:
            kept_ids = {json.loads(line)["id"] for line in f}
    with open(path, encoding="utf-8") as f:
        result["kept_flags"] = [json.loads(line)["id"] in kept_ids for line in f]
    return result


def side_by_side(path: Path, seeds: list[str], size: int) -> dict:
    """Reference and ours, in this process, on the same first ``size`` candidates."""
    from selfinstruct.novelty.dedup import dedup_file
    from selfinstruct.novelty.index import NoveltyIndex

    candidates = _texts(path, size)
    with tempfile.TemporaryDirectory() as tmp:
        subset = Path(tmp) / "subset.jsonl"
        seeds_file = Path(tmp) / "seeds.jsonl"
        subset.write_text("".join(json.dumps({"instruction": t}) + "\n" for t in candidates))
        seeds_file.write_text("".join(json.dumps({"instruction": t}) + "\n" for t in seeds))
        start = time.perf_counter()
        dedup_file(subset, Path(tmp) / "kept.jsonl", against=seeds_file, threshold=THRESHOLD)
        ours_e2e = time.perf_counter() - start
    start = time.perf_counter()
    decisions = NoveltyIndex(seeds).filter(candidates, THRESHOLD)
    ours_filter = time.perf_counter() - start
    print(f"  reference on {size:,} candidates (pure Python rouge_score)...", file=sys.stderr)
    start = time.perf_counter()
    ref_kept, pairs = reference_filter(seeds, candidates)
    reference = time.perf_counter() - start
    if ref_kept != [d.kept for d in decisions]:
        raise SystemExit("decisions differ from the reference: this is a bug")
    return {
        "size": size,
        "reference_s": reference,
        "pairs": pairs,
        "per_pair_us": reference / pairs * 1e6,
        "ours_e2e_s": ours_e2e,
        "ours_filter_s": ours_filter,
    }


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="3000,52000,1000000", help="comma-separated N")
    parser.add_argument("--reference-size", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return 0
    if not novelty_corpus.SHARED.is_dir():
        print(f"shared data not found at {novelty_corpus.SHARED}", file=sys.stderr)
        return 2
    sizes = [int(s) for s in args.sizes.split(",") if s]
    seeds = _seeds()
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}; {date.today()}")
    biggest = novelty_corpus.write_corpus(max([*sizes, args.reference_size]), args.seed)

    ref = side_by_side(biggest, seeds, args.reference_size)
    print(
        f"side by side on the same {ref['size']:,} candidates: reference "
        f"{ref['reference_s']:.1f} s ({ref['pairs']:,} pairs, {ref['per_pair_us']:.1f} us/pair); "
        f"ours {ref['ours_e2e_s']:.3f} s end to end ({ref['reference_s'] / ref['ours_e2e_s']:,.0f}x), "
        f"{ref['ours_filter_s']:.3f} s in memory ({ref['reference_s'] / ref['ours_filter_s']:,.0f}x)"
    )

    rows = []
    for size in sizes:
        path = novelty_corpus.write_corpus(size, args.seed)
        seeds_path = novelty_corpus.DATA_DIR / "seed_instructions.jsonl"
        seeds_path.write_text("".join(json.dumps({"instruction": t}) + "\n" for t in seeds))
        print(f"  ours on {size:,}...", file=sys.stderr)
        result = run_worker(path, seeds_path)
        pairs = pairs_compared(len(seeds), result["kept_flags"])
        if size == ref["size"]:
            ref_s, how = ref["reference_s"], "measured"
        else:
            ref_s, how = pairs * ref["per_pair_us"] / 1e6, "extrapolated"
        rows.append((size, result, pairs, ref_s, how))

    header = (
        f"{'N':>10} {'rejected':>9} {'ours wall':>10} {'ours CPU':>9} {'peak RSS':>9} "
        f"{'reference':>12} {'(how)':>14} {'speed-up':>10}"
    )
    print(header)
    print("-" * len(header))
    for size, r, pairs, ref_s, how in rows:
        rejected = 1 - r["kept"] / r["total"]
        print(
            f"{size:>10,} {rejected:>9.1%} {r['wall']:>9.1f}s {r['cpu']:>8.1f}s "
            f"{r['peak_mb']:>6.0f} MB {_duration(ref_s):>12} {how:>14} {ref_s / r['wall']:>9,.0f}x"
        )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


if __name__ == "__main__":
    sys.exit(main())
