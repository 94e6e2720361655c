"""Compare several models' SuperNI predictions on the same instances, with confidence intervals.

Each *arm* is a name and a predictions file (``eval superni run``'s ``predictions.jsonl``);
``copy-input`` is a built-in arm that predicts each instance's input (SuperNI's published
"Copying Instance Input" baseline). Every arm is scored on exactly the instances given
(the same selection for all), so a half-finished arm shows up as missing predictions,
scored as empty and counted, never as a different test set.

Uncertainty: a percentile bootstrap over instances (``resamples`` draws with replacement,
seeded), the same draws for every arm, so the interval of a *difference* between two arms
is paired, as it should be for two models on one test set. Per-category means come with
their instance counts; categories with few instances have wide intervals, and the table
says so by giving them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from selfinstruct.evaluation.seed_spread import render_seed_spread, seed_spread
from selfinstruct.evaluation.superni import SuperNIInstance, load_predictions, score_instance
from selfinstruct.files import atomic_write_text

COPY_INPUT = "copy-input"


@dataclass
class ArmScores:
    name: str
    per_instance: list[float]  # ROUGE-L in [0, 100], in instance order
    missing: int = 0
    per_category: dict[str, float] = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return sum(self.per_instance) / max(len(self.per_instance), 1)


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def bootstrap_interval(values: list[float], draws: list[list[int]],
                       level: float = 0.95) -> tuple[float, float]:
    means = sorted(sum(values[i] for i in draw) / len(draw) for draw in draws)
    tail = (1.0 - level) / 2
    return _percentile(means, tail), _percentile(means, 1.0 - tail)


def score_arms(instances: list[SuperNIInstance], arms: Mapping[str, str | Path | None],
               ) -> list[ArmScores]:
    """ROUGE-L per instance for each arm (``None`` as the path: the copy-input baseline)."""
    results = []
    for name, path in arms.items():
        predictions = ({inst.id: inst.input for inst in instances} if path is None
                       else load_predictions(path))
        arm = ArmScores(name, [])
        sums: dict[str, list[float]] = {}
        for inst in instances:
            prediction = predictions.get(inst.id)
            if prediction is None:
                arm.missing += 1
                prediction = ""
            rouge = 100.0 * score_instance(prediction, inst.outputs)[0]
            arm.per_instance.append(rouge)
            sums.setdefault(inst.category, []).append(rouge)
        arm.per_category = {c: sum(v) / len(v) for c, v in sorted(sums.items())}
        results.append(arm)
    return results


def compare(instances: list[SuperNIInstance], arms: Mapping[str, str | Path | None], *,
            resamples: int = 1000, seed: int = 0) -> dict:
    """The comparison as a JSON-able dict (see :func:`render_markdown`)."""
    scored = score_arms(instances, arms)
    rng = random.Random(seed)
    n = len(instances)
    draws = [[rng.randrange(n) for _ in range(n)] for _ in range(resamples)] if n else []
    reference = scored[0]
    categories = sorted({inst.category for inst in instances})
    counts = {c: sum(1 for inst in instances if inst.category == c) for c in categories}
    out_arms = []
    for arm in scored:
        low, high = bootstrap_interval(arm.per_instance, draws) if draws else (0.0, 0.0)
        entry = {"name": arm.name, "rougeL": round(arm.mean, 2),
                 "ci95": [round(low, 2), round(high, 2)], "missing": arm.missing,
                 "per_category": {c: round(v, 2) for c, v in arm.per_category.items()}}
        if arm is not reference and draws:
            delta = [a - b for a, b in zip(arm.per_instance, reference.per_instance)]
            d_low, d_high = bootstrap_interval(delta, draws)
            entry["minus_" + reference.name] = {
                "delta": round(sum(delta) / n, 2), "ci95": [round(d_low, 2), round(d_high, 2)]}
        out_arms.append(entry)
    result = {"instances": n, "tasks": len({inst.task for inst in instances}),
              "resamples": resamples, "seed": seed, "reference": reference.name,
              "category_instances": counts, "arms": out_arms}
    spread = seed_spread([(arm.name, arm.per_instance) for arm in scored], reference.name,
                         lambda values: bootstrap_interval(values, draws) if draws
                         else (0.0, 0.0))
    if spread:
        result["seed_spread"] = spread
    return result


def render_markdown(result: dict) -> str:
    ref = result["reference"]
    lines = [(f"SuperNI, {result['instances']} instances of {result['tasks']} tasks; ROUGE-L "
             f"with a 95% bootstrap interval over instances ({result['resamples']} paired "
             "resamples)."), "",
             f"| arm | ROUGE-L | 95% CI | vs {ref} (95% CI) | missing |",
             "|---|---|---|---|---|"]
    for arm in result["arms"]:
        diff = arm.get("minus_" + ref)
        diff_text = (f"{diff['delta']:+.2f} ({diff['ci95'][0]:+.2f} to {diff['ci95'][1]:+.2f})"
                     if diff else "")
        lines.append(f"| {arm['name']} | {arm['rougeL']:.2f} | {arm['ci95'][0]:.2f} to "
                     f"{arm['ci95'][1]:.2f} | {diff_text} | {arm['missing']} |")
    names = [arm["name"] for arm in result["arms"]]
    lines += ["", "| category | instances | " + " | ".join(names) + " |",
              "|---|---|" + "---|" * len(names)]
    for category, count in result["category_instances"].items():
        cells = " | ".join(f"{arm['per_category'].get(category, 0.0):.2f}"
                           for arm in result["arms"])
        lines.append(f"| {category} | {count} | {cells} |")
    lines += render_seed_spread(result.get("seed_spread", []))
    return "\n".join(lines) + "\n"


def write_comparison(result: dict, out_dir: str | Path) -> tuple[Path, Path]:
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / "comparison.json", folder / "comparison.md"
    atomic_write_text(json_path, json.dumps(result, indent=2) + "\n")
    atomic_write_text(md_path, render_markdown(result))
    return json_path, md_path
