"""Cohen's kappa: how far two raters agree beyond chance, on the paper's A/B/C/D scale.

For N items rated by both raters, with p_o the share of items they rate the same and
p_e = sum over levels k of (share of k for rater 1) x (share of k for rater 2)::

    kappa = (p_o - p_e) / (1 - p_e)

1 is perfect agreement, 0 what chance gives, below 0 worse than chance. When both raters
give one and the same level to every item, p_e = 1 and kappa is undefined (None).
This is the unweighted kappa: a B against a C disagrees as much as an A against a D.

:func:`human_judge_agreement` pairs a human's ratings with each judge's, on the
(model, instance_id) items both rated with a letter. What it leaves out: weighted kappa,
and more than two raters (Fleiss).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from selfinstruct.evaluation.ratings import LEVELS


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> float | None:
    """Unweighted Cohen's kappa of two equally long label sequences; None if undefined."""
    if len(first) != len(second):
        raise ValueError(f"rater sequences differ in length: {len(first)} != {len(second)}")
    n = len(first)
    if n == 0:
        return None
    observed = sum(a == b for a, b in zip(first, second)) / n
    count1, count2 = Counter(first), Counter(second)
    expected = sum(count1[k] * count2[k] for k in count1) / (n * n)
    if expected == 1:
        return None
    return (observed - expected) / (1 - expected)


@dataclass(frozen=True)
class Agreement:
    judge: str
    items: int               # rated with a letter by both
    observed: float | None   # share of items with the same letter
    kappa: float | None


def human_judge_agreement(human: Iterable[dict], judges: Iterable[dict]) -> list[Agreement]:
    """Kappa between one human's ratings and each ``judge:*`` rater, in ratings format."""
    mine = {(r["model"], r["instance_id"]): r["rating"] for r in human if r.get("rating") in LEVELS}
    by_judge: dict[str, dict[tuple[str, str], str]] = {}
    for r in judges:
        rater = r.get("rater", "")
        if rater.startswith("judge:") and r.get("rating") in LEVELS:
            by_judge.setdefault(rater, {})[(r["model"], r["instance_id"])] = r["rating"]
    result = []
    for judge, ratings in sorted(by_judge.items()):
        shared = sorted(set(mine) & set(ratings))
        a = [mine[k] for k in shared]
        b = [ratings[k] for k in shared]
        observed = sum(x == y for x, y in zip(a, b)) / len(a) if a else None
        result.append(Agreement(judge, len(shared), observed, cohen_kappa(a, b)))
    return result
