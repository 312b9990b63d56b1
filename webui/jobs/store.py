"""Jobs and their rows in the workspace database: rows streamed in, results committed in chunks with the progress."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from ..batch.files import BatchFileError, nothing_runs
from ..store.db import connect, open_database, transaction
from .errors import JobLimitError, StorageError
from .files import InputReader

log = logging.getLogger(__name__)

STATES = ("queued", "running", "done", "failed", "cancelled")
INSERT_BATCH = 1000
# Kept free beside the database and given up when the disk fills, so that a job's failure can
# still be written: a full disk must end in a clear `failed`, not in a job stuck `running`.
RESERVE_BYTES = 1 << 20
_JOB_COLUMNS = (
    "id, task, names, options, input_name, input_bytes, columns, text_column, state, rows_total, rows_done, "
    "rows_failed, created_at, started_at, finished_at, error"
)


@dataclass(frozen=True)
class Job:
    id: str
    task: str
    names: list[str]
    options: dict[str, Any]
    input_name: str
    input_bytes: int
    columns: list[str]
    text_column: str
    state: str
    rows_total: int
    rows_done: int
    rows_failed: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        values = dict(row)
        for name in ("names", "options", "columns"):
            values[name] = json.loads(values[name])
        return cls(**values)

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")


@dataclass(frozen=True)
class PendingRow:
    row: int
    text: str
    problem: str | None


@dataclass(frozen=True)
class RowOutcome:
    row: int
    result: dict[str, Any] | None
    error: str | None


@dataclass
class _Connections(threading.local):
    conn: sqlite3.Connection | None = field(default=None)


class JobStore:
    """Every method opens its own thread's connection: the runner, the routes and the UI share the file, not objects."""

    def __init__(self, path: Path, files_dir: Path) -> None:
        self.path = Path(path)
        self.files_dir = Path(files_dir)
        open_database(self.path).close()  # create and migrate once, before anyone reads
        self._local = _Connections()
        self.reserve = self.path.with_name(self.path.name + ".reserve")
        self.keep_reserve()

    def keep_reserve(self) -> None:
        """Set the reserve aside again if it is gone and the disk has room (best effort)."""
        if self.reserve.exists():
            return
        try:
            with self.reserve.open("wb") as handle:
                handle.write(b"\0" * RESERVE_BYTES)
        except OSError:
            self.reserve.unlink(missing_ok=True)

    def release_reserve(self) -> bool:
        """Free the reserve for a last write; False when there was none."""
        if not self.reserve.exists():
            return False
        self.reserve.unlink(missing_ok=True)
        return True

    def _conn(self) -> sqlite3.Connection:
        if self._local.conn is None:
            self._local.conn = connect(self.path)
        return self._local.conn

    # ---- creating ----------------------------------------------------------------------

    def create(self, job_id: str, task: str, names: list[str], options: dict[str, Any], input_name: str,
               input_bytes: int, reader: InputReader, max_rows: int, max_waiting: int | None = None) -> Job:
        """The job and all its rows in one transaction: a crash half way leaves no job at all. With
        ``max_waiting``, refused when that many jobs already wait, counted inside the transaction so
        that submits at the same moment cannot all pass."""
        conn = self._conn()
        with storage_errors("the job's rows"), transaction(conn):
            if max_waiting is not None and (waiting := self.count_waiting()) >= max_waiting:
                raise JobLimitError(too_many_waiting(waiting, max_waiting))
            rows = iter(reader)
            total = runnable = 0
            first_problem = ""  # the reason to quote if no row can run
            while batch := list(islice(rows, INSERT_BATCH)):
                if total + len(batch) > max_rows:
                    raise BatchFileError(
                        f"文本过多 · the file has more than {max_rows} rows, the limit of one job: "
                        "split it into smaller files, or raise SEQGPT_JOBS_MAX_ROWS"
                    )
                conn.executemany(
                    "INSERT INTO job_rows (job_id, row, source, text, problem) VALUES (?, ?, ?, ?, ?)",
                    [
                        (job_id, total + i, json.dumps(item.source, ensure_ascii=False), item.text,
                         item.problem or None)
                        for i, item in enumerate(batch, 1)
                    ],
                )
                total += len(batch)
                runnable += sum(not item.problem for item in batch)
                first_problem = first_problem or next((item.problem for item in batch if item.problem), "")
            if total == 0:
                raise BatchFileError(
                    "文件里没有文本 · the file has no texts: put one text per row (CSV column `text`, JSONL key `text`)"
                )
            if runnable == 0:  # every row would fail: a file to fix, not a job to run
                raise BatchFileError(f"文件里没有可运行的文本 · {nothing_runs(total, first_problem)}")
            conn.execute(
                f"INSERT INTO jobs ({_JOB_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, 0, 0, ?, NULL, NULL, NULL)",
                (job_id, task, json.dumps(names, ensure_ascii=False), json.dumps(options), input_name, input_bytes,
                 json.dumps(reader.columns, ensure_ascii=False), reader.text_column, total, time.time()),
            )
        job = self.get(job_id)
        assert job is not None
        return job

    # ---- reading -----------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        row = self._conn().execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job.from_row(row) if row else None

    def list_jobs(self, limit: int = 200, before: tuple[float, str] | None = None) -> list[Job]:
        """Newest first; with ``before`` (a job's created_at and id), only the jobs listed after that job."""
        where, args = ("WHERE (created_at, id) < (?, ?)", list(before)) if before else ("", [])
        rows = self._conn().execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs {where} ORDER BY created_at DESC, id DESC LIMIT ?", (*args, limit)
        )
        return [Job.from_row(row) for row in rows]

    def count_by_state(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for state, count in self._conn().execute("SELECT state, count(*) FROM jobs GROUP BY state"):
            counts[state] = count
        return counts

    def pending(self, job_id: str, after: int, limit: int) -> list[PendingRow]:
        rows = self._conn().execute(
            "SELECT row, text, problem FROM job_rows WHERE job_id = ? AND row > ? ORDER BY row LIMIT ?",
            (job_id, after, limit),
        )
        return [PendingRow(*row) for row in rows]

    def results(self, job_id: str, page: int = 1000) -> Iterator[tuple[int, dict[str, Any], Any, str | None]]:
        """(row, the user's columns, result, error) of the rows done, in input order, read a page at a time
        on a connection of its own (a streamed answer moves between threads)."""
        conn = connect(self.path, check_same_thread=False)
        try:
            done = conn.execute("SELECT rows_done FROM jobs WHERE id = ?", (job_id,)).fetchone()
            last, limit = 0, done[0] if done else 0
            while last < limit:
                rows = conn.execute(
                    "SELECT row, source, result, error FROM job_rows WHERE job_id = ? AND row > ? AND row <= ? "
                    "ORDER BY row LIMIT ?", (job_id, last, limit, page),
                ).fetchall()
                if not rows:
                    return
                for row, source, result, error in rows:
                    yield row, json.loads(source), json.loads(result) if result else None, error
                last = rows[-1][0]
        finally:
            conn.close()

    # ---- the runner's side -------------------------------------------------------------

    def requeue_running(self) -> list[str]:
        """At start: jobs a stopped process left running go back to the queue, to resume after their last commit."""
        conn = self._conn()
        with transaction(conn):
            ids = [row[0] for row in conn.execute("SELECT id FROM jobs WHERE state = 'running'")]
            conn.execute("UPDATE jobs SET state = 'queued' WHERE state = 'running'")
        return ids

    def take_next(self) -> Job | None:
        """The oldest queued job, now marked running. Read back inside the transaction: a failure to
        read it leaves the job queued, never running with no runner holding it."""
        conn = self._conn()
        with transaction(conn):
            row = conn.execute(
                "SELECT id FROM jobs WHERE state = 'queued' ORDER BY created_at, id LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE jobs SET state = 'running', started_at = coalesce(started_at, ?) WHERE id = ?",
                (time.time(), row[0]),
            )
            return self.get(row[0])

    def commit_chunk(self, job_id: str, first_row: int, outcomes: list[RowOutcome]) -> bool:
        """Results of the rows from ``first_row`` on and the job's progress, in one transaction. False (and
        nothing written) when the job is no longer running or its progress is not where the chunk starts:
        a row is never counted twice."""
        failed = sum(1 for outcome in outcomes if outcome.error is not None)
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            moved = conn.execute(
                "UPDATE jobs SET rows_done = rows_done + ?, rows_failed = rows_failed + ? "
                "WHERE id = ? AND state = 'running' AND rows_done = ?",
                (len(outcomes), failed, job_id, first_row - 1),
            ).rowcount
            if moved == 1:
                conn.executemany(
                    "UPDATE job_rows SET result = ?, error = ? WHERE job_id = ? AND row = ?",
                    [
                        (json.dumps(o.result, ensure_ascii=False) if o.result is not None else None, o.error,
                         job_id, o.row)
                        for o in outcomes
                    ],
                )
            conn.execute("COMMIT" if moved == 1 else "ROLLBACK")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return moved == 1

    def finish(self, job_id: str, state: str, error: str | None = None) -> bool:
        """Mark a running job done or failed (a cancel that came first stays a cancel)."""
        conn = self._conn()
        with transaction(conn):
            changed = conn.execute(
                "UPDATE jobs SET state = ?, finished_at = ?, error = ? WHERE id = ? AND state = 'running'",
                (state, time.time(), error, job_id),
            ).rowcount
        return changed == 1

    # ---- the user's side ---------------------------------------------------------------

    def cancel(self, job_id: str) -> bool:
        conn = self._conn()
        with storage_errors("the job"), transaction(conn):
            return conn.execute(
                "UPDATE jobs SET state = 'cancelled', finished_at = ? WHERE id = ? AND state IN ('queued', 'running')",
                (time.time(), job_id),
            ).rowcount == 1

    def purge(self, job_id: str) -> bool:
        """Delete the job, its rows and its files."""
        conn = self._conn()
        with storage_errors("the job"), transaction(conn):
            conn.execute("DELETE FROM job_rows WHERE job_id = ?", (job_id,))
            found = conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount == 1
        shutil.rmtree(self.files_dir / job_id, ignore_errors=True)
        return found

    def purge_finished_before(self, cutoff: float) -> list[str]:
        ids = [row[0] for row in self._conn().execute(
            "SELECT id FROM jobs WHERE state IN ('done', 'failed', 'cancelled') AND finished_at < ?", (cutoff,)
        )]
        for job_id in ids:
            self.purge(job_id)
        return ids

    def count_waiting(self) -> int:
        return self._conn().execute("SELECT count(*) FROM jobs WHERE state = 'queued'").fetchone()[0]


def too_many_waiting(waiting: int, limit: int) -> str:
    return (f"等待的任务过多 · {waiting} jobs are already waiting, the limit is {limit}: "
            "try again when one has started, cancel one, or raise SEQGPT_JOBS_MAX_QUEUED")


class storage_errors:  # noqa: N801 - used as a statement: ``with storage_errors(...)``
    """A full disk or read-only workspace while writing ``what`` becomes a StorageError that says so."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is not None and is_storage_problem(exc):
            raise StorageError(storage_message(self.what, exc)) from exc


def is_storage_problem(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return any(word in text for word in ("full", "readonly", "read-only", "disk i/o", "unable to open"))
    return isinstance(exc, OSError)


def storage_message(what: str, exc: BaseException) -> str:
    return (
        f"工作区无法写入 · the workspace could not store {what} ({exc}): free disk space in the workspace or "
        "make it writable (SEQGPT_WORKSPACE, SEQGPT_JOBS_DB), then submit the job again"
    )
