"""Curation signals a small model can compute about its own answers: pure functions.

- **Consensus** (Ensemble-Instruct's greedy minimum-Bayes-risk choice): among several
  candidate outputs for one input, the medoid is the candidate with the highest summed
  ROUGE-L F to the others; its *agreement* is that mean. Candidates that agree by chance
  are rare, so a low agreement marks an input the model cannot answer reliably.
- **Round-trip labels** (Alberti et al., 2019): a classification instance is kept only
  when its own label is the likeliest of the task's labels after its instruction and input.
- **Instruction-following difficulty** (Cherry LLM / Superfiltering): ``IFD = s(A|Q) /
  s(A)``, the mean token loss of the answer after the prompt over its loss alone. At 1 or
  more the instruction does not help predict the answer: the pair does not belong together.
- **The agreement threshold**, fitted on tasks whose outputs are known (the seed tasks),
  with its leave-one-out precision.

ROUGE-L here is the project's exact scorer (:mod:`selfinstruct.novelty.rouge`), the one
the novelty filter and the SuperNI scores use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from selfinstruct.novelty.rouge import rouge_l

# A seed answer counts as correct at this ROUGE-L F against the seed's own output (an exact
# label scores 1.0); SuperNI scores answers with the same measure.
CORRECT_AT = 0.5


def agreement_matrix(candidates: Sequence[str]) -> list[list[float]]:
    """ROUGE-L F between every two candidates (symmetric; 1.0 on the diagonal)."""
    n = len(candidates)
    matrix = [[1.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            matrix[i][j] = matrix[j][i] = rouge_l(candidates[i], candidates[j])
    return matrix


@dataclass(frozen=True)
class Consensus:
    index: int  # the medoid's position among the candidates
    agreement: float  # its mean ROUGE-L F to the other candidates (0..1)


def medoid(candidates: Sequence[str]) -> Consensus:
    """The candidate with the highest summed ROUGE-L to the others; on a tie the first
    (callers put the instance stage's own output first, so it wins ties). A lone candidate
    agrees with nothing: agreement 0."""
    if not candidates:
        raise ValueError("medoid of no candidates")
    if len(candidates) == 1:
        return Consensus(0, 0.0)
    matrix = agreement_matrix(candidates)
    sums = [sum(row) - 1.0 for row in matrix]
    best = max(range(len(candidates)), key=lambda i: (sums[i], -i))
    return Consensus(best, sums[best] / (len(candidates) - 1))


def ifd(logprob_after_prompt: float, logprob_alone: float) -> float:
    """``s(A|Q) / s(A)`` from the answer's summed log-probabilities after the prompt and
    alone, over the same answer tokens (so the ratio of sums is the ratio of mean losses).
    An answer the model predicts perfectly alone (loss 0) gains nothing from any prompt:
    infinity."""
    loss_with, loss_alone = -logprob_after_prompt, -logprob_alone
    if loss_alone <= 0.0:
        return math.inf
    return loss_with / loss_alone


def label_recovered(label_logprobs: dict[str, float], own: str) -> bool:
    """Whether ``own`` is the likeliest label (strictly: a tie does not recover it)."""
    mine = label_logprobs[own]
    return all(mine > score for label, score in label_logprobs.items() if label != own)


@dataclass(frozen=True)
class AgreementFit:
    """The agreement threshold fitted on tasks with known outputs, and what it is worth
    there: the share of kept answers that are correct (precision) and the share kept,
    in-sample and leaving each task out in turn (each task's decision made with the
    threshold fitted on the others)."""

    threshold: float
    tasks: int
    correct: int  # medoids correct at CORRECT_AT, before any threshold
    precision: float
    kept_share: float
    loo_precision: float
    loo_kept_share: float
    min_kept_share: float

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def fit_threshold(agreements: Sequence[float], correct: Sequence[bool],
                  min_kept_share: float) -> float:
    """The agreement threshold with the highest precision (share correct among the items
    at or above it) that still keeps at least ``min_kept_share`` of the items; on a tie the
    lowest (it keeps more). 0.0 when nothing is given."""
    if len(agreements) != len(correct):
        raise ValueError("agreements and correct differ in length")
    if not agreements:
        return 0.0
    n = len(agreements)
    pairs = sorted(zip(agreements, correct), key=lambda p: -p[0])
    best_t, best_p = 0.0, -1.0
    hits = 0
    for k, (value, ok) in enumerate(pairs, start=1):
        hits += ok
        if k < n and pairs[k][0] == value:
            continue  # a threshold keeps every item at its value
        if k / n + 1e-12 < min_kept_share:
            continue
        precision = hits / k
        if precision > best_p + 1e-12 or (abs(precision - best_p) <= 1e-12 and value < best_t):
            best_t, best_p = value, precision
    return best_t


def fit_agreement(agreements: Sequence[float], correct: Sequence[bool],
                  min_kept_share: float) -> AgreementFit:
    """:func:`fit_threshold` on all items, and its leave-one-out precision and kept share."""
    n = len(agreements)
    threshold = fit_threshold(agreements, correct, min_kept_share)
    kept = [i for i in range(n) if agreements[i] >= threshold]
    loo_kept = []
    for i in range(n):
        rest_a = [a for j, a in enumerate(agreements) if j != i]
        rest_c = [c for j, c in enumerate(correct) if j != i]
        if agreements[i] >= fit_threshold(rest_a, rest_c, min_kept_share):
            loo_kept.append(i)

    def share_correct(items: list[int]) -> float:
        return sum(correct[i] for i in items) / len(items) if items else 0.0

    return AgreementFit(
        threshold=threshold, tasks=n, correct=sum(bool(c) for c in correct),
        precision=share_correct(kept), kept_share=len(kept) / n if n else 0.0,
        loo_precision=share_correct(loo_kept), loo_kept_share=len(loo_kept) / n if n else 0.0,
        min_kept_share=min_kept_share,
    )


def is_correct(answer: str, reference: str) -> bool:
    """A seed answer is correct at ROUGE-L F >= :data:`CORRECT_AT` against the seed's own
    output."""
    return rouge_l(reference, answer) >= CORRECT_AT
