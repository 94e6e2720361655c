"""evaluation.answering: every evaluation's way of asking a model."""

from __future__ import annotations

from selfinstruct.backends.base import Completion, Request
from selfinstruct.backends.fake import FakeBackend
from selfinstruct.evaluation.answering import Tally, answers
from selfinstruct.progress import SilentReporter


def upper(failing=()) -> FakeBackend:
    """Answers a prompt with its upper case; fails the prompts listed in ``failing``."""
    return FakeBackend(lambda r: Completion.failed("boom") if r.prompt in failing
                       else Completion(r.prompt.upper(), "stop", 3, 1))


def ask(backend, prompts, folder, tally):
    return list(answers(backend, [Request(p) for p in prompts], folder, SilentReporter(),
                        "test", 2, tally))


def test_failures_are_counted_and_skipped_and_asked_again_on_a_rerun(tmp_path):
    tally = Tally()
    got = ask(upper(failing={"b"}), ["a", "b", "c"], tmp_path, tally)
    assert [(i, c.text) for i, c in got] == [(0, "A"), (2, "C")]
    assert (tally.failed, tally.first_error) == (1, "boom")
    assert tally.stats.as_dict()["requests"] == 3

    again, tally = upper(), Tally()  # the cache answers a and c; b is asked again
    got = ask(again, ["a", "b", "c"], tmp_path, tally)
    assert [c.text for _, c in got] == ["A", "B", "C"]
    assert again.prompts == ["b"] and tally.failed == 0 and tally.first_error is None
