"""One arm fine-tuned at several seeds: the spread over seeds, and the effect beside it.

An arm named ``NAME@SEED`` is arm NAME fine-tuned again at another seed; ``NAME`` alone is
its first fine-tune. A fine-tune's luck (the seed's data order, dropout and LoRA start)
moves a small model's score by about a point, as much as the effects this tool is used
to measure, so one fine-tune per arm can mislead. For every arm with two fine-tunes or
more this module reports:

- each fine-tune's ROUGE-L, their mean and sample standard deviation (the spread over
  seeds);
- the difference to the reference arm *averaged over seeds*: each instance's score is
  averaged over an arm's fine-tunes first, then the paired bootstrap over instances gives
  the interval. That interval is over instances only: it holds these fine-tunes fixed, so
  read it beside the standard deviation, never instead of it;
- the difference at each seed both arms were fine-tuned at (``NAME`` pairs with ``REF``,
  ``NAME@2`` with ``REF@2``), with its paired interval.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

SEED_MARK = "@"

Interval = Callable[[list[float]], tuple[float, float]]


def arm_family(name: str) -> str:
    """The arm a fine-tune belongs to: ``seeds-only@2`` -> ``seeds-only``."""
    return name.split(SEED_MARK, 1)[0]


def seed_label(name: str) -> str:
    """The seed part of an arm's name ('' for the first fine-tune)."""
    return name.partition(SEED_MARK)[2]


def _averaged(members: Sequence[tuple[str, list[float]]]) -> list[float]:
    """Each instance's score averaged over the fine-tunes."""
    return [sum(scores) / len(scores) for scores in zip(*(s for _, s in members))]


def _difference(a: list[float], b: list[float], interval: Interval) -> dict:
    delta = [x - y for x, y in zip(a, b)]
    low, high = interval(delta)
    return {"delta": round(sum(delta) / max(len(delta), 1), 2),
            "ci95": [round(low, 2), round(high, 2)]}


def seed_spread(arms: Sequence[tuple[str, list[float]]], reference: str,
                interval: Interval) -> list[dict]:
    """The spread of every arm with two fine-tunes or more, in the order the arms first
    appear, each with its differences to the reference arm and to every such arm before
    it (``versus``). ``arms`` are (name, per-instance ROUGE-L) in the comparison's order;
    ``interval`` turns per-instance values into a 95% interval of their mean (the
    comparison's paired bootstrap)."""
    families: dict[str, list[tuple[str, list[float]]]] = {}
    for name, scores in arms:
        families.setdefault(arm_family(name), []).append((name, scores))
    out = []
    earlier = [arm_family(reference)]
    for family, members in families.items():
        if len(members) < 2:
            continue
        means = [sum(s) / max(len(s), 1) for _, s in members]
        entry: dict = {
            "arm": family, "fine_tunes": [name for name, _ in members],
            "rougeL": [round(m, 2) for m in means],
            "mean": round(statistics.fmean(means), 2),
            "sd": round(statistics.stdev(means), 2),
            "min": round(min(means), 2), "max": round(max(means), 2),
            "versus": {other: _versus(members, families[other], interval)
                       for other in earlier if other != family}}
        earlier.append(family)
        out.append(entry)
    return out


def _versus(members: list[tuple[str, list[float]]], others: list[tuple[str, list[float]]],
            interval: Interval) -> dict:
    """An arm's fine-tunes minus another arm's: averaged over seeds, and seed by seed."""
    by_seed = {seed_label(name): scores for name, scores in others}
    return {"seed_averaged": _difference(_averaged(members), _averaged(others), interval),
            "same_seed": {(seed_label(name) or "first"): _difference(
                scores, by_seed[seed_label(name)], interval)
                for name, scores in members if seed_label(name) in by_seed}}


def _signed(d: dict) -> str:
    return f"{d['delta']:+.2f} ({d['ci95'][0]:+.2f} to {d['ci95'][1]:+.2f})"


def render_seed_spread(spread: list[dict]) -> list[str]:
    """Markdown lines for :func:`seed_spread`'s entries (none when there are none)."""
    if not spread:
        return []
    lines = ["", (f"Spread over fine-tune seeds (`NAME{SEED_MARK}SEED` is arm NAME fine-tuned "
             "at another seed):"), "",
             "| arm | fine-tunes | ROUGE-L of each | mean | sd |", "|---|---|---|---|---|"]
    for entry in spread:
        each = ", ".join(f"{v:.2f}" for v in entry["rougeL"])
        lines.append(f"| {entry['arm']} | {len(entry['fine_tunes'])} | {each} | "
                     f"{entry['mean']:.2f} | {entry['sd']:.2f} |")
    lines += ["", ("Differences with the fine-tune seeds taken into account. Seed-averaged: "
              "each instance averaged over an arm's fine-tunes first; its 95% interval is "
              "over instances only, so read it beside the sd above. Same seed: the "
              "fine-tunes made at one seed, paired."), "",
              "| arm | minus | seed-averaged (95% CI) | same seed (95% CI) |",
              "|---|---|---|---|"]
    for entry in spread:
        for other, diff in entry["versus"].items():
            same = "; ".join(f"{seed}: {_signed(d)}" for seed, d in diff["same_seed"].items())
            lines.append(f"| {entry['arm']} | {other} | {_signed(diff['seed_averaged'])} | "
                         f"{same} |")
    return lines
