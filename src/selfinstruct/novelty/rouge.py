"""ROUGE-L exactly as ``rouge_score`` computes it, without ``rouge_score``'s per-pair cost.

Self-Instruct's novelty rule compares instructions with
``rouge_score.rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)``. This module
reproduces that score bit for bit, in three pieces:

* :class:`Tokenizer` mirrors ``rouge_score.tokenize.tokenize``: lowercase; every run of
  characters outside ``[a-z0-9]`` becomes a separator; with ``use_stemmer``, tokens longer
  than 3 characters go through NLTK's ``PorterStemmer()`` (the same class and mode that
  ``rouge_score.tokenizers.DefaultTokenizer`` builds), and anything the stemmer turns into a
  non-``[a-z0-9]+`` string is dropped. Stems are memoised; the stemmer is a pure function.
* the longest common subsequence (LCS) comes from ``rapidfuzz.distance.Indel``:
  ``Indel.distance(a, b) == len(a) + len(b) - 2 * LCS(a, b)`` on any two sequences.
* :func:`fmeasure_from_lcs` turns the integer LCS into the float with the same operations,
  in the same order, as ``rouge_score.rouge_scorer._score_lcs``::

      precision = lcs / len(prediction); recall = lcs / len(target)
      fmeasure = 2 * precision * recall / (precision + recall)   # 0.0 when lcs == 0

  so the result is identical, not just close. The score is symmetric to the bit: swapping
  the texts swaps precision and recall, ``2 * p`` is exact, and IEEE ``*`` and ``+`` are
  commutative. A text with no tokens scores 0.0 against anything, itself included.

Worked example (pinned in ``tests/unit/novelty/test_rouge.py``)::

    "Write a poem about the sea."  ->  write a poem about the sea     (6 tokens)
    "Write a short poem about the sea" -> write a short poem about the sea (7 tokens)
    LCS = 6; precision = 6/7; recall = 6/6; F = 2 * (6/7) * 1 / (6/7 + 1) = 12/13 = 0.923...

Deliberately left out: ROUGE-N, ROUGE-Lsum, bootstrap aggregation, and the ``nltk`` import
unless stemming is asked for.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from rapidfuzz.distance import Indel

__all__ = ["Tokenizer", "fmeasure_from_lcs", "lcs_length", "rouge_l"]

# rouge_score lowercases, replaces [^a-z0-9]+ with a space and splits on whitespace; the
# tokens are therefore exactly the maximal [a-z0-9]+ runs of the lowercased text.
_TOKEN_RE = re.compile(r"[a-z0-9]+")
# rouge_score's final validity check, applied to stemmer output (same pattern, same `match`).
_VALID_TOKEN_RE = re.compile(r"^[a-z0-9]+$")


class Tokenizer:
    """``rouge_score``'s default tokenizer, with the stemmer's results memoised."""

    def __init__(self, use_stemmer: bool = False) -> None:
        self.use_stemmer = use_stemmer
        self._stem_cache: dict[str, str | None] = {}
        self._stemmer: Any = None
        if use_stemmer:
            from nltk.stem import porter  # what rouge_score.tokenizers uses

            self._stemmer = porter.PorterStemmer()

    def __call__(self, text: str) -> list[str]:
        tokens = _TOKEN_RE.findall(text.lower())
        if self._stemmer is None:
            return tokens
        cache = self._stem_cache
        out = []
        for token in tokens:
            if len(token) <= 3:  # rouge_score stems only tokens longer than 3 characters
                out.append(token)
                continue
            stem = cache.get(token, "")
            if stem == "":
                stemmed = self._stemmer.stem(token)
                stem = cache[token] = stemmed if _VALID_TOKEN_RE.match(stemmed) else None
            if stem is not None:
                out.append(stem)
        return out


def lcs_length(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Length of the longest common subsequence of two sequences (strings, token lists)."""
    return (len(a) + len(b) - Indel.distance(a, b)) // 2


def fmeasure_from_lcs(lcs: int, target_len: int, prediction_len: int) -> float:
    """ROUGE-L F-measure from an integer LCS, with ``rouge_score``'s exact float operations."""
    if target_len == 0 or prediction_len == 0:
        return 0.0
    precision = lcs / prediction_len
    recall = lcs / target_len
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def rouge_l(target: str, prediction: str, *, tokenizer: Tokenizer | None = None) -> float:
    """ROUGE-L F-measure of two texts; equal to ``RougeScorer(["rougeL"]).score(...)``."""
    tokenize = tokenizer or Tokenizer()
    a, b = tokenize(target), tokenize(prediction)
    return fmeasure_from_lcs(lcs_length(a, b), len(a), len(b))
