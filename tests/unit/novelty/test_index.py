"""NoveltyIndex: exact scores, and decisions identical to the original sequential algorithm.

The reference below is Self-Instruct's rule written the slow, obvious way on top of
rouge_score. Real-text parity uses ../shared/data next to the repository root; those tests
skip when it is missing.
"""

from __future__ import annotations

import json
import random
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import paths
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer

import selfinstruct.novelty.index as novelty_module
from selfinstruct.novelty.index import NoveltyDecision, NoveltyIndex, _PrefixJoin, _rarity_rank

SHARED = paths.SHARED / "data"
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"shared data not found at {SHARED} (../shared/data)"
)


# -- the reference: Self-Instruct's loop over rouge_score ---------------------------------


def reference_scores(pool: list[str], text: str, use_stemmer: bool = False) -> list[float]:
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer)
    tokenize = scorer._tokenizer.tokenize
    target = tokenize(text)
    # What RougeScorer.score(text, p) does, with the candidate tokenized once.
    return [rouge_scorer._score_lcs(target, tokenize(p)).fmeasure for p in pool]


def reference_filter(
    seeds: list[str], candidates: list[str], threshold: float = 0.7, use_stemmer: bool = False
) -> list[NoveltyDecision]:
    """Keep a candidate iff max ROUGE-L against seeds + kept candidates <= threshold."""
    pool = list(seeds)
    decisions = []
    for text in candidates:
        scores = reference_scores(pool, text, use_stemmer)
        best = max(scores, default=0.0)
        nearest = pool[scores.index(best)] if scores else None
        kept = best <= threshold
        decisions.append(NoveltyDecision(text, kept, float(best), nearest))
        if kept:
            pool.append(text)
    return decisions


def assert_same_decisions(ours, ref, score_kept: bool) -> None:
    assert len(ours) == len(ref)
    for k, (a, b) in enumerate(zip(ours, ref)):
        assert a.text == b.text
        assert a.kept == b.kept, (k, a, b)
        if not a.kept or score_kept:
            assert a.max_score == b.max_score, (k, a, b)  # bit-identical floats
            assert a.nearest == b.nearest, (k, a, b)
        else:
            assert a.max_score is None and a.nearest is None


# -- the small API -------------------------------------------------------------------

POOL = [
    "Write a poem about the sea.",
    "Write a short poem about the sea.",
    "Give me three tips for staying healthy.",
    "Write a poem about the sea!",  # same tokens as the first: a tie
    "Translate the sentence into French.",
]


def test_most_similar_orders_by_score_then_insertion():
    index = NoveltyIndex(POOL)
    query = "write a poem about the sea"
    ref = reference_scores(POOL, query)
    top = index.most_similar(query, 3)
    assert top == [(POOL[0], 1.0), (POOL[3], 1.0), (POOL[1], ref[1])]
    assert index.most_similar(query, 100) == sorted(
        zip(POOL, ref), key=lambda pair: -pair[1]
    )  # sorted() is stable: ties stay in insertion order
    assert index.most_similar(query, 0) == []
    assert index.max_similarity(query) == 1.0


def test_top_k_ties_at_the_cut_take_the_earliest():
    pool = ["a b c", "x y z", "a b d", "a b e", "a b f", "q r s"]
    index = NoveltyIndex(pool)
    top = index.most_similar("a b", 2)
    assert [t for t, _ in top] == ["a b c", "a b d"]
    assert all(s == reference_scores(pool, "a b")[0] for _, s in top)


def test_similarity_stats_match_the_original_computation():
    index = NoveltyIndex(POOL)
    query = "Write a poem about the ocean."
    ref = reference_scores(POOL, query)
    top, mean = index.similarity_stats(query, k=10)
    assert mean == float(np.mean(ref))
    assert top == index.most_similar(query, 10)
    assert [s for _, s in top] == sorted(ref, reverse=True)
    assert list(index.scores(query)) == ref


def test_the_bootstrap_calling_pattern_matches_the_reference():
    """add seeds; per candidate max_similarity, then most_similar or similarity_stats + add."""
    seeds = POOL[:3]
    candidates = [
        "Write a poem about the ocean.",
        "Write a poem about the ocean!",
        "Give me four tips for staying healthy and fit.",
        "Describe the water cycle.",
    ]
    index = NoveltyIndex(use_stemmer=False)
    for seed in seeds:
        index.add(seed)
    for decision in reference_filter(seeds, candidates):
        c = decision.text
        pool = list(index.texts)
        ref = reference_scores(pool, c)
        assert index.max_similarity(c) == decision.max_score == max(ref)
        if index.max_similarity(c) > 0.7:
            assert not decision.kept
            assert index.most_similar(c, 1) == [(decision.nearest, decision.max_score)]
            continue
        assert decision.kept
        top, mean = index.similarity_stats(c, 10)
        assert mean == float(np.mean(ref))
        assert top == sorted(zip(pool, ref), key=lambda pair: -pair[1])[:10]
        index.add(c)
        assert index.max_similarity(c) == 1.0  # the cached scores were for the old pool


