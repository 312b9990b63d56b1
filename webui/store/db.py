"""The workspace database: one SQLite file in WAL mode, owner-only, its schema migrated forward on every open."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

FILE_NAME = "seqgpt560m.db"
# Seconds a writer waits for another's lock before SQLite says "database is locked".
BUSY_TIMEOUT_S = 30.0

# Forward migrations, in order: entry N takes the schema from version N to N + 1 (PRAGMA
# user_version). Append, never edit: a workspace written by an older appliance replays only
# the entries it has not seen yet. Each runs in one transaction with its version bump.
MIGRATIONS: tuple[str, ...] = (
    # 1: durable batch jobs (webui/jobs). A job's rows keep the user's columns and, once run,
    # the result or the error; rows_done moves in the same transaction as the results it counts.
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        task TEXT NOT NULL,
        names TEXT NOT NULL,
        options TEXT NOT NULL,
        input_name TEXT NOT NULL,
        input_bytes INTEGER NOT NULL,
        columns TEXT NOT NULL,
        text_column TEXT NOT NULL,
        state TEXT NOT NULL,
        rows_total INTEGER NOT NULL,
        rows_done INTEGER NOT NULL DEFAULT 0,
        rows_failed INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        error TEXT
    );
    CREATE INDEX jobs_by_state ON jobs (state, created_at);
    CREATE TABLE job_rows (
        job_id TEXT NOT NULL,
        row INTEGER NOT NULL,
        source TEXT NOT NULL,
        text TEXT NOT NULL,
        problem TEXT,
        result TEXT,
        error TEXT,
        PRIMARY KEY (job_id, row)
    ) WITHOUT ROWID;
    """,
    # 2: request history and feedback (webui/history). `text` is the searchable input text (cut to
    # the stored limit, `truncated` then 1); `bytes` is what the row holds, for the size retention.
    # Feedback goes with its request when either is purged.
    """
    CREATE TABLE requests (
        id TEXT PRIMARY KEY,
        time REAL NOT NULL,
        task TEXT NOT NULL,
        source TEXT NOT NULL,
        text TEXT NOT NULL,
        input TEXT NOT NULL,
        answer TEXT NOT NULL,
        latency_ms REAL,
        model TEXT NOT NULL,
        weights TEXT NOT NULL,
        truncated INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL
    );
    CREATE INDEX requests_by_time ON requests (time);
    CREATE INDEX requests_by_task ON requests (task, time);
    CREATE TABLE feedback (
        request_id TEXT PRIMARY KEY REFERENCES requests (id) ON DELETE CASCADE,
        verdict TEXT NOT NULL,
        expected TEXT,
        user TEXT,
        time REAL NOT NULL
    );
    """,
)


class DatabaseError(Exception):
    """The workspace database cannot be opened or migrated; the message says how to fix it."""


def default_path(workspace: Path) -> Path:
    return workspace / FILE_NAME


def connect(path: Path, check_same_thread: bool = True) -> sqlite3.Connection:
    """A connection to an already migrated database: autocommit (transactions are explicit), WAL, owner-only."""
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=check_same_thread)
    conn.row_factory = sqlite3.Row
    # NORMAL in WAL mode: a crash of the app loses nothing committed; a power cut may lose the
    # last commits but never splits one, so a chunk's results and its progress stay together.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def open_database(path: Path) -> sqlite3.Connection:
    """Create the file if needed (mode 0600), switch it to WAL and apply the migrations it lacks."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created owner-only before SQLite opens it: it holds users' texts. SQLite gives its
        # -wal and -shm files the main file's permissions.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(path, 0o600)
        conn = connect(path)
        refuse_newer(conn, path)  # before anything below writes to a newer appliance's file
        conn.execute("PRAGMA journal_mode=WAL")
        migrate(conn, path)
    except (OSError, sqlite3.Error) as exc:
        raise DatabaseError(
            f"工作区数据库无法打开 · cannot open the workspace database {path} ({exc}): check that the workspace "
            "is writable and has free space, or point SEQGPT_JOBS_DB at another file"
        ) from exc
    return conn


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the schema to the newest version; a database from a newer appliance is refused, not damaged."""
    version = refuse_newer(conn, path)
    for number in range(version, len(MIGRATIONS)):
        with transaction(conn):
            for statement in _statements(MIGRATIONS[number]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number + 1}")
        log.info("workspace database %s migrated to schema version %d", path, number + 1)
    return len(MIGRATIONS)


def refuse_newer(conn: sqlite3.Connection, path: Path) -> int:
    """The database's schema version; a DatabaseError where a newer appliance wrote it."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise DatabaseError(
            f"工作区数据库版本过新 · {path} has schema version {version}, newer than this appliance knows "
            f"({len(MIGRATIONS)}): run the newer appliance, or move the file away to start afresh"
        )
    return version


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction, taken at once (IMMEDIATE) so that it never fails half way for a lock."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite may have rolled back itself (a full disk on COMMIT)
            conn.execute("ROLLBACK")
        raise


def _statements(script: str) -> list[str]:
    # executescript would commit first; the migration's statements must share its transaction.
    return [statement.strip() for statement in script.split(";") if statement.strip()]
