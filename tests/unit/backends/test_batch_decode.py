"""Batched decoding: the samplers on their own, then the real SmolLM2 decoding groups."""

from __future__ import annotations

import numpy as np
import pytest

from selfinstruct.backends.base import Request, Sampling
from selfinstruct.backends.batch_decode import (
    TokenSampler,
    earliest_stop,
    nucleus,
    penalized,
    softmax,
)

# -- sampling, no model -------------------------------------------------------------------


def test_penalties_follow_openai_over_generated_tokens():
    logits = np.zeros(5, dtype=np.float32)
    out = penalized(logits, {1: 1, 3: 3}, presence=0.5, frequency=0.25)
    assert out.tolist() == [0.0, -0.75, 0.0, -1.25, 0.0]
    assert penalized(logits, {1: 1}, 0.0, 0.0) is logits  # nothing to do: no copy


def test_nucleus_keeps_the_smallest_set_reaching_top_p():
    probs = np.array([0.1, 0.5, 0.05, 0.3, 0.05])
    ids, kept = nucleus(probs, 0.8)
    assert ids.tolist() == [1, 3] and kept.tolist() == pytest.approx([0.625, 0.375])
    assert nucleus(probs, 0.81)[0].tolist() == [1, 3, 0]
    assert nucleus(probs, 1e-9)[0].tolist() == [1]


def test_nucleus_breaks_ties_by_token_id_and_looks_past_its_candidates():
    flat = np.full(3000, 1 / 3000)  # more tokens than the candidates sorted first
    ids, kept = nucleus(flat, 0.5)
    assert ids.tolist() == list(range(1500)) and kept.sum() == pytest.approx(1.0)


def test_greedy_takes_the_first_maximum():
    sampler = TokenSampler(Sampling(temperature=0.0))
    assert sampler.pick(np.array([0.0, 2.0, 2.0, 1.0], dtype=np.float32)) == 1


def test_penalties_move_greedy_off_a_repeated_token():
    sampler = TokenSampler(Sampling(frequency_penalty=1.5))
    logits = np.array([0.0, 1.0, 0.0], dtype=np.float32)
    sampler.accept(1)
    assert sampler.pick(logits) in (0, 2)


def test_sampling_is_reproducible_from_the_seed():
    logits = np.log(np.array([0.2, 0.3, 0.1, 0.4]))

    def draws(seed: int) -> list[int]:
        sampler = TokenSampler(Sampling(temperature=1.0, top_p=0.85, seed=seed))
        return [sampler.pick(logits) for _ in range(40)]

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)
    assert set(draws(7)) <= {0, 1, 3}  # token 2 is outside the 0.85 nucleus


def test_temperature_sharpens_the_distribution():
    scores = np.array([1.0, 2.0])
    assert softmax(scores, 0.1)[1] > softmax(scores, 1.0)[1] > 0.5


def test_earliest_stop_string_wins():
    assert earliest_stop("a END b STOP", ("STOP", "END")) == 2
    assert earliest_stop("nothing here", ("STOP", "")) == -1


# -- the real model ------------------------------------------------------------------------

PREFIX = ("Come up with a series of tasks:\n\nTask 1: Write a haiku about autumn.\n"
          "Task 2: List three prime numbers.\nTask 3: Translate 'hello' into French.\n"
          "Task 4:")
OTHER_PREFIX = "Answer the question in one sentence.\nQuestion:"
TAILS = [" Explain", " Name", " Describe", " Suggest"]


def _greedy(n: int = 16, **extra) -> Sampling:
    return Sampling(max_tokens=n, **extra)


def _requests(prefix: str = PREFIX, sampling: Sampling | None = None) -> list[Request]:
    return [Request(prefix + tail, sampling or _greedy(), prefix=prefix) for tail in TAILS]


@pytest.fixture(scope="module")
def models():
    from selfinstruct.backends.bundled import smollm2_path
    from selfinstruct.backends.llamacpp import LlamaCppBackend

    path = smollm2_path()
    solo = LlamaCppBackend(path, n_ctx=512, n_threads=1)
    batched = LlamaCppBackend(path, n_ctx=512, n_threads=1, batch_size=4)
    yield solo, batched
    batched.close()


def _texts(completions) -> list[str]:
    return [c.text for c in completions]


@pytest.mark.slow
def test_the_same_group_gives_the_same_bytes_whatever_ran_before(models):
    _, batched = models
    sampled = Sampling(max_tokens=16, temperature=0.9, top_p=0.95, seed=3,
                       presence_penalty=0.3, frequency_penalty=0.2)
    group = _requests()[:2] + _requests(sampling=sampled)[2:]
    first = batched.complete(group)
    batched.complete(_requests(OTHER_PREFIX) + [Request("Hi", _greedy(8))])  # disturb
    batched.complete([Request("No prefix at all, then", _greedy(8)), *_requests()[:3]])
    again = batched.complete(group)
    assert [(c.text, c.completion_tokens, c.finish_reason) for c in first] == \
        [(c.text, c.completion_tokens, c.finish_reason) for c in again]


