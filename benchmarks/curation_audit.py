"""What curation is worth, read by hand: a blind grading file, then its figures.

    python benchmarks/curation_audit.py sample RUN --out AUDIT_DIR [--n 50] [--seed 0]
    # move AUDIT_DIR/key.jsonl away from the graders; each grades items.jsonl into a
    # copy, setting "valid", "input_ok", "correct" to true/false
    python benchmarks/curation_audit.py score AUDIT_DIR --key KEY --grades A.jsonl [B.jsonl]

``RUN`` is a run of the curated recipe. ``sample`` draws ``n`` random instances that the
paper's filters keep (before curation: :func:`selfinstruct.stages.postprocess.select_tasks`)
and ``n`` random instances of the final data (after curation: ``tasks.jsonl``), and, for
every sampled instance whose consensus output differs from its own, that output too (so
each filter alone can be judged). They are shuffled into ``items.jsonl`` with nothing that
tells their source; ``key.jsonl`` keeps the source and each filter's decision apart.

``score`` reads the grades (the paper's Table 2 questions: is the instruction a valid
task, is the input appropriate, is the output a correct and acceptable response) and
prints, for the data before curation (the reference), each filter alone and all of them:
the share of instances kept and the share of correct outputs among the kept graded ones,
and the ratio of the curated share correct to the reference's. With two grade files it
also prints how often the graders agree.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

FILTERS = ("label_not_recovered", "no_consensus", "instruction_does_not_help")


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def _context(run: Path):
    from selfinstruct.run.context import open_run_readonly

    return open_run_readonly(run)


def sample(run: Path, out: Path, n: int, seed: int) -> None:
    from selfinstruct.rules.curation import decide
    from selfinstruct.stages.postprocess import select_tasks

    view = _context(run)
    before, _ = select_tasks(view)  # type: ignore[arg-type]
    answers = {r["id"]: r for r in _records(run / "answers.jsonl")}
    config = view.config
    after = [(t["id"], t["instruction"], i["input"], i["output"], t["is_classification"])
             for t in _records(run / "tasks.jsonl") for i in t["instances"]]
    pool = []
    for task in before:
        record = answers.get(task.id, {})
        entries = {(a["input"], a["output"]): a for a in record.get("instances", [])}
        for instance in task.instances:
            entry = entries.get((instance.input, instance.output), {})
            threshold = (config.min_agreement if config.min_agreement is not None
                         else record.get("threshold"))
            decisions = {}
            for name in FILTERS:  # each filter alone
                reason = decide(entry, bool(task.is_classification),
                                threshold if name == "no_consensus" else None,
                                config.max_ifd if name == "instruction_does_not_help"
                                else float("inf"))
                if name == "label_not_recovered" and reason and reason[0] != name:
                    reason = None
                decisions[name] = reason is None or reason[0] != name
            medoid = (entry["candidates"][entry["chosen"]]
                      if entry.get("candidates") else instance.output)
            pool.append({"task": task.id, "instruction": task.instruction,
                         "input": instance.input, "output": instance.output,
                         "medoid": medoid, "is_classification": bool(task.is_classification),
                         "kept_by": decisions})
    rng = random.Random(seed)
    picked_before = rng.sample(pool, min(n, len(pool)))
    picked_after = rng.sample(after, min(n, len(after)))
    items, key = [], []
    for pair, p in enumerate(picked_before):
        items.append((p["instruction"], p["input"], p["output"]))
        key.append({"source": "before", "pair": pair, "task": p["task"],
                    "kept_by": p["kept_by"], "is_classification": p["is_classification"]})
        if p["medoid"] != p["output"]:
            items.append((p["instruction"], p["input"], p["medoid"]))
            key.append({"source": "before-medoid", "pair": pair, "task": p["task"]})
    for task_id, instruction, input_text, output, clf in picked_after:
        items.append((instruction, input_text, output))
        key.append({"source": "after", "task": task_id, "is_classification": clf})
    order = list(range(len(items)))
    rng.shuffle(order)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "items.jsonl", "w", encoding="utf-8") as f:
        for number, k in enumerate(order, start=1):
            instruction, input_text, output = items[k]
            f.write(json.dumps({"item": number, "instruction": instruction, "input": input_text,
                                "output": output, "valid": None, "input_ok": None,
                                "correct": None}, ensure_ascii=False) + "\n")
    with open(out / "key.jsonl", "w", encoding="utf-8") as f:
        for number, k in enumerate(order, start=1):
            f.write(json.dumps({"item": number, **key[k]}) + "\n")
    print(f"{len(items)} items ({len(picked_before)} before curation, of a pool of {len(pool)}; "
          f"{len(picked_after)} after, of {len(after)}) -> {out / 'items.jsonl'}")


def _share(values: list[bool]) -> str:
    return f"{sum(values)}/{len(values)} ({100 * sum(values) / len(values):.0f}%)" \
        if values else "n/a"


def score(audit: Path, grade_files: list[Path], key_file: Path | None = None) -> None:
    key = {r["item"]: r for r in _records(key_file or audit / "key.jsonl")}
    graders = [{r["item"]: r for r in _records(path)} for path in grade_files]
    grades = graders[0]
    missing = [n for n in key if grades.get(n, {}).get("correct") is None]
    if missing:
        sys.exit(f"{grade_files[0]}: items not graded: {missing[:10]}")

    def correct(n: int) -> bool:
        return bool(grades[n]["correct"])

    before = [n for n, k in key.items() if k["source"] == "before"]
    medoid_of = {k["pair"]: n for n, k in key.items() if k["source"] == "before-medoid"}
    after = [n for n, k in key.items() if k["source"] == "after"]
    reference = [correct(n) for n in before]
    print(f"before curation (the reference): correct {_share(reference)}")
    for name in FILTERS:
        kept = [n for n in before if key[n]["kept_by"][name]]
        values = []
        for n in kept:
            if name == "no_consensus":
                # the consensus keeps its medoid, graded as an item of its own where it
                # differs from the instance's output
                values.append(correct(medoid_of.get(key[n]["pair"], n)))
            else:
                values.append(correct(n))
        print(f"{name} alone: kept {len(kept)}/{len(before)} of the sample, "
              f"correct {_share(values)}")
    curated = [correct(n) for n in after]
    print(f"all filters (the final data): correct {_share(curated)}")
    if reference and curated and sum(reference):
        ratio = (sum(curated) / len(curated)) / (sum(reference) / len(reference))
        print(f"ratio of shares correct, curated / before: {ratio:.2f}x")
    if len(graders) > 1:
        other = graders[1]
        same = sum(1 for n in key if bool(other.get(n, {}).get("correct"))
                   == bool(grades[n]["correct"]))
        print(f"graders agree on 'correct' for {same}/{len(key)} items")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sample")
    s.add_argument("run", type=Path)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--n", type=int, default=50)
    s.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("score")
    c.add_argument("audit", type=Path)
    c.add_argument("--grades", type=Path, nargs="+")
    c.add_argument("--key", type=Path, help="key.jsonl, if moved away from the graders")
    args = parser.parse_args()
    if args.command == "sample":
        sample(args.run, args.out, args.n, args.seed)
    else:
        score(args.audit, args.grades or [args.audit / "items.jsonl"], args.key)


if __name__ == "__main__":
    main()
