"""``RUN/review.sqlite``: what a reviewer decided about each task, and how they rated responses.

Schema (version in ``PRAGMA user_version``; ordered migrations, as ``llm`` keeps its log)::

    reviews   one row per task: decision ('accept' | 'reject' | 'edit'), three validity
              marks (instruction valid, input appropriate, output correct: the paper's
              Table 2 questions), the edited instruction and instances (JSON) for 'edit',
              reviewer, note, updated_at. Saving again replaces the row.
    ratings   one row per (rater, model, instance_id): a record of the ratings format of
              :mod:`selfinstruct.evaluation.ratings` (rater "human:<name>"). Rating again
              replaces the row; :meth:`ReviewStore.rating_records` gives them back in that
              format, for kappa with a judge and for ``human_ratings.jsonl``.

A database written by a newer selfinstruct (a higher version) is refused, never modified.

:func:`apply_reviews` is what ``selfinstruct export RUN --reviewed`` does: rejected tasks
are dropped, edits applied (an edited instance whose input and output are both empty is
removed; a task left with no instance is dropped), accepted and unreviewed tasks pass
unchanged. What this module leaves out: HTTP (see :mod:`.app`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path

from selfinstruct.errors import UserError
from selfinstruct.evaluation.ratings import LEVELS, RATINGS_FORMAT_VERSION
from selfinstruct.files import now
from selfinstruct.records import Instance, Task

DB_NAME = "review.sqlite"
DECISIONS = ("accept", "reject", "edit")
VALIDITY = ("valid_instruction", "valid_input", "valid_output")

MIGRATIONS = [
    # 1: reviews and ratings
    """
    CREATE TABLE reviews (
        task_id TEXT PRIMARY KEY,
        decision TEXT NOT NULL CHECK (decision IN ('accept', 'reject', 'edit')),
        valid_instruction INTEGER NOT NULL,
        valid_input INTEGER NOT NULL,
        valid_output INTEGER NOT NULL,
        instruction TEXT,
        instances TEXT,
        reviewer TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT '',
        updated_at TEXT NOT NULL
    );
    CREATE TABLE ratings (
        rater TEXT NOT NULL,
        model TEXT NOT NULL,
        instance_id TEXT NOT NULL,
        rating TEXT CHECK (rating IN ('A', 'B', 'C', 'D')),
        reasoning TEXT NOT NULL DEFAULT '',
        rated_at TEXT NOT NULL,
        PRIMARY KEY (rater, model, instance_id)
    );
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True)
class Review:
    task_id: str
    decision: str
    valid_instruction: bool = False
    valid_input: bool = False
    valid_output: bool = False
    instruction: str | None = None          # the edited instruction ('edit' only)
    instances: tuple[Instance, ...] | None = None  # the edited instances ('edit' only)
    reviewer: str = ""
    note: str = ""
    updated_at: str = ""

    def __post_init__(self):
        if self.decision not in DECISIONS:
            raise UserError(f"decision must be one of {', '.join(DECISIONS)}, "
                            f"got {self.decision!r}")


