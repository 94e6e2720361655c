"""Cohen's kappa, with a worked example, and the blind rating order."""

from __future__ import annotations

from pathlib import Path

import pytest
from handmade_run import make_predictions

from selfinstruct.errors import UserError
from selfinstruct.evaluation.user_oriented import Response
from selfinstruct.review.agreement import cohen_kappa, human_judge_agreement
from selfinstruct.review.rating import load_prediction_files, rating_items


def test_kappa_worked_example():
    """Ten items rated by two raters::

        human: A A A A B B B C C D
        judge: A A A B B B C C D D

    Same letter on items 1-3, 5-6, 8 and 10: p_o = 7/10.
    Shares, human: A .4, B .3, C .2, D .1; judge: A .3, B .3, C .2, D .2.
    p_e = .4*.3 + .3*.3 + .2*.2 + .1*.2 = .12 + .09 + .04 + .02 = .27.
    kappa = (.70 - .27) / (1 - .27) = .43 / .73 = 0.58904...
    """
    human = list("AAAABBBCCD")
    judge = list("AAABBBCCDD")
    assert cohen_kappa(human, judge) == pytest.approx(0.43 / 0.73)


def test_kappa_edge_cases():
    assert cohen_kappa(list("ABCD"), list("ABCD")) == pytest.approx(1.0)
    # a judge that says A to everything agrees with no one beyond chance
    assert cohen_kappa(list("ABAC"), list("AAAA")) == pytest.approx(0.0)
    assert cohen_kappa(list("AA"), list("AA")) is None   # p_e = 1: undefined
    assert cohen_kappa([], []) is None
    with pytest.raises(ValueError):
        cohen_kappa(["A"], [])


def test_kappa_below_zero_when_raters_disagree_systematically():
    # p_o = 0, p_e = .5*.5 + .5*.5 = .5: kappa = -1
    assert cohen_kappa(list("ABAB"), list("BABA")) == pytest.approx(-1.0)


def rec(rater, model, iid, rating):
    return {"rater": rater, "model": model, "instance_id": iid, "rating": rating}


def test_agreement_pairs_shared_items_per_judge():
    human = [rec("human:ann", "m", "1", "A"), rec("human:ann", "m", "2", "B"),
             rec("human:ann", "n", "1", "C"), rec("human:ann", "n", "3", "D")]
    judges = [rec("judge:x", "m", "1", "A"), rec("judge:x", "m", "2", "A"),
              rec("judge:x", "n", "1", None),           # unparsed: not paired
              rec("judge:y", "n", "3", "D"), rec("human:bob", "m", "1", "D")]
    result = {a.judge: a for a in human_judge_agreement(human, judges)}
    assert set(result) == {"judge:x", "judge:y"}
    assert result["judge:x"].items == 2
    assert result["judge:x"].observed == 0.5
    # human A,B vs judge A,A: p_o .5, p_e = .5*1 + .5*0 = .5 -> kappa 0
    assert result["judge:x"].kappa == pytest.approx(0.0)
    assert (result["judge:y"].items, result["judge:y"].kappa) == (1, None)


def responses(models, ids):
    return [Response(m, i, f"do {i}", "", f"{m} says {i}") for m in models for i in ids]


def test_rating_order_is_seeded_grouped_by_instance_and_complete():
    rs = responses(["m1", "m2", "m3"], [f"t{k}" for k in range(6)])
    items = rating_items(rs, seed=1)
    assert [i.number for i in items] == list(range(1, 19))
    assert sorted((i.response.model, i.response.instance_id) for i in items) == \
        sorted((r.model, r.instance_id) for r in rs)
    ids = [i.response.instance_id for i in items]
    assert all(len(set(ids[k:k + 3])) == 1 for k in range(0, 18, 3))  # one instance at a time
    assert items == rating_items(list(reversed(rs)), seed=1)  # input order does not matter
    other = rating_items(rs, seed=2)
    assert [i.response for i in other] != [i.response for i in items]
    # models are not always in the same position within an instance
    first_models = {items[k].response.model for k in range(0, 18, 3)}
    assert len(first_models) > 1


def test_prediction_files_with_the_same_model_name_are_refused(tmp_path):
    paths, _ = make_predictions(tmp_path / "a")
    assert len(load_prediction_files(paths)) == 4
    copy = tmp_path / "b" / "alpha-model_predictions.jsonl"
    copy.parent.mkdir()
    copy.write_text(Path(paths[0]).read_text())
    with pytest.raises(UserError, match="same model name 'alpha-model'"):
        load_prediction_files([paths[0], str(copy)])
