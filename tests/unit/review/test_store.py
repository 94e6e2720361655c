"""The review store (RUN/review.sqlite), Table 2 shares, and export --reviewed."""

from __future__ import annotations

import sqlite3

import pytest

from selfinstruct.errors import UserError
from selfinstruct.records import Instance, Task
from selfinstruct.review.store import (
    DB_NAME,
    SCHEMA_VERSION,
    Review,
    ReviewStore,
    apply,
    apply_reviews,
    quality_summary,
)


def tasks() -> list[Task]:
    return [
        Task("t1", "Write a poem.", [Instance("", "Roses.")], False),
        Task("t2", "Classify the review.", [Instance("Good.", "positive"),
                                            Instance("Bad.", "negative")], True),
        Task("t3", "List fruits.", [Instance("", "apple")], False),
        Task("t4", "Name a colour.", [Instance("", "blue")], False),
    ]


def test_reviews_round_trip_and_replace(tmp_path):
    store = ReviewStore(tmp_path)
    assert (tmp_path / DB_NAME).exists()
    assert store.schema_version == SCHEMA_VERSION == 1
    store.save_review(Review("t1", "accept", True, False, True, reviewer="ann"))
    edited = Review("t2", "edit", True, True, True, instruction="Classify the <b>review</b>.",
                    instances=(Instance("Good.", "positive"),), reviewer="ann", note="typo")
    store.save_review(edited)
    got = ReviewStore(tmp_path).reviews()  # a second store on the same file sees them
    assert set(got) == {"t1", "t2"}
    assert got["t1"].decision == "accept" and got["t1"].valid_input is False
    assert got["t2"].instruction == "Classify the <b>review</b>."
    assert got["t2"].instances == (Instance("Good.", "positive"),)
    assert got["t2"].updated_at  # stamped on save
    store.save_review(Review("t1", "reject", False, False, False, reviewer="bob"))
    assert store.get_review("t1").decision == "reject"
    assert store.get_review("t1").reviewer == "bob"
    assert len(store.reviews()) == 2
    assert store.get_review("nope") is None


def test_an_unknown_decision_is_refused():
    with pytest.raises(UserError, match="decision must be one of accept, reject, edit"):
        Review("t1", "maybe")


def test_a_newer_schema_is_refused_and_left_alone(tmp_path):
    path = tmp_path / DB_NAME
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(UserError, match="schema version 99; this selfinstruct reads up to 1"):
        ReviewStore(tmp_path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 99
    assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    conn.close()


def test_ratings_are_replaced_and_read_back_in_the_judge_format(tmp_path):
    store = ReviewStore(tmp_path)
    store.save_rating("human:ann", "m1", "i1", "A")
    store.save_rating("human:ann", "m1", "i1", "C")  # changed her mind
    store.save_rating("human:bob", "m1", "i1", "B")
    with pytest.raises(UserError, match="rating must be one of A, B, C, D"):
        store.save_rating("human:ann", "m1", "i2", "E")
    records = store.rating_records("human:ann")
    assert len(records) == 1
    record = records[0]
    assert set(record) == {"format_version", "model", "instance_id", "rater", "rating",
                           "reasoning", "parse_error", "rated_at"}
    assert (record["format_version"], record["rater"], record["rating"]) == (1, "human:ann", "C")
    assert len(store.rating_records()) == 2


def test_quality_shares_are_those_of_table_2():
    reviews = [Review("a", "accept", True, True, True), Review("b", "edit", True, False, True),
               Review("c", "reject", False, False, False), Review("d", "accept", True, True, False)]
    q = quality_summary(reviews)
    assert (q.reviewed, q.valid_instruction, q.valid_input, q.valid_output, q.all_valid) == \
        (4, 3, 2, 2, 1)
    assert (q.accepted, q.rejected, q.edited) == (2, 1, 1)
    assert q.share("valid_instruction") == 0.75
    assert q.percent("valid_input") == "50% (2)"
    assert quality_summary([]).percent("valid_output") == "n/a"


def test_apply_drops_rejected_applies_edits_keeps_the_rest():
    reviews = {
        "t1": Review("t1", "accept"),
        "t2": Review("t2", "edit", instruction="Classify the sentiment of the review.",
                     instances=(Instance("Good.", "positive"), Instance("", ""),
                                Instance("Meh.", "neutral"))),
        "t3": Review("t3", "reject"),
        "zz": Review("zz", "reject"),  # a review of a task no longer there is ignored
    }
    out = apply(reviews, tasks())
    assert [t.id for t in out] == ["t1", "t2", "t4"]
    assert out[0] == tasks()[0]
    assert out[1].instruction == "Classify the sentiment of the review."
    assert out[1].instances == [Instance("Good.", "positive"), Instance("Meh.", "neutral")]
    assert out[1].is_classification is True
    assert out[2] == tasks()[3]  # unreviewed: unchanged


def test_an_edit_that_removes_every_instance_drops_the_task():
    reviews = {"t1": Review("t1", "edit", instruction="Write a poem.",
                            instances=(Instance(" ", ""),))}
    assert [t.id for t in apply(reviews, tasks())] == ["t2", "t3", "t4"]


def test_apply_reviews_reads_the_run_store(tmp_path):
    with pytest.raises(UserError, match="nothing has been reviewed"):
        apply_reviews(tmp_path, tasks())
    ReviewStore(tmp_path).save_review(Review("t4", "reject"))
    assert [t.id for t in apply_reviews(tmp_path, tasks())] == ["t1", "t2", "t3"]