def test_scores_returns_a_copy():
    index = NoveltyIndex(POOL)
    scores = index.scores(POOL[0])
    scores[:] = 0.0
    assert index.max_similarity(POOL[0]) == 1.0


def test_empty_index_and_empty_text():
    index = NoveltyIndex()
    assert len(index) == 0
    assert index.max_similarity("anything") == 0.0
    assert index.most_similar("anything") == []
    assert index.similarity_stats("anything") == ([], 0.0)
    index.add("!!!")  # no tokens at all
    index.add("hello world")
    assert index.texts == ("!!!", "hello world")
    assert list(index.scores("...")) == [0.0, 0.0]
    assert list(index.scores("!!!")) == [0.0, 0.0]  # no tokens scores 0, even against itself


def test_exactly_the_threshold_is_kept_and_float_rounding_decides():
    ten = "one two three four five six seven eight nine ten"
    seven_of_ten = "one two three four five six seven x1 x2 x3"  # LCS 7, m = n = 10: F == 0.7
    assert reference_scores([ten], seven_of_ten) == [0.7]
    decisions = NoveltyIndex([ten]).filter([seven_of_ten])
    assert decisions[0].kept
    # m = 7, n = 13, LCS = 7: exactly 7/10 in exact arithmetic, 0.7000000000000001 in floats.
    seven = "one two three four five six seven"
    thirteen = seven + " y1 y2 y3 y4 y5 y6"
    assert reference_scores([thirteen], seven) == [0.7000000000000001]
    decision = NoveltyIndex([thirteen]).filter([seven])[0]
    assert decision == NoveltyDecision(seven, False, 0.7000000000000001, thirteen)


def test_filter_keeps_novel_rejects_near_duplicates_and_duplicates_in_the_batch():
    seeds = ["Write a poem about the sea.", "Give me three tips for staying healthy."]
    candidates = [
        "Write a short poem about the sea.",  # 12/13 against a seed
        "Explain how a rainbow forms.",
        "Explain how a rainbow forms!",  # duplicate of an accepted candidate
        "List five countries in Africa.",
        "",  # no tokens: similarity 0 to everything, kept
    ]
    index = NoveltyIndex(seeds)
    decisions = index.filter(candidates)
    assert [d.kept for d in decisions] == [False, True, False, True, True]
    assert decisions[0].nearest == seeds[0]
    assert decisions[0].max_score == pytest.approx(12 / 13, abs=1e-15)
    assert decisions[2].nearest == "Explain how a rainbow forms." and decisions[2].max_score == 1.0
    assert index.texts == (*seeds, candidates[1], candidates[3], "")
    assert_same_decisions(decisions, reference_filter(seeds, candidates), score_kept=False)
    again = NoveltyIndex(seeds).filter(candidates, score_kept=True)
    assert_same_decisions(again, reference_filter(seeds, candidates), score_kept=True)


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.7, 1.0])
def test_thresholds_at_the_ends(threshold):
    seeds = ["a b c d", "e f"]
    candidates = ["a b c d", "a x y z", "q", "e f g", "f e", "", "a b c d e"]
    ours = NoveltyIndex(seeds).filter(candidates, threshold, score_kept=True)
    assert_same_decisions(ours, reference_filter(seeds, candidates, threshold), score_kept=True)


@pytest.mark.parametrize("threshold", [-0.1, 1.5, float("nan")])
def test_threshold_outside_0_1_is_refused(threshold):
    with pytest.raises(ValueError, match="between 0 and 1"):
        NoveltyIndex().filter(["x"], threshold)


def test_progress_counts_every_candidate():
    seen = []
    NoveltyIndex(["a"]).filter([f"item {i} of many" for i in range(2500)], progress=seen.append)
    assert sum(seen) == 2500


def test_stemmer_parity():
    seeds = ["Summarize the running stories.", "The cats were sleeping."]
    candidates = ["Summarizing the run story", "the cat sleeps", "The cats are sleeping now."]
    for stem in (False, True):
        ours = NoveltyIndex(seeds, use_stemmer=stem).filter(candidates, 0.5, score_kept=True)
        ref = reference_filter(seeds, candidates, 0.5, use_stemmer=stem)
        assert_same_decisions(ours, ref, score_kept=True)


