"""Whole-text scoring on an OpenAI-compatible server: ``echo`` with ``logprobs`` and
``max_tokens=0``, the choice's score summed from the end of the prompt on; a server that
cannot echo is asked once and then reports ``scores_whole_texts`` False."""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace

import pytest
from fake_openai_server import FakeServer, fake_logprob, fake_tokens

from selfinstruct.backends.base import Request, Sampling, request_key
from selfinstruct.backends.openai_compat import (
    ECHO_PROBE,
    OpenAICompatBackend,
    whole_text_logprob,
)
from selfinstruct.backends.pool.balanced import BalancedBackend
from selfinstruct.backends.retry import RetryPolicy
from selfinstruct.errors import ServerUnavailable


def _logprobs(tokens, values, offsets=None):
    if offsets is None:
        offsets, at = [], 0
        for token in tokens:
            offsets.append(at)
            at += len(token)
    return SimpleNamespace(tokens=tokens, token_logprobs=values, text_offset=offsets)


def test_the_choice_is_the_sum_from_the_end_of_the_prompt_on():
    # "The cat| sat down": offsets 0, 3, 7, 11; the prompt is 7 characters long
    lp = _logprobs(["The", " cat", " sat", " down"], [None, -1.0, -0.5, -0.25])
    assert whole_text_logprob(lp, "The cat", " sat down") == -0.75
    assert whole_text_logprob(lp, "The", " cat sat down") == -1.75
    assert whole_text_logprob(lp, "The cat sat", " down") == -0.25


def test_a_token_across_the_end_of_the_prompt_counts_as_the_prompts():
    # prompt "The ca", choice "t sat": " cat" starts at 3, before the end (6)
    lp = _logprobs(["The", " cat", " sat"], [None, -1.0, -0.5])
    assert whole_text_logprob(lp, "The ca", "t sat") == -0.5
    # no token starts inside a non-empty choice: nothing to score it by
    assert whole_text_logprob(lp, "The cat sa", "t") is None


def test_a_start_of_text_token_in_front_shifts_the_offsets_not_the_split():
    # vLLM echoes "<s>" first: every offset is 3 more than in "The cat sat"
    lp = _logprobs(["<s>", "The", " cat", " sat"], [None, -2.0, -1.0, -0.5])
    assert lp.text_offset == [0, 3, 6, 10]
    assert whole_text_logprob(lp, "The cat", " sat") == -0.5
    # ... and so an empty prompt scores every token of the choice
    assert whole_text_logprob(lp, "", "The cat sat") == -3.5


def test_an_empty_prompt_without_a_start_token_leaves_the_first_token_out():
    lp = _logprobs(["Hi", " there", "!"], [None, -0.75, -0.25])
    assert whole_text_logprob(lp, "", "Hi there!") == -1.0
    assert whole_text_logprob(_logprobs(["Hi"], [None]), "", "Hi") == 0.0


def test_nothing_to_read_is_none():
    assert whole_text_logprob(None, "a", " b") is None
    assert whole_text_logprob(SimpleNamespace(token_logprobs=None, text_offset=None,
                                              tokens=None), "a", " b") is None
    assert whole_text_logprob(_logprobs(["a", " b"], [None, -0.1], [0]), "a", " b") is None


def test_request_keys_change_only_for_whole_text_requests():
    request = Request("Q:", Sampling(), choices=(" A",))
    payload = {"v": 1, "backend": {"backend": "x"}, "prompt": "Q:",
               "sampling": Sampling().as_dict(), "chat": False, "prefix_len": 0,
               "choices": [" A"]}
    before = hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False)
                            .encode("utf-8")).hexdigest()
    assert request_key({"backend": "x"}, request) == before
    whole = Request("Q:", Sampling(), choices=(" A",), whole=True)
    assert request_key({"backend": "x"}, whole) != before


def _expected(prompt: str, choice: str) -> float:
    """The stand-in's score of ``choice`` after ``prompt`` (a choice that starts with a
    space begins a token of its own)."""
    return sum(fake_logprob(t) for t in fake_tokens(choice))


