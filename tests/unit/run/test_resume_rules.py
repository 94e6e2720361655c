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


def _before_recipes() -> dict:
    """A manifest's config written before recipes existed: every field but ``recipe``."""
    config = RunConfig(recipe="paper").as_dict()
    del config["recipe"]
    return config


def test_a_run_from_before_recipes_resumes_with_the_paper_recipe():
    """The default became ``refined``; a run that never named a recipe ran the paper's
    decisions, and resuming it must not switch them half way."""
    old = _before_recipes()
    assert differences(old, RunConfig(recipe="paper").as_dict()) == []
    assert differences(old, RunConfig().as_dict()) == ["recipe: 'paper' -> 'refined'"]


def test_resuming_without_flags_keeps_the_recipe_of_the_manifest():
    from selfinstruct.cli import build_parser
    from selfinstruct.cli.options import config_from_args

    args = build_parser().parse_args(["run", "--out", "x"])
    assert config_from_args(args).recipe == "refined"  # the default, for a new run
    assert config_from_args(args, base=_before_recipes()).recipe == "paper"
    stored = RunConfig(recipe="refined").as_dict()
    assert config_from_args(args, base=stored).recipe == "refined"
