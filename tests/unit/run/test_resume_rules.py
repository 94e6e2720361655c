"""Which parameters a resumed run may change (run/config.py ``differences``)."""

from selfinstruct.run.config import RunConfig, differences


def test_a_server_run_may_change_its_concurrency():
    old = RunConfig(base_url="http://127.0.0.1:8080/v1", max_concurrency=1).as_dict()
    new = RunConfig(base_url="http://127.0.0.1:8080/v1", max_concurrency=8).as_dict()
    assert differences(old, new) == []


def test_an_embedded_run_keeps_its_decoding_batch():
    old, new = RunConfig(max_concurrency=1).as_dict(), RunConfig(max_concurrency=4).as_dict()
    assert differences(old, new) == ["max_concurrency: 1 -> 4 (on the embedded model, the decoding batch)"]


def test_threads_and_budgets_may_change_anywhere():
    old = RunConfig().as_dict()
    new = RunConfig(threads=1, max_tokens_total=10, request_timeout=5.0).as_dict()
    assert differences(old, new) == []
