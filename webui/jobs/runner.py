"""The job runner: one background thread takes queued jobs and feeds their rows to the engine a slice at a time.

Each slice's rows go to the engine at once, from a pool of threads, through the same
``classify`` / ``extract`` calls as interactive requests, so the engine batches them (in this
process, or across Ray Serve replicas). A slice's results and the job's progress are committed
in one transaction; after a crash the job resumes after its last committed row.

Interactive requests come first. Before each slice the runner looks at the waiting room
(webui/service/gate.py): while requests run or wait there it holds back; if they keep coming it
still moves, one row at a time, so a job is slowed, never stopped. A slice cannot be called back
once the engine has it, so while people have used the model in the last few seconds each slice
is sized to take about SEQGPT_JOBS_SLICE_MS (from the measured time per row), which bounds what
a request arriving mid-slice waits; when nobody has, slices are SEQGPT_JOBS_BATCH_ROWS rows,
which keeps the engine's batches full.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from model_loader.errors import InvalidInputError
from model_loader.interface import EngineAPI
from model_loader.tasks.options import ClassifyRequest, checked_names

from ..api.schemas import classification_json, extraction_json
from ..logging_setup import REQUEST_ID
from ..outcomes import INTERNAL, outcome_of, user_message
from ..service.gate import ModelGate
from .store import Job, JobStore, PendingRow, RowOutcome, is_storage_problem, storage_message

log = logging.getLogger(__name__)

# Outcomes that say "not now" about the engine, not "no" about the row: the slice is run again later.
RETRY_LATER = ("busy", "not_ready", "stopping", "unavailable")
RETRY_WAIT_S = 2.0
# Runs of one job that an error may cut short in a row, with no row committed between them, before
# the job is failed with it.
RUN_ATTEMPTS = 5
# How long a slice waits for interactive requests to finish before it goes anyway, smaller.
YIELD_MAX_S = 2.0
YIELD_POLL_S = 0.02
# Seconds without an interactive request after which slices go back to full size.
QUIET_S = 10.0
IDLE_WAIT_S = 2.0
PURGE_EVERY_S = 3600.0


@dataclass
class _Progress:
    """Rows this process has done of the running job, for its ETA."""

    job_id: str
    started: float
    rows: int = 0


class JobRunner:
    def __init__(self, store: JobStore, engine: EngineAPI, gate: ModelGate, batch_rows: int, retention_days: int,
                 on_rows: Callable[[str, str, int], None] | None = None, slice_ms: int = 500) -> None:
        self.store = store
        self.engine = engine
        self.gate = gate
        self.batch_rows = max(1, batch_rows)
        self.slice_s = slice_ms / 1000
        self._row_s: dict[str, float] = {}  # seconds a row takes, per task, smoothed
        self.retention_s = retention_days * 86400.0
        self._on_rows = on_rows or (lambda task, outcome, count: None)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=self.batch_rows, thread_name_prefix="seqgpt-job-row")
        self._thread = threading.Thread(target=self._loop, name="seqgpt-jobs", daemon=True)
        self._progress: _Progress | None = None
        self._purged_at = 0.0
        # Called with (job, rows, outcomes) after each committed slice: the request history (webui/history).
        self.on_commit: Callable[[Job, list[PendingRow], list[RowOutcome]], None] | None = None

    def start(self) -> None:
        for job_id in self.store.requeue_running():
            log.info("job %s was running when the app stopped; queued to resume after its last committed row", job_id)
        self._thread.start()

    def wake(self) -> None:
        """A job was queued: look now rather than at the next idle poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=1)  # a slice cut short is run again after the restart
        self._pool.shutdown(wait=False, cancel_futures=True)

    def eta_s(self, job: Job) -> float | None:
        progress = self._progress
        if job.state != "running" or progress is None or progress.job_id != job.id or progress.rows == 0:
            return None
        rate = progress.rows / max(1e-6, time.monotonic() - progress.started)
        return round((job.rows_total - job.rows_done) / rate, 1)

    # ---- the loop ------------------------------------------------------------------------

    def _loop(self) -> None:
        # A job whose run an error cut short: still 'running' in the store, so take_next would never
        # give it back; it is run again (from its last committed row) before any other, up to
        # RUN_ATTEMPTS times in a row, then failed with the error so that the queue moves on.
        interrupted: Job | None = None
        attempts = 0
        while not self._stop.is_set():
            job = None
            try:
                self._purge_expired()
                if not self.engine.status.ready:
                    self._stop.wait(1.0)
                    continue
                # The job cut short is read again: its progress is what it committed since.
                job = (self.store.get(interrupted.id) if interrupted else None) or self.store.take_next()
                interrupted = None
                self.store.keep_reserve()
                if job is None:
                    self._wake.wait(IDLE_WAIT_S)
                    self._wake.clear()
                    continue
                self._run(job)
                attempts = 0
            except Exception as exc:  # the runner must outlive anything a job or the disk throws at it
                if job is not None:
                    # Rows committed since the last error: the job is moving, the count starts again.
                    progressed = self._progress is not None and self._progress.rows > 0
                    attempts = 1 if progressed else attempts + 1
                    if attempts >= RUN_ATTEMPTS:
                        attempts = 0
                        self._fail(job, f"任务运行出错 · the job stopped on an error {RUN_ATTEMPTS} times in a row "
                                        f"without progress ({type(exc).__name__}: {exc}); the server log has the "
                                        "details: submit it again")
                        continue
                # An error before any job was taken (purging, the reserve) keeps the one cut short.
                interrupted = job or interrupted
                log.error("job runner: %s; trying again in %.0f s%s", exc, RETRY_WAIT_S,
                          f", resuming job {interrupted.id} after its last committed row" if interrupted else "",
                          exc_info=not is_storage_problem(exc))
                self._stop.wait(RETRY_WAIT_S)
            finally:
                self._progress = None

    def _purge_expired(self) -> None:
        if time.monotonic() - self._purged_at < PURGE_EVERY_S:
            return
        self._purged_at = time.monotonic()
        for job_id in self.store.purge_finished_before(time.time() - self.retention_s):
            log.info("job %s purged: finished more than %d days ago (SEQGPT_JOBS_RETENTION_DAYS)",
                     job_id, self.retention_s // 86400)

    def _run(self, job: Job) -> None:
        verb = "resumed" if job.rows_done else "started"
        log.info("job %s %s: task=%s rows=%d done=%d file=%s", job.id, verb, job.task, job.rows_total,
                 job.rows_done, job.input_name)
        self._progress = _Progress(job.id, time.monotonic())
        while not self._stop.is_set():
            current = self.store.get(job.id)
            if current is None or current.state != "running":
                log.info("job %s stopped running: %s", job.id, "purged" if current is None else current.state)
                return
            rows = self.store.pending(job.id, current.rows_done, self._slice_size(job.task))
            if not rows:
                if self.store.finish(job.id, "done"):
                    log.info("job %s finished: rows=%d failed=%d in %.1f s", job.id, current.rows_total,
                             current.rows_failed, time.time() - (current.started_at or current.created_at))
                return
            began = time.monotonic()
            outcomes = self._run_rows(job, rows)
            self._learn(job.task, time.monotonic() - began, len(rows))
            if outcomes is None:
                self._stop.wait(RETRY_WAIT_S)
                continue
            try:
                committed = self.store.commit_chunk(job.id, rows[0].row, outcomes)
            except Exception as exc:
                if not is_storage_problem(exc):
                    raise
                self._fail(job, storage_message("the job's results", exc))
                return
            if committed:
                self._progress.rows += len(outcomes)
                if self.on_commit is not None:
                    self.on_commit(job, rows, outcomes)
                failed = sum(1 for outcome in outcomes if outcome.error is not None)
                self._on_rows(job.task, "ok", len(outcomes) - failed)
                self._on_rows(job.task, "failed", failed)

    def _fail(self, job: Job, reason: str) -> None:
        """Record the failure; when even that cannot be written, say so and try again until it can."""
        while not self._stop.is_set():
            try:
                recorded = self.store.finish(job.id, "failed", reason)
            except Exception as exc:
                if self.store.release_reserve():
                    log.warning("job %s: the disk is full; the space set aside is freed to record the failure",
                                job.id)
                    continue
                log.error("job %s failed (%s) and the failure cannot be recorded either (%s); retrying in %.0f s",
                          job.id, reason, exc, RETRY_WAIT_S)
                self._stop.wait(RETRY_WAIT_S)
                continue
            if recorded:
                log.error("job %s failed: %s", job.id, reason)
            else:  # cancelled or purged meanwhile: its state stays what the user made it
                log.info("job %s was no longer running when it failed (%s)", job.id, reason)
            return

    def _slice_size(self, task: str) -> int:
        """Rows for the next slice: one after waiting up to YIELD_MAX_S for interactive requests to end;
        about SEQGPT_JOBS_SLICE_MS of work while people are around; else SEQGPT_JOBS_BATCH_ROWS."""
        deadline = time.monotonic() + YIELD_MAX_S
        while self.gate.running + self.gate.waiting > 0:
            if time.monotonic() >= deadline or self._stop.is_set():
                return 1
            time.sleep(YIELD_POLL_S)
        row_s = self._row_s.get(task)
        if time.monotonic() - self.gate.last_admitted > QUIET_S or row_s is None:
            return self.batch_rows
        return max(1, min(self.batch_rows, int(self.slice_s / max(row_s, 1e-6))))

    def _learn(self, task: str, seconds: float, rows: int) -> None:
        row_s = seconds / max(1, rows)
        known = self._row_s.get(task)
        self._row_s[task] = row_s if known is None else 0.7 * known + 0.3 * row_s

    # ---- one slice -----------------------------------------------------------------------

    def _run_rows(self, job: Job, rows: list[PendingRow]) -> list[RowOutcome] | None:
        """Every row's result or error, in order; None when the engine cannot answer now (run them again later)."""
        futures = [self._pool.submit(self._run_row, job, row) for row in rows]
        outcomes: list[RowOutcome] = []
        retry = False
        for future in futures:
            outcome = future.result()
            if outcome is None:
                retry = True
            else:
                outcomes.append(outcome)
        return None if retry else outcomes

    def _run_row(self, job: Job, row: PendingRow) -> RowOutcome | None:
        REQUEST_ID.set(f"job-{job.id}-{row.row}")
        limits = self.engine.settings
        try:
            if row.problem:
                raise InvalidInputError(row.problem)
            asked = checked_names(limits, job.task, job.names, job.options, text=row.text)
            if isinstance(asked, ClassifyRequest):
                return RowOutcome(row.row, _classify_json(self.engine.classify(asked.text, asked.labels)), None)
            result = self.engine.extract(asked.text, asked.fields, asked.threshold, asked.exclusive)
            return RowOutcome(row.row, {"fields": extraction_json(result)["fields"]}, None)
        except Exception as exc:  # the row's own failure is its result; the engine being away is not
            outcome = outcome_of(exc)
            if outcome.name in RETRY_LATER:
                return None
            if outcome is INTERNAL:
                log.error("job %s row %d failed unexpectedly", job.id, row.row, exc_info=exc)
            return RowOutcome(row.row, None, user_message(exc, REQUEST_ID.get()))


def _classify_json(result: Any) -> dict[str, Any]:
    answer = classification_json(result)
    return {"label": answer["label"], "scores": answer["scores"]}