@pytest.mark.slow
def test_each_prompt_starts_from_the_solo_state(models):
    """Prompts are evaluated alone, as on the solo path, so the first greedy token of
    every sequence is the solo one, whatever prefixes the group mixes."""
    solo, batched = models
    one = _greedy(1)
    group = [Request(PREFIX + " Explain", one, prefix=PREFIX),
             Request(OTHER_PREFIX + " Why is the sky blue?", one, prefix=OTHER_PREFIX),
             Request("The three primary colours are", one),
             Request(PREFIX + " Name", one, prefix=PREFIX)]
    assert _texts(batched.complete(group)) == _texts(solo.complete(group))


@pytest.mark.slow
def test_stop_length_and_first_paragraph(models):
    _, batched = models
    group = [
        Request(PREFIX + " Explain", _greedy(12), prefix=PREFIX),
        Request(PREFIX + " Name", _greedy(40, stop=("Task",)), prefix=PREFIX),
        Request("The capital of France", _greedy(60, first_paragraph_only=True)),
        Request("Count: one, two,", _greedy(30, stop=(",",))),
    ]
    length, stopped, paragraph, comma = batched.complete(group)
    assert (length.finish_reason, length.completion_tokens) == ("length", 12)
    assert stopped.finish_reason == "stop" and "Task" not in stopped.text
    assert paragraph.finish_reason == "stop" and paragraph.text.lstrip().endswith("\n\n")
    assert comma.finish_reason == "stop" and "," not in comma.text and comma.text.strip()
    assert all(c.prompt_tokens > 0 and c.seconds > 0 for c in (length, stopped, paragraph))


@pytest.mark.slow
def test_groups_follow_request_order_and_the_rest_stays_solo(models):
    """Five generation requests at batch 4: one group of four, then one alone (the solo
    path); chat and scoring requests keep the solo path wherever they stand."""
    solo, batched = models
    gen = _requests() + [Request("Once upon a time", _greedy(10))]
    chat = Request("Say hello.", _greedy(8), chat=True)
    score = Request("Is water wet? Answer:", choices=(" Yes", " No"))
    mixed = [gen[0], chat, gen[1], gen[2], score, gen[3], gen[4]]
    out = batched.complete(mixed)
    group_alone = batched.complete(gen[:4])
    assert _texts([out[i] for i in (0, 2, 3, 5)]) == _texts(group_alone)
    reference = solo.complete([chat, score, gen[4]])
    assert _texts([out[1], out[4], out[6]]) == _texts(reference)
    assert out[4].choice_logprobs == reference[1].choice_logprobs


@pytest.mark.slow
def test_the_cache_key_names_the_batch_size(models):
    solo, batched = models
    assert "batch_size" not in solo.identity
    assert batched.identity["batch_size"] == 4


@pytest.mark.slow
def test_a_prompt_longer_than_the_context_fails_alone(models):
    _, batched = models
    long = Request("word " * 600, _greedy(4))
    out = batched.complete([long, *_requests()[:2]])
    assert out[0].finish_reason == "error" and "context window" in (out[0].error or "")
    assert all(c.ok and c.text for c in out[1:])


@pytest.mark.slow
def test_a_group_larger_than_the_batch_refills_freed_slots_and_repeats_exactly(models):
    """Ten requests through 4 slots: lengths differ, so slots free up at different steps
    and the next request takes them; every request is answered, in order, and the same
    group gives the same bytes again."""
    solo, batched = models
    lengths = [3, 12, 5, 20, 2, 9, 14, 4, 7, 1]
    group = [Request(PREFIX + TAILS[k % len(TAILS)], _greedy(n), prefix=PREFIX)
             for k, n in enumerate(lengths)]
    before = batched.decode_stats.as_dict()
    first = batched.complete(group)
    stats = batched.decode_stats.as_dict()
    again = batched.complete(group)
    assert [c.text for c in first] == [c.text for c in again]
    assert all(c.completion_tokens <= n for n, c in zip(lengths, first))
    # the profile counts every step's sequences: a request's first token is sampled right
    # after its prompt, each later one (and an end of text) after a step, at most 4 a step
    steps = stats["steps"] - before["steps"]
    carried = stats["sequences"] - before["sequences"]
    generated = [c.completion_tokens for c in first]
    assert sum(n - 1 for n in generated if n) <= carried <= sum(generated)
    assert steps <= carried <= 4 * steps
    assert stats["prompt_tokens"] - before["prompt_tokens"] == sum(
        c.prompt_tokens for c in first) - len(group) * len(batched.tokenize(PREFIX))
    # the first token of each request starts from the solo state, refill or not
    firsts = solo.complete([Request(r.prompt, _greedy(1), prefix=PREFIX) for r in group])
    assert all(c.text.startswith(f.text) for c, f in zip(first, firsts) if f.text)