def test_vocabulary_beyond_unicode_switches_to_int_tuples():
    seeds = ["w1 w2 w3 w4", "w5 w6 w7"]
    candidates = ["w1 w2 w3 w9", "w8 w9 w10 w11", "w1 w2 w3 w4 w5", "w5 w6 w7 w12"]
    index = NoveltyIndex(use_stemmer=False)
    index._vocab.limit = 8  # pretend the code points run out after eight tokens
    for seed in seeds:
        index.add(seed)
    assert not index._vocab.wide
    decisions = index.filter(candidates, score_kept=True)
    assert index._vocab.wide and all(isinstance(s, tuple) for s in index._seqs)
    assert_same_decisions(decisions, reference_filter(seeds, candidates), score_kept=True)
    assert list(index.scores("w1 w2 w3")) == reference_scores(list(index.texts), "w1 w2 w3")


# -- property tests on random token strings --------------------------------------------

WORDS = ["a", "b", "c", "d", "e", "the", "The", "x1"]
text = st.lists(
    st.tuples(st.sampled_from(WORDS), st.sampled_from([" ", ", ", ". ", "!", "-"])), max_size=10
).map(lambda parts: "".join(w + s for w, s in parts))
thresholds = st.one_of(st.sampled_from([0.0, 0.5, 0.7, 1.0]), st.floats(0.0, 1.0))


@contextmanager
def numpy_path_always():
    """Candidate generation has a plain-Python path for few hits; force the numpy one."""
    saved = novelty_module._FEW_HITS
    novelty_module._FEW_HITS = 0
    try:
        yield
    finally:
        novelty_module._FEW_HITS = saved


@settings(max_examples=200, deadline=None)
@given(st.lists(text, max_size=6), st.lists(text, max_size=25), thresholds, st.booleans())
def test_filter_decisions_match_the_reference(seeds, candidates, threshold, score_kept):
    ref = reference_filter(seeds, candidates, threshold)
    ours = NoveltyIndex(seeds).filter(candidates, threshold, score_kept=score_kept)
    assert_same_decisions(ours, ref, score_kept)
    with numpy_path_always():
        ours = NoveltyIndex(seeds).filter(candidates, threshold, score_kept=score_kept)
    assert_same_decisions(ours, ref, score_kept)


@settings(max_examples=150, deadline=None)
@given(st.lists(text, max_size=15), text, st.integers(0, 20))
def test_scores_and_top_k_match_the_reference(pool, query, k):
    index = NoveltyIndex(pool)
    ref = reference_scores(pool, query)
    assert list(index.scores(query)) == ref
    expected = sorted(zip(pool, ref), key=lambda pair: -pair[1])[:k]  # stable: earliest first
    assert index.most_similar(query, k) == expected
    top, mean = index.similarity_stats(query, k)
    assert top == expected and mean == (float(np.mean(ref)) if pool else 0.0)
    assert index.max_similarity(query) == max(ref, default=0.0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from("abcdefg"), max_size=30), min_size=1, max_size=30),
    st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=30),
    thresholds,
)
def test_the_join_never_prunes_a_pair_above_the_threshold(pool, query, threshold):
    """Bounds 1-6 in _PrefixJoin are safe: every pair scoring above t is a candidate."""
    index = NoveltyIndex([" ".join(p) for p in pool])
    seq = index._encode(" ".join(query))
    join = _PrefixJoin(threshold, _rarity_rank(index._seqs, [seq]), len(index._vocab.ids))
    for i, s in enumerate(index._seqs):
        join.insert(i, s)
    above = {j for j, s in enumerate(index._scores(seq)) if s > threshold}
    assert above <= set(join.candidates(seq, join.prefix(seq), index._lens))
    with numpy_path_always():
        assert above <= set(join.candidates(seq, join.prefix(seq), index._lens))


def test_the_join_on_a_dense_pool_uses_every_filter():
    """200 texts over 6 words: many pairs pass filters 4-5, so the token-count filter 6 runs."""
    rng = random.Random(3)
    words = ["a", "b", "c", "d", "e", "f"]
    texts = [" ".join(rng.choices(words, k=rng.randint(8, 20))) for _ in range(200)]
    index = NoveltyIndex(texts)
    for threshold in (0.3, 0.5, 0.7):
        for query in texts[:40]:
            seq = index._encode(query + " a")
            join = _PrefixJoin(threshold, _rarity_rank(index._seqs), len(index._vocab.ids))
            for i, s in enumerate(index._seqs):
                join.insert(i, s)
            above = {j for j, s in enumerate(index._scores(seq)) if s > threshold}
            with numpy_path_always():
                assert above <= set(join.candidates(seq, join.prefix(seq), index._lens))
    for threshold in (0.5, 0.7, 0.8):
        ref = reference_filter(texts[:20], texts[20:120], threshold)
        with numpy_path_always():
            ours = NoveltyIndex(texts[:20]).filter(texts[20:120], threshold)
        assert_same_decisions(ours, ref, score_kept=False)


