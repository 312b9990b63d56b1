"""The job runner on real SQLite and demo weights: an error in the middle of a job never leaves it stranded."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from webui.jobs import runner as runner_module
from webui.jobs.files import InputReader
from webui.jobs.runner import JobRunner
from webui.jobs.store import JobStore, RowOutcome
from webui.service.gate import ModelGate
from webui.store import db

ROWS = ["快递三天没到", "能开发票吗", "质量太差了", "什么时候发货", "我要退款", "怎么开发票"]


@contextlib.contextmanager
def write_lock_held(path: Path) -> Iterator[None]:
    """Another program (a backup, the sqlite3 shell) holding the database's write lock meanwhile:
    a commit that waits longer than the busy timeout gets "database is locked"."""
    other = sqlite3.connect(path)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.rollback()
        other.close()


class LockedOnceStore(JobStore):
    """A store whose second commit meets a held write lock (the first slice is committed)."""

    commits = 0
    locked = False

    def commit_chunk(self, job_id: str, first_row: int, outcomes: list[RowOutcome]) -> bool:
        self.commits += 1
        if self.commits != 2:
            return super().commit_chunk(job_id, first_row, outcomes)
        self.locked = True
        with write_lock_held(self.path):
            return super().commit_chunk(job_id, first_row, outcomes)


def test_a_job_whose_commit_met_a_locked_database_resumes_and_finishes_without_a_restart(
    tmp_path: Path, engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger=runner_module.__name__)
    monkeypatch.setattr(db, "BUSY_TIMEOUT_S", 0.2)  # how long a commit waits for the lock
    monkeypatch.setattr(runner_module, "RETRY_WAIT_S", 0.2)
    store = LockedOnceStore(tmp_path / "ws" / "seqgpt560m.db", tmp_path / "ws" / "jobs")
    source = tmp_path / "rows.txt"
    source.write_text("\n".join(ROWS) + "\n", encoding="utf-8")
    store.create("j1", "classify", ["投诉", "咨询"], {}, source.name, source.stat().st_size,
                 InputReader(source, source.name), 100)
    runner = JobRunner(store, engine, ModelGate(1, 8), batch_rows=2, retention_days=7)
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while (job := store.get("j1")).state in ("queued", "running"):
            assert time.monotonic() < deadline, f"the job is stranded: {job}"
            time.sleep(0.1)
    finally:
        runner.stop()
    assert store.locked, "the second commit met the lock"
    assert "job j1 resumed: task=classify rows=6 done=2" in caplog.text, "resumed from the first slice's commit"
    assert (job.state, job.rows_done, job.rows_failed) == ("done", len(ROWS), 0), job
    results = list(store.results("j1"))
    assert [row for row, _, _, _ in results] == list(range(1, len(ROWS) + 1)), "every row once, in order"
    assert all(result["label"] in ("投诉", "咨询") for _, _, result, _ in results)


class AlwaysLockedStore(JobStore):
    """A store whose every commit meets a held write lock."""

    def commit_chunk(self, job_id: str, first_row: int, outcomes: list[RowOutcome]) -> bool:
        with write_lock_held(self.path):
            return super().commit_chunk(job_id, first_row, outcomes)


def test_a_job_that_keeps_failing_is_failed_with_the_error_and_the_next_job_runs(
    tmp_path: Path, engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "BUSY_TIMEOUT_S", 0.05)
    monkeypatch.setattr(runner_module, "RETRY_WAIT_S", 0.05)
    store = AlwaysLockedStore(tmp_path / "ws" / "seqgpt560m.db", tmp_path / "ws" / "jobs")
    source = tmp_path / "rows.txt"
    source.write_text("\n".join(ROWS) + "\n", encoding="utf-8")
    for job_id in ("j1", "j2"):
        store.create(job_id, "classify", ["投诉", "咨询"], {}, source.name, source.stat().st_size,
                     InputReader(source, source.name), 100)
    runner = JobRunner(store, engine, ModelGate(1, 8), batch_rows=2, retention_days=7)
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while {store.get(job_id).state for job_id in ("j1", "j2")} != {"failed"}:
            assert time.monotonic() < deadline, [store.get(job_id) for job_id in ("j1", "j2")]
            time.sleep(0.1)
    finally:
        runner.stop()
    for job_id in ("j1", "j2"):
        job = store.get(job_id)
        assert job.rows_done == 0 and "database is locked" in job.error and "任务运行出错" in job.error
