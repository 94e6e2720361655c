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
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from selfinstruct.backends.base import Request, Sampling
from selfinstruct.backends.registry import open_backend
from selfinstruct.classification import (
    CHOICES,
    auc,
    demonstrations,
    held_out_tasks,
    leave_one_out,
    margin_of,
    metrics,
    paper_rule,
)
from selfinstruct.config import RunConfig
from selfinstruct.prompts import PromptTemplates
from selfinstruct.seeds import load_seeds

ZERO_SHOT = ("A classification task asks to pick one answer from a small, fixed set of "
             "labels (such as Positive/Negative, Yes/No, or a list of categories) instead of "
             "writing free text.\n\n")


@dataclass
class Variant:
    name: str
    template: str  # the prompt up to the task's instruction


def build_template(header: str, demos: list[tuple[str, bool]]) -> str:
    body = "".join(f"Task: {text}\nIs it classification? {'Yes' if label else 'No'}\n\n"
                   for text, label in demos)
    return f"{header}\n\n{body}Task:"


def variants(templates: PromptTemplates, orders: int) -> list[Variant]:
    text = templates.classification
    header = text.split("\n\n", 1)[0]
    demos = demonstrations(text)
    out = [Variant("bundled", text)]
    for k in range(orders):
        shuffled = list(demos)
        random.Random(k).shuffle(shuffled)
        out.append(Variant(f"shuffled-{k}", build_template(header, shuffled)))
    yes = [d for d in demos if d[1]]
    no = [d for d in demos if not d[1]][: len(yes)]
    balanced = [d for pair in zip(yes, no) for d in pair]
    out.append(Variant("balanced", build_template(header, balanced)))
    out.append(Variant("zero-shot", ZERO_SHOT + "Task:"))
    return out


def prompt(template: str, instruction: str) -> str:
    return f"{template} {instruction.strip()}\nIs it classification?"


def standardise(values: list[float]) -> list[float]:
    mean, sd = statistics.fmean(values), statistics.pstdev(values) or 1.0
    return [(v - mean) / sd for v in values]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--orders", type=int, default=3, help="shuffled-demonstration variants")
    parser.add_argument("--json", default=None, help="also write the margins here")
    args = parser.parse_args()

    templates = PromptTemplates.load()
    tasks = held_out_tasks(load_seeds(), templates)
    labels = [bool(t.is_classification) for t in tasks]
    backend, _ = open_backend(args.model)
    print(f"{args.model}: {len(tasks)} held-out seed tasks, {sum(labels)} classification")

    started = time.perf_counter()
    paper = backend.complete([
        Request(prompt(templates.classification, t.instruction),
                RunConfig().classification_sampling(), prefix=templates.classification)
        for t in tasks])
    paper_pred = [paper_rule(c.text) for c in paper]
    rows = [("paper rule (greedy Yes)", metrics(paper_pred, labels), None,
             time.perf_counter() - started)]
    margins: dict[str, list[float]] = {}
    for variant in variants(templates, args.orders):
        started = time.perf_counter()
        completions = backend.complete([
            Request(prompt(variant.template, t.instruction), Sampling(temperature=0.0),
                    prefix=variant.template, choices=CHOICES) for t in tasks])
        values = [margin_of(c) for c in completions]
        if any(v is None for v in values):
            print(f"{variant.name}: the backend gave no log-probabilities", file=sys.stderr)
            return 1
        margins[variant.name] = [float(v) for v in values if v is not None]
        rows.append((f"margin: {variant.name}",
                     metrics(leave_one_out(margins[variant.name], labels), labels),
                     auc(margins[variant.name], labels), time.perf_counter() - started))
    standard = {name: standardise(v) for name, v in margins.items()}
    ensembles = {
        "ensemble: bundled + shuffled": ["bundled"] + [f"shuffled-{k}" for k in range(args.orders)],
        "ensemble: all few-shot": [n for n in standard if n != "zero-shot"],
        "ensemble: all": list(standard),
    }
    for name, members in ensembles.items():
        combined = [statistics.fmean(standard[m][i] for m in members) for i in range(len(tasks))]
        rows.append((name, metrics(leave_one_out(combined, labels), labels),
                     auc(combined, labels), 0.0))
    rows.append(("always No", metrics([False] * len(tasks), labels), None, 0.0))

    reference = rows[0][1].balanced_accuracy
    print(f"{'rule':32} {'bal.acc':>8} {'acc':>6} {'prec':>6} {'recall':>6} {'AUC':>6} "
          f"{'vs paper':>8} {'s':>6}")
    for name, m, area, seconds in rows:
        area_text = f"{area:.3f}" if area is not None else "-"
        print(f"{name:32} {m.balanced_accuracy:8.1%} {m.accuracy:6.1%} {m.precision:6.1%} "
              f"{m.recall:6.1%} {area_text:>6} {m.balanced_accuracy / reference:7.2f}x "
              f"{seconds:6.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"labels": labels, "margins": margins,
                                               "paper": paper_pred}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
