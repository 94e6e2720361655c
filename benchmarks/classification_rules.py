"""Which scorer tells classification tasks apart best? Balanced accuracy on held-out seeds.

For one model, every held-out seed task (a labelled seed the classification prompt does
not show) is scored with several prompt variants: the bundled few-shot template, its
demonstrations in other orders, a class-balanced subset of them, and a zero-shot
question. Each variant's margin (log P(" Yes") - log P(" No")) is judged by
leave-one-out balanced accuracy (a threshold fitted on the other tasks), beside the
paper rule (greedy Yes) and the always-No baseline, measured in the same run. Averages
of several variants' standardised margins ("ensembles") are judged the same way.

    python benchmarks/classification_rules.py --model gemma-3-270m
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from selfinstruct.backends.base import Request
from selfinstruct.backends.registry import open_backend
from selfinstruct.prompts import PromptTemplates, classification_prompt
from selfinstruct.rules.classification import (
    auc,
    held_out_tasks,
    leave_one_out,
    margin_of,
    metrics,
    paper_rule,
    scoring_request,
    scoring_templates,
)
from selfinstruct.run.config import RunConfig
from selfinstruct.seeds import load_seeds

ZERO_SHOT = ("A classification task asks to pick one answer from a small, fixed set of "
             "labels (such as Positive/Negative, Yes/No, or a list of categories) instead of "
             "writing free text.\n\n")


def variants(templates: PromptTemplates, orders: int) -> dict[str, str]:
    """Name -> template: the calibrated rule's prompts (the bundled template, ``orders``
    shuffles, the balanced subset) and a zero-shot question."""
    prompts = scoring_templates(templates, orders)
    names = ["bundled"] + [f"shuffled-{k}" for k in range(orders)] + ["balanced"]
    return {**dict(zip(names, prompts)), "zero-shot": ZERO_SHOT + "Task:"}


def standardise(values: list[float]) -> list[float]:
    mean, sd = statistics.fmean(values), statistics.pstdev(values) or 1.0
    return [(v - mean) / sd for v in values]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--orders", type=int, default=8, help="shuffled-demonstration variants")
    parser.add_argument("--json", default=None, help="also write the margins here")
    args = parser.parse_args()

    templates = PromptTemplates.load()
    tasks = held_out_tasks(load_seeds(), templates)
    labels = [bool(t.is_classification) for t in tasks]
    backend, _ = open_backend(args.model)
    print(f"{args.model}: {len(tasks)} held-out seed tasks, {sum(labels)} classification")

    started = time.perf_counter()
    paper = backend.complete([
        Request(classification_prompt(templates, t.instruction),
                RunConfig().classification_sampling(), prefix=templates.classification)
        for t in tasks])
    paper_pred = [paper_rule(c.text) for c in paper]
    rows = [("paper rule (greedy Yes)", metrics(paper_pred, labels), None,
             time.perf_counter() - started)]
    margins: dict[str, list[float]] = {}
    for name, template in variants(templates, args.orders).items():
        started = time.perf_counter()
        completions = backend.complete(
            [scoring_request(template, t.instruction) for t in tasks])
        values = [margin_of(c) for c in completions]
        if any(v is None for v in values):
            print(f"{name}: the backend gave no log-probabilities", file=sys.stderr)
            return 1
        margins[name] = [float(v) for v in values if v is not None]
        rows.append((f"margin: {name}", metrics(leave_one_out(margins[name], labels), labels),
                     auc(margins[name], labels), time.perf_counter() - started))
    standard = {name: standardise(v) for name, v in margins.items()}
    ensembles = {
        "ensemble: bundled + shuffled": ["bundled"] + [f"shuffled-{k}" for k in range(args.orders)],
        "ensemble: all few-shot (the calibrated rule)": [n for n in standard
                                                         if n != "zero-shot"],
        "ensemble: all": list(standard),
    }
    for name, members in ensembles.items():
        combined = [statistics.fmean(standard[m][i] for m in members) for i in range(len(tasks))]
        rows.append((name, metrics(leave_one_out(combined, labels), labels),
                     auc(combined, labels), 0.0))
    rows.append(("always No", metrics([False] * len(tasks), labels), None, 0.0))

    reference = rows[0][1].balanced_accuracy
    print(f"{'rule':46} {'bal.acc':>8} {'acc':>6} {'prec':>6} {'recall':>6} {'AUC':>6} "
          f"{'vs paper':>8} {'s':>6}")
    for name, m, area, seconds in rows:
        area_text = f"{area:.3f}" if area is not None else "-"
        print(f"{name:46} {m.balanced_accuracy:8.1%} {m.accuracy:6.1%} {m.precision:6.1%} "
              f"{m.recall:6.1%} {area_text:>6} {m.balanced_accuracy / reference:7.2f}x "
              f"{seconds:6.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"labels": labels, "margins": margins,
                                               "paper": paper_pred}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