def test_the_backend_scores_whole_texts_with_echo():
    with FakeServer() as server:
        backend = OpenAICompatBackend("fake", base_url=server.url)
        assert backend.scores_whole_texts is True
        assert backend.scores_whole_texts is True  # asked once
        assert len(server.bodies) == 1
        probe = server.bodies[0]
        assert probe["prompt"] == "".join(ECHO_PROBE)
        assert (probe["echo"], probe["logprobs"], probe["max_tokens"]) == (True, 1, 0)

        prompt = "Instruction: name a colour.\nOutput:"
        choices = (" Red and blue.", " Green")
        [completion] = backend.complete([Request(prompt, choices=choices, whole=True)])
        assert completion.choice_logprobs == pytest.approx(
            {c: _expected(prompt, c) for c in choices})
        assert completion.text == max(choices, key=lambda c: _expected(prompt, c))
        sent = server.bodies[1:]
        assert [b["prompt"] for b in sent] == [prompt + c for c in choices]
        assert all(b["echo"] and b["max_tokens"] == 0 for b in sent)

        # an empty prompt: the choice's first token has no log-probability on this server
        [alone] = backend.complete([Request("", choices=(" Red and blue.",), whole=True)])
        assert alone.choice_logprobs == pytest.approx(
            {" Red and blue.": fake_logprob(" and") + fake_logprob(" blue.")})


def test_first_token_scoring_sends_what_it_always_sent():
    with FakeServer() as server:
        backend = OpenAICompatBackend("fake", base_url=server.url)
        [completion] = backend.complete([Request("Is it? ", Sampling(temperature=0.0),
                                                 choices=(" Yes", " No"))])
        [body] = server.bodies
        assert "echo" not in body
        assert (body["prompt"], body["max_tokens"], body["logprobs"]) == ("Is it? ", 1, 20)
        assert completion.choice_logprobs is None  # the stand-in gives no top_logprobs
        assert backend._whole is None  # nothing asked about echo


@pytest.mark.parametrize("mode", ["no-echo", "echo-ignored"])
def test_a_server_that_cannot_echo_is_asked_once_then_not_at_all(mode):
    """A 400, or (llama.cpp's server) log-probabilities of generated tokens alone: these
    would sum to a number, so the probe checks that the text came back echoed."""
    with FakeServer(mode=mode) as server:
        backend = OpenAICompatBackend("fake", base_url=server.url)
        assert backend.scores_whole_texts is False
        assert backend.probe_whole_text_scoring() is False
        requests = [Request("Q:", choices=(" an answer",), whole=True) for _ in range(3)]
        completions = backend.complete(requests)
        assert all(c.ok and c.choice_logprobs is None for c in completions)
        assert len(server.bodies) == 1  # the probe alone


def test_a_whole_text_request_asks_about_echo_first_when_nobody_did():
    with FakeServer(mode="no-echo") as server:
        backend = OpenAICompatBackend("fake", base_url=server.url)
        [completion] = backend.complete([Request("Q:", choices=(" A b",), whole=True)])
        assert completion.ok and completion.choice_logprobs is None
        assert backend.scores_whole_texts is False
        assert len(server.bodies) == 1


def test_an_unreachable_server_is_not_taken_for_one_without_echo():
    with FakeServer(dead_after=0) as server:
        backend = OpenAICompatBackend("fake", base_url=server.url)
        backend.probe_policy = RetryPolicy(max_attempts=2, base_delay=0.01)
        with pytest.raises(ServerUnavailable, match="scores whole texts"):
            backend.probe_whole_text_scoring()
        assert server.dropped == 2
        server.revive()
        assert backend.scores_whole_texts is True  # asked again, not remembered as a no


def test_a_pool_scores_whole_texts_when_every_member_does():
    with FakeServer() as echoing, FakeServer(mode="no-echo") as refusing:
        good = [OpenAICompatBackend("fake", base_url=echoing.url) for _ in range(2)]
        assert BalancedBackend(good, identity={"m": 1}).scores_whole_texts is True
        mixed = good + [OpenAICompatBackend("fake", base_url=refusing.url)]
        assert BalancedBackend(mixed, identity={"m": 1}).scores_whole_texts is False
        plain = SimpleNamespace(identity={"m": 1}, complete=lambda rs: [])
        assert BalancedBackend([plain], identity={"m": 1}).scores_whole_texts is False