class ReviewStore:
    """The review database of one directory; each call opens its own connection, so the
    store can be shared by the web app's threads."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / DB_NAME
        try:
            with closing(self._connect()) as conn:
                self._migrate(conn)
        except sqlite3.Error as exc:  # a read-only folder, a full disk: name the file
            raise UserError(f"{self.path}: the review database cannot be opened or written "
                            f"({exc}); check the permissions and free space of "
                            f"{self.path.parent}") from None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10)
        conn.row_factory = sqlite3.Row
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise UserError(f"{self.path} has schema version {version}; this selfinstruct "
                            f"reads up to {SCHEMA_VERSION} (upgrade selfinstruct)")
        for number in range(version, SCHEMA_VERSION):
            with conn:
                conn.executescript(f"BEGIN; {MIGRATIONS[number]} "
                                   f"PRAGMA user_version = {number + 1}; COMMIT;")

    @property
    def schema_version(self) -> int:
        with closing(self._connect()) as conn:
            return conn.execute("PRAGMA user_version").fetchone()[0]

    # -- reviews --------------------------------------------------------------------

    def save_review(self, review: Review) -> Review:
        review = replace(review, updated_at=review.updated_at or now())
        instances = None if review.instances is None else json.dumps(
            [{"input": i.input, "output": i.output} for i in review.instances],
            ensure_ascii=False)
        with closing(self._connect()) as conn, conn:
            conn.execute(
                "INSERT OR REPLACE INTO reviews VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (review.task_id, review.decision, int(review.valid_instruction),
                 int(review.valid_input), int(review.valid_output), review.instruction,
                 instances, review.reviewer, review.note, review.updated_at))
        return review

    def reviews(self) -> dict[str, Review]:
        with closing(self._connect()) as conn:
            rows = conn.execute("SELECT * FROM reviews ORDER BY task_id").fetchall()
        return {row["task_id"]: _review_from_row(row) for row in rows}

    def get_review(self, task_id: str) -> Review | None:
        with closing(self._connect()) as conn:
            row = conn.execute("SELECT * FROM reviews WHERE task_id = ?", (task_id,)).fetchone()
        return _review_from_row(row) if row else None

    # -- ratings --------------------------------------------------------------------

    def save_rating(self, rater: str, model: str, instance_id: str, rating: str,
                    reasoning: str = "") -> None:
        if rating not in LEVELS:
            raise UserError(f"rating must be one of {', '.join(LEVELS)}, got {rating!r}")
        with closing(self._connect()) as conn, conn:
            conn.execute("INSERT OR REPLACE INTO ratings VALUES (?, ?, ?, ?, ?, ?)",
                         (rater, model, instance_id, rating, reasoning, now()))

    def rating_records(self, rater: str | None = None) -> list[dict]:
        """Ratings in the format of :mod:`selfinstruct.evaluation.ratings`."""
        query = "SELECT * FROM ratings"
        args: tuple[str, ...] = ()
        if rater is not None:
            query, args = query + " WHERE rater = ?", (rater,)
        with closing(self._connect()) as conn:
            rows = conn.execute(query + " ORDER BY rater, model, instance_id", args).fetchall()
        return [{"format_version": RATINGS_FORMAT_VERSION, "model": r["model"],
                 "instance_id": r["instance_id"], "rater": r["rater"], "rating": r["rating"],
                 "reasoning": r["reasoning"], "parse_error": None, "rated_at": r["rated_at"]}
                for r in rows]


def _review_from_row(row: sqlite3.Row) -> Review:
    instances = None
    if row["instances"] is not None:
        instances = tuple(Instance(i["input"], i["output"]) for i in json.loads(row["instances"]))
    return Review(task_id=row["task_id"], decision=row["decision"],
                  valid_instruction=bool(row["valid_instruction"]),
                  valid_input=bool(row["valid_input"]), valid_output=bool(row["valid_output"]),
                  instruction=row["instruction"], instances=instances,
                  reviewer=row["reviewer"], note=row["note"], updated_at=row["updated_at"])


# -- the paper's Table 2 ------------------------------------------------------------------

@dataclass(frozen=True)
class Quality:
    """Shares of reviewed tasks marked valid, as in the paper's Table 2."""

    reviewed: int
    valid_instruction: int
    valid_input: int
    valid_output: int
    all_valid: int
    accepted: int
    rejected: int
    edited: int

    def share(self, name: str) -> float | None:
        return getattr(self, name) / self.reviewed if self.reviewed else None

    def percent(self, name: str) -> str:
        share = self.share(name)
        return "n/a" if share is None else f"{100 * share:.0f}% ({getattr(self, name)})"


def quality_summary(reviews: Iterable[Review]) -> Quality:
    reviews = list(reviews)
    return Quality(
        reviewed=len(reviews),
        valid_instruction=sum(r.valid_instruction for r in reviews),
        valid_input=sum(r.valid_input for r in reviews),
        valid_output=sum(r.valid_output for r in reviews),
        all_valid=sum(r.valid_instruction and r.valid_input and r.valid_output for r in reviews),
        accepted=sum(r.decision == "accept" for r in reviews),
        rejected=sum(r.decision == "reject" for r in reviews),
        edited=sum(r.decision == "edit" for r in reviews),
    )


# -- export --reviewed --------------------------------------------------------------------

def apply(reviews: dict[str, Review], tasks: list[Task]) -> list[Task]:
    """Drop rejected tasks, apply edits; accepted and unreviewed tasks pass unchanged."""
    out = []
    for task in tasks:
        review = reviews.get(task.id)
        if review is None or review.decision == "accept":
            out.append(task)
        elif review.decision == "edit":
            instances = task.instances if review.instances is None else [
                i for i in review.instances if i.input.strip() or i.output.strip()]
            if instances:
                out.append(replace(task, instruction=review.instruction or task.instruction,
                                   instances=list(instances)))
    return out


def apply_reviews(run_dir: str | Path, tasks: list[Task]) -> list[Task]:
    """``tasks`` with the decisions stored in ``RUN/review.sqlite`` applied (see :func:`apply`)."""
    path = Path(run_dir) / DB_NAME
    if not path.exists():
        raise UserError(f"--reviewed: {path} does not exist, nothing has been reviewed; "
                        f"review first with 'selfinstruct review {run_dir}'")
    return apply(ReviewStore(run_dir).reviews(), tasks)
