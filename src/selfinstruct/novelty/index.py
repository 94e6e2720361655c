"""The exact ROUGE-L novelty index behind Self-Instruct's "keep only new instructions" rule.

Self-Instruct keeps a generated instruction only if its ROUGE-L F-measure against every
instruction kept so far, seeds included, is at most 0.7. :class:`NoveltyIndex` answers that
question with scores identical to ``rouge_score`` (see :mod:`selfinstruct.novelty.rouge`), fast:

* ``add(text)``, ``most_similar(text, k)``, ``max_similarity(text)`` and
  ``similarity_stats(text, k)`` score the text against *every* indexed text in one batched
  ``rapidfuzz`` call (a C loop over token-id strings, roughly 30 ns a pair), then turn the
  integer LCS into ``rouge_score``'s float with numpy. Exact, O(N) per call; comfortable for
  the bootstrap stage's pool of 10^3-10^4 instructions.
* ``filter(candidates, threshold)`` applies the paper's sequential rule to a whole batch and
  scales to millions: a prefix-filtering similarity join (as in set-similarity joins) only
  looks at indexed texts that *could* exceed the threshold, then scores those exactly. The
  bounds that make the pruning safe are derived next to the code that uses them.

Each text is tokenized once and stored as a string whose characters are token ids (one code
point per distinct token), which ``rapidfuzz`` compares as fast as ordinary text. If the
vocabulary outgrows Unicode's 1,114,112 code points, the index switches to tuples of ints.

Deliberately left out: removing texts, persistence, approximate (MinHash/embedding)
search, and parallelism inside ``filter``: the rule is sequential, each decision depends on
every earlier one.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import LCSseq

from selfinstruct.novelty.rouge import Tokenizer

__all__ = ["DEFAULT_THRESHOLD", "NoveltyDecision", "NoveltyIndex"]

DEFAULT_THRESHOLD = 0.7

# Pruning bounds are computed for a threshold lowered by this much, so float rounding in the
# bound arithmetic (relative error ~1e-16) or in the score itself can only make them looser.
# A pair whose float score exceeds t has an exact score 2*LCS/(m+n) > t - 1e-15.
_SLACK = 1e-9

Seq = str | tuple[int, ...]
_NO_LIMIT = 2**31 - 1  # "any length" in an int32 posting
_FEW_HITS = 48  # below this many hits, candidate generation runs in plain Python


@dataclass(frozen=True, slots=True)
class NoveltyDecision:
    """One candidate's fate under the novelty rule.

    ``max_score`` is the candidate's highest ROUGE-L F against the pool it was compared with
    and ``nearest`` the earliest-added text reaching it. Both are exact for a rejected
    candidate. For a kept one they are ``None`` unless ``filter(..., score_kept=True)``: the
    fast join proves "nothing above the threshold" without finding the maximum.
    """

    text: str
    kept: bool
    max_score: float | None
    nearest: str | None


class _Vocab:
    """Maps tokens to dense ids and encodes a token list as a compact sequence."""

    limit = 0x110000  # code points available to chr(); beyond that, tuples of ints

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.wide = False

    def encode(self, tokens: list[str]) -> Seq:
        ids = self.ids
        try:
            out = [ids[token] for token in tokens]
        except KeyError:  # a new token: give it the next id
            out = [ids[t] if t in ids else ids.setdefault(t, len(ids)) for t in tokens]
            if not self.wide and len(ids) > self.limit:
                self.wide = True
        if self.wide:
            return tuple(out)
        return "".join(map(chr, out))


def _widen(seqs: list[Seq]) -> None:
    for i, s in enumerate(seqs):
        if isinstance(s, str):
            seqs[i] = tuple(map(ord, s))


class NoveltyIndex:
    """An append-only pool of texts, searchable by exact ROUGE-L F-measure.

    Scores equal ``RougeScorer(["rougeL"], use_stemmer=use_stemmer).score(a, b)["rougeL"]
    .fmeasure`` to the bit. Ties are broken by insertion order, earliest first.
    """

    def __init__(self, texts: Iterable[str] = (), *, use_stemmer: bool = False) -> None:
        self.use_stemmer = use_stemmer
        self._tokenize = Tokenizer(use_stemmer)
        self._vocab = _Vocab()
        self._texts: list[str] = []
        self._seqs: list[Seq] = []
        self._lens = np.zeros(1024, dtype=np.int64)  # token counts; first len(self) valid
        # The last query's scores, reused while the pool is unchanged: the bootstrap stage
        # asks max_similarity(c) and then most_similar(c, 1) or similarity_stats(c).
        self._last: tuple[str, int, np.ndarray] | None = None
        for text in texts:
            self.add(text)

    # -- building ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._texts)

    @property
    def texts(self) -> tuple[str, ...]:
        """The indexed texts, in insertion order."""
        return tuple(self._texts)

    def _encode(self, text: str) -> Seq:
        seq = self._vocab.encode(self._tokenize(text))
        if self._vocab.wide and self._seqs and isinstance(self._seqs[0], str):
            _widen(self._seqs)
        return seq

    def _append(self, text: str, seq: Seq) -> int:
        i = len(self._texts)
        if i == len(self._lens):
            self._lens = np.concatenate([self._lens, np.zeros(i, dtype=np.int64)])
        self._lens[i] = len(seq)
        self._texts.append(text)
        self._seqs.append(seq)
        return i

    def add(self, text: str) -> None:
        """Add one text to the pool (no novelty check; see :meth:`filter` for that)."""
        self._append(text, self._encode(text))

    # -- exact search over the whole pool ------------------------------------------

    def _scores(self, seq: Seq) -> np.ndarray:
        """ROUGE-L F of ``seq`` against every indexed text, in insertion order."""
        n = len(self._seqs)
        if n == 0 or len(seq) == 0:
            return np.zeros(n)
        lcs = process.cdist([seq], self._seqs, scorer=LCSseq.similarity, dtype=np.int64)[0]
        lens = self._lens[:n]
        scores = np.zeros(n)
        hit = lcs > 0  # LCS > 0 implies both lengths > 0; the rest score 0.0, as in rouge_score
        lcs, lens = lcs[hit], lens[hit]
        # Same operations, same order, as rouge_score (target = query, prediction = pool text).
        precision = lcs / lens
        recall = lcs / len(seq)
        scores[hit] = 2 * precision * recall / (precision + recall)
        return scores

    def _scores_of(self, text: str) -> np.ndarray:
        last = self._last
        if last is not None and last[1] == len(self._texts) and last[0] == text:
            return last[2]
        scores = self._scores(self._encode(text))
        self._last = (text, len(self._texts), scores)
        return scores

    def scores(self, text: str) -> np.ndarray:
        """ROUGE-L F of ``text`` against every indexed text, in insertion order."""
        return self._scores_of(text).copy()

    def _top_k(self, scores: np.ndarray, k: int) -> list[tuple[str, float]]:
        n = len(scores)
        if k <= 0 or n == 0:
            return []
        if k >= n:
            order = np.argsort(-scores, kind="stable")
        else:
            # The k-th largest value v; everything above v, then the earliest ties at v.
            v = np.partition(scores, n - k)[n - k]
            above = np.flatnonzero(scores > v)
            ties = np.flatnonzero(scores == v)[: k - len(above)]
            idx = np.concatenate([above, ties])
            order = idx[np.argsort(-scores[idx], kind="stable")]
        return [(self._texts[i], float(scores[i])) for i in order]

    def most_similar(self, text: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` most similar indexed texts as ``(text, score)``, highest first."""
        return self._top_k(self._scores_of(text), k)

    def max_similarity(self, text: str) -> float:
        """The highest ROUGE-L F against any indexed text (0.0 for an empty index)."""
        scores = self._scores_of(text)
        return float(scores.max()) if len(scores) else 0.0

    def similarity_stats(self, text: str, k: int = 10) -> tuple[list[tuple[str, float]], float]:
        """``(most_similar(text, k), mean score over all indexed texts)`` in one pass.

        The mean is ``numpy.mean`` over the scores in insertion order, as the original
        Self-Instruct computes its ``avg_similarity_score``; 0.0 for an empty index.
        """
        scores = self._scores_of(text)
        mean = float(np.mean(scores)) if len(scores) else 0.0
        return self._top_k(scores, k), mean

    # -- the sequential novelty rule ---------------------------------------------

    def filter(
        self,
        candidates: Iterable[str],
        threshold: float = DEFAULT_THRESHOLD,
        *,
        score_kept: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> list[NoveltyDecision]:
        """Self-Instruct's rule, in order: keep a candidate iff its max score <= ``threshold``.

        Each candidate is compared with everything already in the index plus every
        candidate kept before it; kept candidates are added to the index. Decisions are
        identical to scoring every pair with ``rouge_score``. ``score_kept=True`` also
        computes the exact max score and nearest text of kept candidates (a full pass over
        the pool for each, O(N)). ``progress(n)`` is called with the number of candidates
        decided since its last call.

        Cost: the join is built for each call (its token order depends on the candidates),
        which takes time linear in the pool; so filter large batches rather than one
        candidate at a time, or use ``max_similarity`` and ``add`` for that.
        """
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {threshold!r}")
        texts = list(candidates)
        seqs = [self._encode(t) for t in texts]
        if self._vocab.wide:
            _widen(seqs)
        join = _PrefixJoin(threshold, _rarity_rank(self._seqs, seqs), len(self._vocab.ids))
        for i, seq in enumerate(self._seqs):
            join.insert(i, seq)

        decisions = []
        done = 0
        for text, seq in zip(texts, seqs):
            prefix = join.prefix(seq)
            best, best_id = join.best_above(seq, prefix, self._seqs, self._lens)
            if best_id >= 0:
                decisions.append(NoveltyDecision(text, False, best, self._texts[best_id]))
            else:
                score, nearest = None, None
                if score_kept:
                    scores = self._scores(seq)
                    if len(scores):
                        j = int(np.argmax(scores))  # first occurrence of the max
                        score, nearest = float(scores[j]), self._texts[j]
                    else:
                        score = 0.0
                join.insert(self._append(text, seq), seq, prefix)
                decisions.append(NoveltyDecision(text, True, score, nearest))
            done += 1
            if progress is not None and done == 1024:
                progress(done)
                done = 0
        if progress is not None and done:
            progress(done)
        return decisions


def _rarity_rank(*collections: Sequence[Seq]) -> dict[Hashable, int]:
    """A total order on tokens, rarest first (by document frequency), for prefix filtering."""
    df: Counter[Hashable] = Counter()
    for seqs in collections:
        for seq in seqs:
            df.update(set(seq))
    ordered = sorted(df, key=lambda tok: (df[tok], tok))
    return {tok: r for r, tok in enumerate(ordered)}


class _PrefixJoin:
    """Finds every indexed text whose ROUGE-L F with a query can exceed a threshold ``t``.

    Why it is safe. Let the query have m tokens, an indexed text n, and L = LCS.
    rouge_score's F is 2*L/(m+n) (precision L/n, recall L/m, harmonic mean), so
    F >= t  <=>  L >= t*(m+n)/2. Each filter below bounds L from above and drops the pair
    only when the bound is below t*(m+n)/2.

    1. Length: L <= min(m, n), so F >= t needs 2*min(m, n) >= t*(m+n), i.e.
       min/max >= t/(2-t).
    2. Overlap: a common subsequence uses each token at most as often as it occurs in both
       texts, so L <= K := |A & B|, the size of the token *multiset* intersection. Treat the
       k-th occurrence of a token as its own element (token, k); then multisets are sets.
    3. Minimum overlap from one side alone: L >= t*(m+n)/2 and n >= L give
       L >= t*(m+L)/2, so L >= t*m/(2-t). Hence K >= o(m) := ceil(t*m/(2-t)), and
       symmetrically K >= o(n) (and K >= 1 when t = 0, since F > 0 needs a shared token).
    4. Prefix filtering (Chaudhuri et al. 2006; Bayardo et al. 2007), two shared elements:
       sort every text's elements by one global order (rarest first, which keeps posting
       lists short; any fixed order would be correct). Let w1 < w2 < ... < wK be the shared
       elements. At least K - s shared elements follow w_s in text X, so w_s sits within
       X's first |X| - K + s <= |X| - o(|X|) + s elements. So both w1 and w2 lie within the
       first |X| - o(|X|) + 2 elements of *both* texts (its "prefix", capped at |X|): a
       pair with F >= t has at least two hits between the query's prefix and the indexed
       text's prefix, provided K >= 2, which holds when o(m) >= 2. (When o(m) = 1, one hit
       is required: w1 lies within the first |X| - o(|X|) + 1 elements.)
    5. Positional filter (Xiao et al. 2008, "PPJoin"): a hit is a shared element at position
       i of the query's order and j of the indexed text's (0-based). The K - s shared
       elements after w_s come after it in both orders, so K <= s + min(m-1-i, n-1-j) at
       w_s's hit; for s = 1 and s = 2 alike, K <= 2 + min(m-1-i, n-1-j). So only hits with
       2*(2 + min(a, r)) >= t*(m+n), a = m-1-i, r = n-1-j, are counted for bound 4. The test
       splits into n <= 2*(2+a)/t - m (a bound on the indexed text's length, per query
       element) and m <= 2*(2+r)/t - n (a bound on the query's length, kept in the
       posting): two integer comparisons per hit. (As 2 + min(a, r) <= 1 + min(m, n), it
       also implies the length filter 1, loosened by one token.)
    6. Token count: every token of a common subsequence of B occurs in A, so
       L <= U := the number of positions of B whose token occurs anywhere in A.

    All bounds use t - 1e-9 (see ``_SLACK``), so a pair whose float score is above t is
    always found; every pair that survives is then scored exactly.
    """

    def __init__(self, threshold: float, rank: dict[Hashable, int], vocab_size: int) -> None:
        self.threshold = threshold
        self.t_lo = max(0.0, threshold - _SLACK)
        self.rank = rank
        self.postings: dict[int, array] = {}
        # Per text length n (computed for the lengths that occur, never for every length
        # up to the longest: that made one long record quadratic): the prefix length, the
        # hits needed (filter 4) and _longest_match for each prefix position (filter 5).
        self._prefix_len: dict[int, int] = {}
        self._hits_needed: dict[int, int] = {}
        self._longest: dict[int, list[int]] = {}
        # Token ids of every indexed text, end to end (for bound 6); start[id] is its offset.
        self._tokens = np.zeros(1 << 16, dtype=np.int32)
        self._start = np.zeros(1 << 12, dtype=np.int64)
        self._size = 0
        self._in_query = np.zeros(vocab_size, dtype=bool)

    def prefix_len(self, n: int) -> int:
        """min(n, n - o(n) + 2): how many of a text's rarest elements are indexed/probed."""
        found = self._prefix_len.get(n)
        if found is None:
            o = max(1, math.ceil(self.t_lo * n / (2 - self.t_lo)))
            found = self._prefix_len[n] = min(n, n - o + 2)
            self._hits_needed[n] = 2 if o >= 2 else 1
            self._longest[n] = [self._longest_match(n - 1 - j, n) for j in range(found)]
        return found

    def prefix(self, seq: Seq) -> list[int]:
        """The first elements of ``seq`` in the global order, as ints (rank << 32 | k)."""
        ranks = sorted(map(self.rank.__getitem__, seq))[: self.prefix_len(len(seq))]
        if len(set(ranks)) == len(ranks):  # the usual case: no token twice in the prefix
            return [r << 32 for r in ranks]
        keys = []
        prev, k = -1, 0
        for r in ranks:
            k = k + 1 if r == prev else 0  # the k-th occurrence of one token
            prev = r
            keys.append(r << 32 | k)
        return keys

    def _longest_match(self, after: int, length: int) -> int:
        """Bound 5 as a length: the longest other text that an element with ``after``
        elements after it, in a text of ``length`` tokens, can still match:
        2*(2+after) >= t*(length+other)  <=>  other <= 2*(2+after)/t - length."""
        if self.t_lo == 0.0:
            return _NO_LIMIT
        return min(_NO_LIMIT, math.floor(2 * (2 + after) / self.t_lo - length + 1e-6))

    def insert(self, doc_id: int, seq: Seq, prefix: list[int] | None = None) -> None:
        """Index a text's prefix (query and index prefixes coincide, so one can be reused).

        A posting is (text id, text length n, longest query that this element can match).
        """
        n = len(seq)
        postings = self.postings
        keys = self.prefix(seq) if prefix is None else prefix
        for key, longest in zip(keys, self._longest[n]):
            posting = postings.get(key)
            if posting is None:
                posting = postings[key] = array("i")
            posting.extend((doc_id, n, longest))
        ids = _token_ids(seq)
        end = self._size + n
        while end > len(self._tokens):
            self._tokens = np.concatenate([self._tokens, np.zeros_like(self._tokens)])
        while doc_id >= len(self._start):
            self._start = np.concatenate([self._start, np.zeros_like(self._start)])
        self._tokens[self._size : end] = ids
        self._start[doc_id] = self._size
        self._size = end

    def candidates(self, seq: Seq, prefix: list[int], lens: np.ndarray) -> list[int]:
        """Ids of indexed texts that pass filters 4, 5 and 6 for ``seq``, ascending."""
        m = len(seq)
        found, longest = [], []
        total = 0
        postings = self.postings
        for key, bound in zip(prefix, self._longest[m]):
            posting = postings.get(key)
            if posting is not None:
                found.append(posting)
                longest.append(bound)
                total += len(posting)
        if total <= 3 * _FEW_HITS:  # the same filters, without numpy's per-call overhead
            counts: dict[int, int] = {}
            for posting, bound in zip(found, longest):
                for k in range(0, len(posting), 3):
                    if posting[k + 1] <= bound and posting[k + 2] >= m:
                        counts[posting[k]] = counts.get(posting[k], 0) + 1
            need = self._hits_needed[m]
            return sorted(doc for doc, count in counts.items() if count >= need)
        views = [np.frombuffer(posting, dtype=np.int32) for posting in found]
        hits = np.concatenate(views)
        sizes = [len(v) // 3 for v in views]
        del views  # release the buffers: the arrays grow again on the next insert
        # Filter 5, both halves: the indexed text is short enough for the query's element,
        # and the query is short enough for the indexed text's element.
        ok = (hits[1::3] <= np.repeat(longest, sizes)) & (hits[2::3] >= m)
        docs = np.sort(hits[3 * np.flatnonzero(ok)])
        if self._hits_needed[m] == 2:  # filter 4: two hits (a text's ids are now adjacent)
            docs = docs[1:][docs[1:] == docs[:-1]]
        if len(docs) > 1:  # one id per text
            docs = docs[np.concatenate(([True], docs[1:] != docs[:-1]))]
        if len(docs) < 16:  # scoring a few pairs costs less than filter 6
            return docs.tolist()
        # Filter 6: count, for each candidate, its tokens that occur in the query.
        n = lens[docs]
        offsets = np.cumsum(n) - n
        where = np.arange(int(offsets[-1] + n[-1])) + np.repeat(self._start[docs] - offsets, n)
        query_ids = _token_ids(seq)
        self._in_query[query_ids] = True
        found = self._in_query[self._tokens[where]]
        self._in_query[query_ids] = False
        upper = np.add.reduceat(found, offsets, dtype=np.int64)
        return docs[2 * np.minimum(upper, m) >= self.t_lo * (m + n)].tolist()

    def best_above(
        self, seq: Seq, prefix: list[int], seqs: list[Seq], lens: np.ndarray
    ) -> tuple[float, int]:
        """The highest score above the threshold and its earliest text id, or (0.0, -1)."""
        m = len(seq)
        if m == 0:
            return 0.0, -1
        best, best_id = self.threshold, -1
        for j in self.candidates(seq, prefix, lens):  # ascending: the first maximum is kept
            common = LCSseq.similarity(seq, seqs[j])
            if common == 0:
                continue
            precision = common / len(seqs[j])  # rouge_score's exact float operations
            recall = common / m
            score = 2 * precision * recall / (precision + recall)
            if score > best:
                best, best_id = score, j
        return (best, best_id) if best_id >= 0 else (0.0, -1)


def _token_ids(seq: Seq) -> np.ndarray:
    if isinstance(seq, str):
        return np.frombuffer(seq.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    return np.array(seq, dtype=np.int64)
