"""The consensus choice, IFD, round-trip labels and the threshold fit, on hand-worked
examples."""

import math

import pytest

from selfinstruct.records import Instance, Task
from selfinstruct.rules.consensus import (
    fit_agreement,
    fit_threshold,
    ifd,
    is_correct,
    label_recovered,
    medoid,
)
from selfinstruct.rules.curation import curate


def test_medoid_by_hand():
    # "the cat sat" vs "the cat sat down": LCS 3, P 3/4, R 1 -> F = 2*.75/1.75 = 6/7;
    # either vs "a dog ran": 0. Sums 6/7, 6/7, 0: a tie, the first wins; mean 3/7.
    c = medoid(["the cat sat", "the cat sat down", "a dog ran"])
    assert c.index == 0
    assert c.agreement == pytest.approx(3 / 7)


def test_medoid_prefers_the_majority_over_the_first():
    c = medoid(["no idea", "Paris is the capital", "Paris is the capital.", "paris"])
    assert c.index == 1
    # to "Paris is the capital.": 1.0; to "paris": 2*(1*.25)/1.25 = 0.4; to "no idea": 0
    assert c.agreement == pytest.approx((1.0 + 0.4 + 0.0) / 3)


def test_medoid_of_one_agrees_with_nothing():
    assert medoid(["alone"]).agreement == 0.0
    with pytest.raises(ValueError):
        medoid([])


def test_ifd_by_hand():
    # mean losses 2/n and 8/n over the same n tokens: 0.25, the prompt helps
    assert ifd(-2.0, -8.0) == pytest.approx(0.25)
    # the output is likelier without its prompt: the pair does not belong together
    assert ifd(-9.0, -6.0) == pytest.approx(1.5)
    assert ifd(-3.0, 0.0) == math.inf


def test_label_recovered():
    assert label_recovered({"Yes": -0.1, "No": -2.3}, "Yes")
    assert not label_recovered({"Yes": -0.1, "No": -2.3}, "No")
    assert not label_recovered({"Yes": -1.0, "No": -1.0}, "Yes")  # a tie recovers nothing


def test_fit_threshold_by_hand():
    agreements = [0.9, 0.8, 0.6, 0.4, 0.2]
    correct = [True, True, False, True, False]
    # keeping >= 40%: at 0.8 precision 2/2 is the best
    assert fit_threshold(agreements, correct, 0.4) == 0.8
    # keeping >= 70%: 0.4 (3/4) beats 0.2 (3/5)
    assert fit_threshold(agreements, correct, 0.7) == 0.4
    assert fit_threshold([], [], 0.3) == 0.0


def test_fit_agreement_leave_one_out_by_hand():
    fit = fit_agreement([0.9, 0.8, 0.6, 0.4, 0.2], [True, True, False, True, False], 0.4)
    assert fit.threshold == 0.8 and fit.precision == 1.0 and fit.kept_share == 0.4
    # without item 0 or 1 the fit is 0.4 (3/4 beats 0.6's 1/2): both kept. Without item 2
    # (0.6, wrong) 0.8 and 0.4 both reach 2/2 and 3/3, the lower wins: 0.6 is kept. Without
    # item 3 or 4 the fit is 0.8: both dropped. Kept 0, 1, 2: precision 2/3, share 3/5
    assert fit.loo_precision == pytest.approx(2 / 3) and fit.loo_kept_share == pytest.approx(0.6)
    assert fit.correct == 3


def test_is_correct():
    assert is_correct("positive", "Positive")
    assert not is_correct("negative", "positive")


def _record(instances, threshold=0.5):
    return {"id": "t", "threshold": threshold, "instances": instances}


def test_curate_each_reason():
    gen = Task("t", "Name the capital.", [Instance("France", "Lyon"), Instance("Peru", "Lima"),
                                          Instance("Chad", "N'Djamena")], False)
    record = _record([
        {"input": "France", "output": "Lyon", "candidates": ["Lyon", "Paris", "Paris"],
         "chosen": 1, "agreement": 0.67, "ifd": 0.4},
        {"input": "Peru", "output": "Lima", "candidates": ["Lima", "Cusco", "Quito"],
         "chosen": 0, "agreement": 0.0, "ifd": 0.3},
        {"input": "Chad", "output": "N'Djamena", "candidates": ["N'Djamena"] * 3,
         "chosen": 0, "agreement": 1.0, "ifd": 1.2},
    ])
    kept, dropped = curate(gen, record, None, 1.0)
    assert kept == [Instance("France", "Paris")]  # the medoid replaces the output
    assert [(i.input, reason) for i, reason, _ in dropped] == [
        ("Peru", "no_consensus"), ("Chad", "instruction_does_not_help")]
    # --min-agreement overrides the recorded threshold
    kept, _ = curate(gen, record, 0.0, 1.0)
    assert [i.input for i in kept] == ["France", "Peru"]

    clf = Task("c", "Is it positive?", [Instance("I love it", "Positive"),
                                         Instance("I hate it", "Positive"),
                                         Instance("It is fine", "Negative")], True)
    record = _record([
        {"input": "I love it", "output": "Positive",
         "labels": {"Positive": -0.2, "Negative": -3.0}, "ifd": 0.5},
        {"input": "I hate it", "output": "Positive",
         "labels": {"Positive": -2.5, "Negative": -0.4}, "ifd": 0.5},
        {"input": "It is fine", "output": "Negative",
         "labels": {"Positive": -1.5, "Negative": -0.9}, "ifd": 0.5},
    ])
    kept, dropped = curate(clf, record, None, 1.0)
    assert kept == [Instance("I love it", "Positive"), Instance("It is fine", "Negative")]
    assert dropped[0][1] == "label_not_recovered" and '"recovered": "Negative"' in dropped[0][2]


def test_a_task_with_one_label_offers_no_round_trip():
    clf = Task("c", "Name the mood.", [Instance("I love it", "Happy"),
                                       Instance("I hate it", "Happy")], True)
    entries = [{"input": i.input, "output": i.output, "ifd": 0.5} for i in clf.instances]
    kept, dropped = curate(clf, _record(entries), None, 1.0)
    assert kept == [] and [reason for _, reason, _ in dropped] == ["one_label"] * 2
    # a backend that could not score: no round trip was tried, nothing is held against it
    unscored = [{"input": i.input, "output": i.output} for i in clf.instances]
    kept, dropped = curate(clf, {**_record(unscored), "scored": False}, None, 1.0)
    assert kept == clf.instances and dropped == []
