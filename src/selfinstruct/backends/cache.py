"""A persistent response cache in SQLite, wrapped around any backend.

Used by :mod:`selfinstruct.backends.requests`, which looks every request up before sending it.
The key is :func:`selfinstruct.backends.base.request_key`: backend identity, model,
prompt and every sampling parameter. Only successful completions are stored, so a failed
request is sent again on the next run. A re-run or a resume therefore re-sends nothing
that was already answered.

The cache is written before the stage that asked records the result, so after a crash
the answer is there for the replay.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from selfinstruct.backends.base import Completion
from selfinstruct.errors import UserError

SCHEMA_VERSION = 1


class ResponseCache:
    """``readonly``: open an existing cache for lookups only: nothing is created or
    changed, not even its journal mode (:meth:`put` then raises). Without a writer's
    ``-wal`` file beside it the file is opened ``immutable`` (a read-only connection to a
    WAL database would leave ``-wal`` and ``-shm`` files behind); with one, ``mode=ro``,
    which sees the writer's latest answers."""

    def __init__(self, path: str | Path, *, readonly: bool = False):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = self._open_readonly() if readonly else self._open()

    def _open_readonly(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = None
        try:
            live = self.path.with_name(self.path.name + "-wal").exists()
            query = "mode=ro" if live else "mode=ro&immutable=1"
            db = sqlite3.connect(f"{self.path.resolve().as_uri()}?{query}", uri=True,
                                 check_same_thread=False, isolation_level=None)
            db.execute("SELECT COUNT(*) FROM responses LIMIT 1")
        except sqlite3.Error as exc:
            if db is not None:
                db.close()
            raise self._error(exc) from None
        return db

    def _open(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(str(self.path), check_same_thread=False,
                                 isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, "
                "completion TEXT NOT NULL)"
            )
            db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
            db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        except sqlite3.Error as exc:
            if db is not None:
                db.close()
            raise self._error(exc) from None
        return db

    def _error(self, exc: sqlite3.Error) -> UserError:
        """One line naming the cache file (a file that is not a database, a full disk)."""
        text = str(exc).lower()
        if "full" in text:  # SQLITE_FULL: nothing is wrong with the cache itself
            return UserError(f"{self.path}: no space left on the device ({exc}); free some "
                             "space and re-run the same command (nothing recorded is lost)")
        if "readonly" in text or "read-only" in text or "unable to open" in text:
            return UserError(f"{self.path}: the response cache cannot be written ({exc}); "
                             "check the permissions of the file and its folder")
        return UserError(f"{self.path}: the response cache cannot be used ({exc}); move it "
                         "away to start the cache afresh (answers already recorded are kept)")

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute(
                "SELECT completion FROM responses WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        return Completion(**data, cached=True)

    def put(self, key: str, completion: Completion) -> None:
        if not completion.ok:
            return
        data = {
            "text": completion.text,
            "finish_reason": completion.finish_reason,
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "seconds": completion.seconds,
        }
        if completion.choice_logprobs is not None:
            data["choice_logprobs"] = completion.choice_logprobs
        with self._lock:
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO responses VALUES (?, ?)",
                    (key, json.dumps(data, ensure_ascii=False)),
                )
            except sqlite3.Error as exc:
                raise self._error(exc) from None

    def token_totals(self) -> tuple[int, int]:
        """(prompt, completion) tokens of every stored completion: what the run spent."""
        with self._lock:
            row = self._db.execute(
                "SELECT COALESCE(SUM(json_extract(completion, '$.prompt_tokens')), 0),"
                " COALESCE(SUM(json_extract(completion, '$.completion_tokens')), 0)"
                " FROM responses"
            ).fetchone()
        return int(row[0]), int(row[1])

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

