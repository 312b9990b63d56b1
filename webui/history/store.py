"""Stored requests and their feedback in the workspace database: add, look up, search, page, purge."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..store.db import connect, open_database, transaction

VERDICTS = ("correct", "wrong")
# feedback= filter values: none (no feedback yet), any (some), or one verdict.
FEEDBACK_FILTERS = ("none", "any", *VERDICTS)
_COLUMNS = ("r.id, r.time, r.task, r.source, r.text, r.input, r.answer, r.latency_ms, r.model, r.weights, "
            "r.truncated, f.verdict, f.expected, f.user, f.time AS feedback_time")


@dataclass(frozen=True)
class Record:
    """One request as the recorder hands it over: the input and answer already plain JSON values."""

    id: str
    time: float
    task: str
    source: str
    text: str
    input: dict[str, Any]
    answer: Any
    latency_ms: float | None
    model: str
    weights: str
    truncated: bool = False


@dataclass(frozen=True)
class Feedback:
    verdict: str
    expected: dict[str, Any] | None
    user: str | None
    time: float


@dataclass(frozen=True)
class Stored:
    """A stored request with its feedback, if any."""

    record: Record
    feedback: Feedback | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Stored:
        record = Record(row["id"], row["time"], row["task"], row["source"], row["text"], json.loads(row["input"]),
                        json.loads(row["answer"]), row["latency_ms"], row["model"], row["weights"],
                        bool(row["truncated"]))
        feedback = None
        if row["verdict"] is not None:
            expected = json.loads(row["expected"]) if row["expected"] else None
            feedback = Feedback(row["verdict"], expected, row["user"], row["feedback_time"])
        return cls(record, feedback)


@dataclass
class _Connections(threading.local):
    conn: sqlite3.Connection | None = field(default=None)


class HistoryStore:
    """Each thread uses its own connection to the one file, as the job store does."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        open_database(self.path).close()  # create and migrate once, before anyone reads
        self._local = _Connections()

    def _conn(self) -> sqlite3.Connection:
        if self._local.conn is None:
            conn = connect(self.path)
            # Deleted texts are overwritten with zeros, not left in free pages: they may be confidential.
            conn.execute("PRAGMA secure_delete=ON")
            self._local.conn = conn
        return self._local.conn

    def checkpoint(self) -> bool:
        """Copy the write-ahead log into the file and empty it, so erased texts leave no copy there either.
        False when another connection's open read kept SQLite from emptying it (after its busy timeout)."""
        busy, _, _ = self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return not busy

    # ---- writing ---------------------------------------------------------------------

    def add(self, records: list[Record]) -> list[str]:
        """Store the records in one transaction; the ids they were stored under, in order.

        A batch shares one request id among its rows: the second and later get ``ID.2``, ``ID.3``…"""
        conn = self._conn()
        ids = []
        with transaction(conn):
            for rec in records:
                input_json = json.dumps(rec.input, ensure_ascii=False)
                answer_json = json.dumps(rec.answer, ensure_ascii=False)
                size = len(rec.text.encode()) + len(input_json.encode()) + len(answer_json.encode())
                key, n = rec.id, 1
                while True:
                    try:
                        conn.execute(
                            "INSERT INTO requests (id, time, task, source, text, input, answer, latency_ms, model, "
                            "weights, truncated, bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (key, rec.time, rec.task, rec.source, rec.text, input_json, answer_json, rec.latency_ms,
                             rec.model, rec.weights, int(rec.truncated), size),
                        )
                        break
                    except sqlite3.IntegrityError:
                        n += 1
                        key = f"{rec.id}.{n}"
                ids.append(key)
        return ids

    def set_feedback(self, request_id: str, verdict: str, expected: dict[str, Any] | None,
                     user: str | None) -> bool:
        """Store or replace the request's feedback; False when the request is not stored."""
        conn = self._conn()
        with transaction(conn):
            if conn.execute("SELECT 1 FROM requests WHERE id = ?", (request_id,)).fetchone() is None:
                return False
            conn.execute(
                "INSERT INTO feedback (request_id, verdict, expected, user, time) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (request_id) DO UPDATE SET verdict = excluded.verdict, expected = excluded.expected, "
                "user = excluded.user, time = excluded.time",
                (request_id, verdict, json.dumps(expected, ensure_ascii=False) if expected is not None else None,
                 user, time.time()),
            )
        return True

    def delete_before(self, cutoff: float) -> int:
        """Erase every request stored before ``cutoff`` (epoch seconds), with its feedback."""
        conn = self._conn()
        with transaction(conn):
            return conn.execute("DELETE FROM requests WHERE time < ?", (cutoff,)).rowcount

    def purge(self, max_age_s: float, max_bytes: int, now: float | None = None) -> tuple[int, int]:
        """Drop what is older than ``max_age_s``, then the oldest until at most ``max_bytes`` remain.
        Returns (purged by age, purged by size)."""
        now = time.time() if now is None else now
        by_age = self.delete_before(now - max_age_s)
        conn = self._conn()
        with transaction(conn):
            # The newest rows are kept while their running total fits; the first row over it and
            # every older one go.
            over = conn.execute(
                "SELECT time, id FROM (SELECT time, id, SUM(bytes) OVER (ORDER BY time DESC, id DESC) AS kept "
                "FROM requests) WHERE kept > ? ORDER BY time DESC, id DESC LIMIT 1",
                (max_bytes,),
            ).fetchone()
            by_size = 0
            if over is not None:
                by_size = conn.execute(
                    "DELETE FROM requests WHERE time < ? OR (time = ? AND id <= ?)", (over[0], over[0], over[1])
                ).rowcount
        return by_age, by_size

    # ---- reading ---------------------------------------------------------------------

    def get(self, request_id: str) -> Stored | None:
        row = self._conn().execute(
            f"SELECT {_COLUMNS} FROM requests r LEFT JOIN feedback f ON f.request_id = r.id WHERE r.id = ?",
            (request_id,),
        ).fetchone()
        return Stored.from_row(row) if row else None

    def search(self, task: str | None = None, q: str | None = None, feedback: str | None = None,
               limit: int = 50, before: float | None = None, before_id: str | None = None) -> list[Stored]:
        """Newest first (by time, then id). ``q`` matches anywhere in the input text or the answer (LIKE:
        FTS5's trigram tokenizer cannot find the two-character words Chinese is full of). ``before``
        alone keeps what was stored before that time; with ``before_id``, what is listed after that
        request, so that a page ending among requests of one time misses none of them."""
        where, params = _filters(task, q, feedback, before, before_id)
        rows = self._conn().execute(
            f"SELECT {_COLUMNS} FROM requests r LEFT JOIN feedback f ON f.request_id = r.id {where} "
            "ORDER BY r.time DESC, r.id DESC LIMIT ?",
            (*params, limit),
        )
        return [Stored.from_row(row) for row in rows]

    def with_feedback(self, task: str) -> Iterator[Stored]:
        """Every request of ``task`` that has feedback, oldest first, read a page at a time."""
        after_time, after_id = -1.0, ""
        while True:
            rows = self._conn().execute(
                f"SELECT {_COLUMNS} FROM requests r JOIN feedback f ON f.request_id = r.id WHERE r.task = ? "
                "AND (r.time > ? OR (r.time = ? AND r.id > ?)) ORDER BY r.time, r.id LIMIT 500",
                (task, after_time, after_time, after_id),
            ).fetchall()
            if not rows:
                return
            for row in rows:
                yield Stored.from_row(row)
            after_time, after_id = rows[-1]["time"], rows[-1]["id"]

    def counts(self) -> dict[str, int]:
        """Stored requests, and feedback by verdict: for /metrics."""
        conn = self._conn()
        counts = {"requests": conn.execute("SELECT count(*) FROM requests").fetchone()[0]}
        counts.update(dict.fromkeys(VERDICTS, 0))
        for verdict, count in conn.execute("SELECT verdict, count(*) FROM feedback GROUP BY verdict"):
            counts[verdict] = count
        return counts

    def feedback_by_task(self) -> dict[str, dict[str, int]]:
        """For the History tab's counter: per task, how many answers were marked correct and wrong."""
        table: dict[str, dict[str, int]] = {}
        for task, verdict, count in self._conn().execute(
            "SELECT r.task, f.verdict, count(*) FROM feedback f JOIN requests r ON r.id = f.request_id "
            "GROUP BY r.task, f.verdict ORDER BY r.task"
        ):
            table.setdefault(task, dict.fromkeys(VERDICTS, 0))[verdict] = count
        return table

    def tasks(self) -> set[str]:
        """The tasks of the stored requests."""
        return {row[0] for row in self._conn().execute("SELECT DISTINCT task FROM requests")}

    def total_bytes(self) -> int:
        return self._conn().execute("SELECT coalesce(sum(bytes), 0) FROM requests").fetchone()[0]


def _filters(task: str | None, q: str | None, feedback: str | None,
             before: float | None, before_id: str | None = None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if task:
        clauses.append("r.task = ?")
        params.append(task)
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses.append("(r.text LIKE ? ESCAPE '\\' OR r.answer LIKE ? ESCAPE '\\')")
        params += [pattern, pattern]
    if feedback == "none":
        clauses.append("f.verdict IS NULL")
    elif feedback == "any":
        clauses.append("f.verdict IS NOT NULL")
    elif feedback in VERDICTS:
        clauses.append("f.verdict = ?")
        params.append(feedback)
    if before is not None and before_id is not None:
        clauses.append("(r.time < ? OR (r.time = ? AND r.id < ?))")
        params += [before, before, before_id]
    elif before is not None:
        clauses.append("r.time < ?")
        params.append(before)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params
