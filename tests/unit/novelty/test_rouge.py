"""selfinstruct.novelty.rouge reproduces rouge_score's ROUGE-L to the bit: tokenizer, LCS, float.

Real-text parity uses ../shared/data next to the repository root; those tests skip when it
is missing.
"""

from __future__ import annotations

import json
import random

import paths
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz.distance import Indel, LCSseq
from rouge_score import rouge_scorer, tokenizers

from selfinstruct.novelty.rouge import Tokenizer, fmeasure_from_lcs, lcs_length, rouge_l

SHARED = paths.SHARED / "data"
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"shared data not found at {SHARED} (../shared/data)"
)

SCORERS = {s: rouge_scorer.RougeScorer(["rougeL"], use_stemmer=s) for s in (False, True)}


def reference(a: str, b: str, stem: bool = False) -> float:
    return SCORERS[stem].score(a, b)["rougeL"].fmeasure


def ours(a: str, b: str, stem: bool = False) -> float:
    return rouge_l(a, b, tokenizer=Tokenizer(stem))


# Words, case changes, digits, punctuation, non-ASCII letters (some of which lowercase to
# ASCII: Kelvin sign K -> k, dotted capital I -> i + combining dot) and whitespace runs.
WORDS = ["the", "The", "cat", "CATS", "running", "ran", "a", "an", "2023", "x1", "İt", "\u212a"]
SEPARATORS = [" ", "  ", ", ", ". ", "-", "_", "\n", "\t", "!?", "é", "'s "]
token_text = st.lists(
    st.tuples(st.sampled_from(WORDS), st.sampled_from(SEPARATORS)), max_size=12
).map(lambda parts: "".join(w + s for w, s in parts))


def test_worked_example_by_hand():
    """write a poem about the sea (6) vs write a short poem about the sea (7).

    LCS = 6, precision = 6/7, recall = 6/6, F = 2 * (6/7) * 1 / (6/7 + 1) = 12/13.
    """
    a, b = "Write a poem about the sea.", "Write a short poem about the sea"
    assert Tokenizer()(a) == ["write", "a", "poem", "about", "the", "sea"]
    assert ours(a, b) == pytest.approx(12 / 13, abs=1e-15)
    assert ours(a, b) == reference(a, b)


@pytest.mark.parametrize("stem", [False, True])
@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "!!! ... ???",
        "Hello, World! It's 2023.",
        "snake_case and kebab-case",
        "Ünïcödé façade naïve café",
        "\u0130stanbul \u212aelvin STRASSE straße",
        "running runs ran easily fairness generalizations",
        "ies sses ing abc abcd",
        "tab\tseparated\nlines\r\nhere",
    ],
)
def test_tokenizer_matches_rouge_score(text, stem):
    assert Tokenizer(stem)(text) == tokenizers.DefaultTokenizer(stem).tokenize(text)


def test_no_tokens_scores_zero_even_against_itself():
    assert ours("", "") == 0.0 == reference("", "")
    assert ours("!!!", "...") == 0.0 == reference("!!!", "...")
    assert ours("", "write a poem") == 0.0 == reference("", "write a poem")
    assert fmeasure_from_lcs(0, 0, 0) == 0.0


@pytest.mark.parametrize(
    ("lcs", "m", "n", "expected"),
    [
        (7, 10, 10, 0.7),  # exactly the float 0.7
        (7, 7, 13, 0.7000000000000001),  # 7/10 in exact arithmetic, just above in floats
        (21, 23, 37, 0.6999999999999998),  # 7/10 in exact arithmetic, just below in floats
    ],
)
def test_float_rounding_is_rouge_scores(lcs, m, n, expected):
    assert fmeasure_from_lcs(lcs, m, n) == expected
    assert fmeasure_from_lcs(lcs, n, m) == expected  # symmetric to the bit
    target, prediction = ["w"] * lcs + ["t"] * (m - lcs), ["w"] * lcs + ["p"] * (n - lcs)
    assert rouge_scorer._score_lcs(target, prediction).fmeasure == expected


@settings(max_examples=300, deadline=None)
@given(token_text, token_text)
def test_score_parity_with_rouge_score(a, b):
    assert ours(a, b) == reference(a, b)
    assert ours(a, b, stem=True) == reference(a, b, stem=True)


@settings(max_examples=300, deadline=None)
@given(token_text, token_text)
def test_score_is_symmetric_to_the_bit(a, b):
    assert ours(a, b) == ours(b, a)
    assert reference(a, b) == reference(b, a)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from("abcdef"), max_size=40),
    st.lists(st.sampled_from("abcdef"), max_size=40),
)
def test_rapidfuzz_lcs_equals_rouge_score_lcs_table(a, b):
    lcs = rouge_scorer._lcs_table(a, b)[-1][-1] if a and b else 0
    assert lcs_length(a, b) == lcs == LCSseq.similarity(a, b)
    # Indel distance is m + n - 2*LCS, so its normalized similarity 1 - d/(m+n) is
    # 2*LCS/(m+n): the ROUGE-L F-measure, but rounded differently. The library takes the
    # integer LCS and redoes rouge_score's own float operations instead.
    assert Indel.distance(a, b) == len(a) + len(b) - 2 * lcs
    if a and b:
        f = fmeasure_from_lcs(lcs, len(a), len(b))
        assert Indel.normalized_similarity(a, b) == pytest.approx(f, abs=1e-12)


def test_indel_normalized_similarity_is_not_bit_identical():
    """Why the library recomputes the float from the integer LCS: "a" vs "a b" has LCS 1,
    F = 2/3; Indel gives 1 - 1/3 = 0.6666666666666667, rouge_score 2*1*0.5/1.5 = ...666."""
    a, b = ["a"], ["a", "b"]
    assert rouge_scorer._score_lcs(a, b).fmeasure == 0.6666666666666666
    assert Indel.normalized_similarity(a, b) == 0.6666666666666667
    assert fmeasure_from_lcs(lcs_length(a, b), 1, 2) == 0.6666666666666666


def _shared_texts() -> list[str]:
    texts = []
    for name in ("seed_tasks.jsonl", "user_oriented_instructions.jsonl"):
        with open(SHARED / "self-instruct-original" / name, encoding="utf-8") as f:
            for line in f:
                task = json.loads(line)
                texts.append(task["instruction"])
                texts += [i["input"] for i in task["instances"]]
    with open(SHARED / "superni-test" / "superni_test_en.jsonl", encoding="utf-8") as f:
        for k, line in enumerate(f):
            row = json.loads(line)
            if k % 100 == 0:
                texts.append(row["definition"])
            if k % 10 == 0:
                texts.append(row["input"])
    return texts


@needs_shared
@pytest.mark.parametrize("stem", [False, True])
def test_tokenizer_parity_on_real_text(stem):
    ref, mine = tokenizers.DefaultTokenizer(stem), Tokenizer(stem)
    for text in _shared_texts():
        assert mine(text) == ref.tokenize(text)


@needs_shared
def test_score_parity_on_real_pairs():
    texts = [t for t in _shared_texts() if len(t) < 400]
    rng = random.Random(0)
    for _ in range(3000):
        a, b = rng.choice(texts), rng.choice(texts)
        assert ours(a, b) == reference(a, b)
    for _ in range(300):
        a, b = rng.choice(texts), rng.choice(texts)
        assert ours(a, b, stem=True) == reference(a, b, stem=True)