# -- real text ------------------------------------------------------------------------


def _jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _plant(base: str, rng: random.Random) -> list[str]:
    """Pairs (x, y) built from ``base`` with F(x, y) exactly 0.7 (LCS 7, 10 and 10 tokens),
    7/10 in exact arithmetic but 0.7000000000000001 in floats (LCS 7, 7 and 13 tokens), just
    above (5/7) and just below (16/23). x is the first distinct words of ``base``; y keeps
    the first LCS of them and adds words found nowhere else."""
    words = list(dict.fromkeys(base.split()))
    fillers = [f"zz{rng.randrange(10**6)}q{k}" for k in range(30)]
    variants = []
    for lcs, m, n in [(7, 10, 10), (7, 7, 13), (5, 7, 7), (8, 11, 12)]:
        if len(words) < m:
            continue
        # x = the first m words; y keeps the first lcs of them and adds n - lcs fillers
        x = words[:m]
        y = x[:lcs] + fillers[: n - lcs]
        variants += [" ".join(x), " ".join(y)]
    return variants


def _short(texts, max_words: int) -> list[str]:
    return list(dict.fromkeys(t for t in texts if len(t.split()) <= max_words))


@needs_shared
def test_decisions_match_the_reference_on_real_instructions():
    root = SHARED / "self-instruct-original"
    seeds = [t["instruction"] for t in _jsonl(root / "seed_tasks.jsonl")]
    user = [t["instruction"] for t in _jsonl(root / "user_oriented_instructions.jsonl")]
    superni = _jsonl(SHARED / "superni-test" / "superni_test_en.jsonl")
    rng = random.Random(0)
    definitions = _short((r["definition"] for r in superni), 40)[:20]
    inputs = rng.sample(_short((r["input"] for r in superni), 30), 50)
    candidates = rng.sample(_short(user, 30), 50) + definitions + inputs + seeds[80:90]
    rng.shuffle(candidates)
    candidates += [v for text in rng.sample(user + seeds, 15) for v in _plant(text, rng)]
    ref = reference_filter(seeds[:80], candidates)
    assert 0 < sum(not d.kept for d in ref) < len(ref)
    assert any(d.max_score == 0.7 and d.kept for d in ref)  # planted: exactly 0.7 is kept
    assert any(d.max_score == 0.7000000000000001 and not d.kept for d in ref)
    ours = NoveltyIndex(seeds[:80]).filter(candidates)
    assert_same_decisions(ours, ref, score_kept=False)
    ours = NoveltyIndex(seeds[:80]).filter(candidates, score_kept=True)
    assert_same_decisions(ours, ref, score_kept=True)
    with numpy_path_always():
        ours = NoveltyIndex(seeds[:80]).filter(candidates)
    assert_same_decisions(ours, ref, score_kept=False)


def reference_from_matrix(scores: list[list[float]], texts: list[str], threshold: float):
    """The sequential rule over precomputed rouge_score scores (scores[i][j], j < i)."""
    kept: list[int] = []
    decisions = []
    for i, text in enumerate(texts):
        row = [scores[i][j] for j in kept]
        best = max(row, default=0.0)
        nearest = texts[kept[row.index(best)]] if row else None
        decisions.append(NoveltyDecision(text, best <= threshold, best, nearest))
        if best <= threshold:
            kept.append(i)
    return decisions


@needs_shared
@pytest.mark.slow
def test_decisions_match_the_reference_on_superni_at_many_thresholds():
    superni = _jsonl(SHARED / "superni-test" / "superni_test_en.jsonl")
    rng = random.Random(1)
    texts = rng.sample(_short((r["input"] for r in superni), 50), 200)
    texts += _short((r["definition"] for r in superni), 80)
    texts += [v for text in rng.sample(texts, 40) for v in _plant(text, rng)]
    scores = [reference_scores(texts[:i], text) for i, text in enumerate(texts)]
    for threshold in (0.2, 0.5, 0.7, 0.9):
        ref = reference_from_matrix(scores, texts, threshold)
        assert_same_decisions(NoveltyIndex().filter(texts, threshold), ref, score_kept=False)
        with numpy_path_always():
            ours = NoveltyIndex().filter(texts, threshold)
        assert_same_decisions(ours, ref, score_kept=False)
