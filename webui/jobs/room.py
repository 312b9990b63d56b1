"""The jobs feature as one object: its store, its runner and the one way a file becomes a job (API and UI alike)."""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from model_loader.errors import InvalidInputError
from model_loader.interface import EngineAPI
from model_loader.tasks.options import ClassifyRequest, checked_names
from model_loader.text.files import upload_name

from ..outcomes import BodyTooLargeError, too_large
from ..service.gate import ModelGate
from ..settings import ServerSettings
from ..store.db import DatabaseError, default_path
from ..store.pages import page_mark, read_page_mark
from .errors import JobLimitError, JobNotFoundError, StorageError
from .files import InputReader, check_format
from .runner import JobRunner
from .store import Job, JobStore, storage_errors, too_many_waiting

log = logging.getLogger(__name__)

TASKS = ("classify", "extract")
COPY_CHUNK = 1 << 20
UPLOAD_PREFIX = ".upload-"
# GET /api/jobs: jobs a page, by default and at most.
DEFAULT_PAGE = 200
MAX_PAGE = 1000


@dataclass(frozen=True)
class JobRequest:
    """What a job runs, checked once: the task, its labels or fields, and the extraction options."""

    task: str
    names: list[str]
    options: dict[str, Any]
    text_column: str | None = None


class JobsRoom:
    """Built once per app. Where the workspace cannot hold a database, the room stays up and says why."""

    def __init__(self, engine: EngineAPI, gate: ModelGate, settings: ServerSettings,
                 on_rows: Any = None) -> None:
        self.engine = engine
        self.settings = settings
        self.files_dir = settings.workspace / "jobs"
        self.store: JobStore | None = None
        self.runner: JobRunner | None = None
        self.unavailable: str | None = None
        db_path = settings.jobs_db or default_path(settings.workspace)
        try:
            self.store = JobStore(db_path, self.files_dir)
            self.files_dir.mkdir(parents=True, exist_ok=True)
            for stale in self.files_dir.glob(f"{UPLOAD_PREFIX}*"):  # uploads a crash cut short: no job has them
                stale.unlink(missing_ok=True)
        except (DatabaseError, OSError) as exc:
            self.unavailable = f"任务存储不可用 · durable jobs are off: {exc}"
            log.error("%s", self.unavailable)
            return
        self.runner = JobRunner(self.store, engine, gate, settings.jobs_batch_rows, settings.jobs_retention_days,
                                on_rows, settings.jobs_slice_ms)

    def start(self) -> None:
        if self.runner is not None:
            try:
                self.runner.start()
            except Exception as exc:  # a read-only workspace found at start: jobs wait, the app serves
                log.error("job runner not started: %s", exc)

    def stop(self) -> None:
        if self.runner is not None:
            self.runner.stop()

    def need_store(self) -> JobStore:
        if self.store is None:
            raise StorageError(self.unavailable or "durable jobs are off")
        return self.store

    def job(self, job_id: str) -> Job:
        job = self.need_store().get(job_id)
        if job is None:
            raise JobNotFoundError(
                f"没有这个任务 · there is no job {job_id!r}: GET /api/jobs lists the jobs (purged jobs are gone)"
            )
        return job

    def page(self, limit: Any = None, before: Any = None) -> tuple[list[Job], str | None]:
        """Up to ``limit`` jobs (default 200, at most 1000), newest first, listed after the page mark
        ``before``; and the mark to pass as ``before`` for the next page (None: no more). The mark
        carries the last job's place (``<created_at>_<job id>``), so a job purged meanwhile does not
        break the paging; a bare job id is taken too."""
        text = str(limit if limit not in (None, "") else DEFAULT_PAGE).strip()
        if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_PAGE:
            raise InvalidInputError(f"limit 超出范围 · limit is {limit!r}: ask for 1 to {MAX_PAGE} jobs")
        store, count = self.need_store(), int(text)
        jobs = store.list_jobs(count + 1, self._place(str(before)) if before not in (None, "") else None)
        if len(jobs) <= count:
            return jobs, None
        last = jobs[count - 1]
        return jobs[:count], page_mark(last.created_at, last.id)

    def _place(self, before: str) -> tuple[float, str]:
        if "_" not in before:
            job = self.need_store().get(before)
            if job is None:  # a mistyped mark, not a job the client asked for: not a 404
                raise InvalidInputError(
                    f"before 有误 · before is {before!r}, neither a page mark nor the id of a stored job (a purged "
                    "job's id marks no place): pass the previous page's next_before"
                )
            return job.created_at, job.id
        place = read_page_mark(before)
        if place is None:
            raise InvalidInputError(
                f"before 有误 · before is {before!r}, not a page mark: pass the previous page's next_before"
            )
        return place

    def check_request(self, task: str, labels: str, threshold: Any = None, exclusive: Any = None,
                      text_column: str | None = None) -> JobRequest:
        """The task, names and options of a job, refused with the same words as the single-request routes."""
        if task not in TASKS:
            raise InvalidInputError(
                f"任务类型不对 · task is {task!r}: send task=classify or task=extract"
            )
        options: dict[str, Any] = {}
        if task == "extract":
            options = {"threshold": _number(threshold, 0.0), "exclusive": _flag(exclusive)}
        asked = checked_names(self.engine.settings, task, labels or "", options)
        names = list(asked.labels if isinstance(asked, ClassifyRequest) else asked.fields)
        return JobRequest(task, names, options, (text_column or "").strip() or None)

    def check_room(self) -> None:
        waiting = self.need_store().count_waiting()
        if waiting >= self.settings.jobs_max_queued:
            raise JobLimitError(too_many_waiting(waiting, self.settings.jobs_max_queued))

    def submit(self, request: JobRequest, source: BinaryIO, filename: str) -> Job:
        """Copy the upload into the workspace, then read all its rows into the store in one transaction."""
        store = self.need_store()
        check_format(filename)
        self.check_room()
        job_id = secrets.token_hex(8)
        suffix = Path(filename).suffix.lower()
        part = self.files_dir / f"{UPLOAD_PREFIX}{job_id}{suffix}"
        try:
            size = self._copy(source, part)
            reader = InputReader(part, filename, request.text_column)
            # Saved under the job's id; the user's name is metadata only, cleaned of path parts and control characters.
            name = upload_name(filename, f"upload{suffix}")
            job = store.create(job_id, request.task, request.names, request.options, name, size,
                               reader, self.settings.jobs_max_rows, self.settings.jobs_max_queued)
            with storage_errors("the uploaded file"):
                (self.files_dir / job_id).mkdir(exist_ok=True)
                os.replace(part, self.files_dir / job_id / f"input{suffix}")
        finally:
            part.unlink(missing_ok=True)
        log.info("job %s queued: task=%s rows=%d file=%s bytes=%d", job.id, job.task, job.rows_total,
                 job.input_name, size)
        if self.runner is not None:
            self.runner.wake()
        return job

    def _copy(self, source: BinaryIO, target: Path) -> int:
        limit = self.settings.jobs_max_bytes
        size = 0
        with storage_errors("the uploaded file"), target.open("wb") as out:
            os.chmod(target, 0o600)
            while chunk := source.read(COPY_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise BodyTooLargeError(file_too_large(size, limit, at_least=True))
                out.write(chunk)
        return size

    def cancel(self, job_id: str) -> Job:
        job = self.job(job_id)
        if self.need_store().cancel(job_id):
            log.info("job %s cancelled at row %d of %d", job_id, job.rows_done, job.rows_total)
        return self.job(job_id)

    def purge(self, job_id: str) -> None:
        self.job(job_id)
        self.need_store().purge(job_id)
        log.info("job %s purged on request", job_id)

    def to_json(self, job: Job) -> dict[str, Any]:
        eta = self.runner.eta_s(job) if self.runner is not None else None
        return {
            "job_id": job.id, "state": job.state, "task": job.task,
            "labels" if job.task == "classify" else "fields": job.names,
            "input_name": job.input_name, "input_bytes": job.input_bytes,
            "rows_total": job.rows_total, "rows_done": job.rows_done, "rows_failed": job.rows_failed,
            "created_at": iso(job.created_at), "started_at": iso(job.started_at), "finished_at": iso(job.finished_at),
            "eta_s": eta, "error": job.error,
        }


def iso(stamp: float | None) -> str | None:
    return None if stamp is None else datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds")


def file_too_large(size: int, limit: int, at_least: bool = False) -> str:
    return too_large("文件", "the file", size, limit,
                     "split it into smaller files, or raise SEQGPT_JOBS_MAX_BYTES (the limit for one job)", at_least)


# A form sends every value as text. What reads as a number or a flag is turned into one; anything else is
# passed on as sent, for the engine's request type to refuse in the words every other route uses.


def _number(value: Any, default: float) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _flag(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    text = str(value or "").strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    return value
