"""The history feature as one object: its store and recorder, and the checks shared by its routes and its tab."""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, date, datetime
from typing import Any

from model_loader.errors import InvalidInputError
from model_loader.interface import EngineAPI

from ..jobs.errors import StorageError
from ..jobs.store import is_storage_problem
from ..settings import ServerSettings
from ..store.db import DatabaseError, default_path
from ..store.pages import page_mark, read_page_mark
from .errors import HistoryOffError, RequestNotFoundError
from .feedback import EXPORT_TASKS, check_feedback, export_lines
from .recorder import HistoryRecorder
from .store import FEEDBACK_FILTERS, HistoryStore, Stored

log = logging.getLogger(__name__)

MAX_LIMIT = 500
# The tasks whose requests the service records (webui/service/request.py runs them on the model).
RECORDED_TASKS = ("classify", "extract", "generate", "summarize", "kb_ask")
OFF = ("请求历史未开启 · request history is off: set SEQGPT_HISTORY=on in seqgpt560m.env and restart "
       "(supervisorctl restart seqgpt560m); only requests answered after that are kept")


class HistoryRoom:
    """Built once per app. Off (the default) it stores nothing and its routes say how to turn it on; what
    was stored while it was on still ages out and can still be erased."""

    def __init__(self, engine: EngineAPI, settings: ServerSettings) -> None:
        self.engine = engine
        self.settings = settings
        self.store: HistoryStore | None = None
        self.recorder: HistoryRecorder | None = None
        self.unavailable: str | None = None if settings.history else OFF
        path = settings.jobs_db or default_path(settings.workspace)
        if not settings.history and not path.is_file():
            return
        try:
            self.store = HistoryStore(path)
            kept = 0 if settings.history else self.store.counts()["requests"]
            if not settings.history and not kept:
                self.store = None  # off, and nothing kept from when it was on
                return
        except (DatabaseError, sqlite3.Error) as exc:
            self.store = None
            if settings.history:
                self.unavailable = f"请求历史不可用 · request history is off: {exc}"
                log.error("%s", self.unavailable)
            return
        if not settings.history:
            log.info("request history is off; the %d requests stored while it was on age out after %d days",
                     kept, settings.history_retention_days)
        # Off, the recorder is handed nothing (see app.py) but still purges by age and size.
        self.recorder = HistoryRecorder(self.store, settings.history_retention_days, settings.history_max_mb,
                                        settings.history_max_text_chars)

    @property
    def on(self) -> bool:
        return self.settings.history and self.store is not None

    def start(self) -> None:
        if self.recorder is not None:
            self.recorder.start()

    def stop(self) -> None:
        if self.recorder is not None:
            self.recorder.stop()

    # ---- recording (called on the request's path: cheap, never raises) ----------------

    def record(self, task: str, source: str, request_id: str, latency_ms: float, fn: Any, args: tuple[Any, ...],
               result: Any) -> None:
        if self.recorder is None:
            return
        try:
            model, weights = self._model()
            self.recorder.record(task, source, request_id, latency_ms, fn, args, result, model, weights)
        except Exception:  # the history must never fail the request it records
            log.warning("request %s not recorded in the history", request_id, exc_info=True)

    def record_job_rows(self, job: Any, rows: list[Any], outcomes: list[Any]) -> None:
        if self.recorder is None:
            return
        try:
            model, weights = self._model()
            self.recorder.record_job_rows(job, outcomes, {row.row: row.text for row in rows}, model, weights)
        except Exception:  # nor the job whose rows it records
            log.warning("rows of job %s not recorded in the history", job.id, exc_info=True)

    def _model(self) -> tuple[str, str]:
        status = self.engine.status
        decoding = getattr(self.engine.settings, "decoding", "")
        return status.model_dir, f"{status.dtype} {decoding}{' demo' if status.is_demo else ''}".strip()

    # ---- reading and feedback ------------------------------------------------------------

    def need_store(self) -> HistoryStore:
        if self.store is None or not self.on:
            raise HistoryOffError(self.unavailable or OFF)
        return self.store

    def get(self, request_id: str) -> Stored:
        store = self.need_store()
        stored = store.get(request_id.strip())
        if stored is None and self.recorder is not None:
            self.recorder.flush(timeout_s=2.0)  # an answer just given may still be on its way to the store
            stored = store.get(request_id.strip())
        if stored is None:
            raise RequestNotFoundError(
                f"没有这个请求 · no stored request has id {request_id!r}: it was answered before history was on, "
                "purged after SEQGPT_HISTORY_RETENTION_DAYS, or erased, or it is of a kind not stored (a "
                "knowledge-base search, an evaluation); GET /api/requests lists what is kept"
            )
        return stored

    def search(self, task: str | None, q: str | None, feedback: str | None, limit: Any,
               before: Any) -> list[Stored]:
        return self.page(task, q, feedback, limit, before)[0]

    def page(self, task: str | None, q: str | None, feedback: str | None, limit: Any,
             before: Any) -> tuple[list[Stored], str | None]:
        """Up to ``limit`` requests found, newest first, and the ``before`` of the next page: a page
        mark (the last request's time and id), or None when none is left, so that a client paging
        through knows it has seen them all."""
        store = self.need_store()
        if task and task not in RECORDED_TASKS and task not in store.tasks():
            # A misspelt task would otherwise find nothing and look like an empty history.
            raise InvalidInputError(
                f"task 取值不对 · task is {task!r}: use one of {', '.join(RECORDED_TASKS)}, or leave it out"
            )
        if feedback not in (None, "", *FEEDBACK_FILTERS):
            raise InvalidInputError(
                f"feedback 取值不对 · feedback is {feedback!r}: use one of {', '.join(FEEDBACK_FILTERS)}, "
                "or leave it out"
            )
        count = _whole("limit", limit, 50)
        if not 1 <= count <= MAX_LIMIT:
            raise InvalidInputError(f"limit 超出范围 · limit is {count}: ask for 1 to {MAX_LIMIT} requests")
        cutoff, after_id = _before(before) if before not in (None, "") else (None, None)
        # One more than asked for: whether this page is the last.
        found = store.search(task or None, q or None, feedback or None, count + 1, cutoff, after_id)
        if len(found) <= count:
            return found, None
        last = found[count - 1].record
        return found[:count], page_mark(last.time, last.id)

    def set_feedback(self, request_id: str, body: Any, user: str | None) -> Stored:
        stored = self.get(request_id)
        verdict, expected = check_feedback(body, stored.record, self.engine.settings.max_label_chars)
        try:
            if not self.need_store().set_feedback(stored.record.id, verdict, expected, user):
                raise RequestNotFoundError(
                    f"没有这个请求 · request {request_id!r} was erased while the feedback came in"
                )
        except Exception as exc:
            if is_storage_problem(exc):
                raise StorageError(
                    f"工作区无法写入 · the feedback could not be stored ({exc}): free disk space in the workspace or "
                    "make it writable, then send it again"
                ) from exc
            raise
        log.info("feedback on request %s: %s%s", stored.record.id, verdict, f" by {user}" if user else "")
        return self.get(stored.record.id)

    def export(self, task: str) -> Any:
        store = self.need_store()
        if task not in EXPORT_TASKS:
            raise InvalidInputError(
                f"任务类型不对 · task is {task!r}: export task=classify or task=extract (the harness's two formats)"
            )
        return export_lines(store.with_feedback(task))

    def erase_before(self, before: Any) -> int:
        store = self.store  # off, what was stored while it was on can still be erased
        if store is None:
            raise HistoryOffError(self.unavailable or OFF)
        if before in (None, ""):
            raise InvalidInputError(
                "缺少 before · say up to when to erase: DELETE /api/requests?before=2026-01-31 (a date or an ISO time, "
                "UTC; everything stored before it goes)"
            )
        cutoff = parse_time("before", before)
        count = store.delete_before(cutoff)
        log.info("request history: %d requests stored before %s erased on request", count, iso(cutoff))
        if not store.checkpoint():
            raise StorageError(wal_kept(count))
        return count


def wal_kept(count: int) -> str:
    """Why an erase is not complete: the rows are gone from the database, their copies not yet from its log."""
    return (f"删除未完成 · {count} requests were erased from the database, but another program reading it "
            "(an sqlite3 shell, a backup) kept SQLite from emptying its write-ahead log (seqgpt560m.db-wal), which "
            "may still hold copies of their texts: close that program and erase again (the same request, or "
            "scripts/erase_history.py)")


def parse_time(name: str, value: Any) -> float:
    """Epoch seconds from a number, a date (2026-01-31, midnight UTC) or an ISO time (UTC unless it says)."""
    text = str(value).strip()
    problem = InvalidInputError(
        f"{name} 不是时间 · `{name}` is {text!r}: give a date (2026-01-31), an ISO time (2026-01-31T12:00:00Z) "
        "or epoch seconds (years 1 to 9999)"
    )
    try:
        stamp = float(text)
    except ValueError:
        try:
            if len(text) == 10:
                return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC).timestamp()
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
        except ValueError:
            raise problem from None
    # Epoch seconds must name a time (not nan or inf), one that iso() can write in the log line.
    try:
        datetime.fromtimestamp(stamp, UTC)
    except (ValueError, OverflowError, OSError):
        raise problem from None
    return stamp


def _whole(name: str, value: Any, default: int) -> int:
    if value in (None, ""):
        return default
    try:
        return int(str(value))
    except ValueError:
        raise InvalidInputError(f"{name} 不是整数 · `{name}` is {value!r}: give a whole number") from None


def _before(before: Any) -> tuple[float, str | None]:
    """``before`` as a time and, for a page mark, the request a page ended on."""
    place = read_page_mark(str(before))
    return place if place is not None else (parse_time("before", before), None)


def iso(stamp: float | None) -> str | None:
    return None if stamp is None else datetime.fromtimestamp(stamp, UTC).isoformat(timespec="milliseconds")


def stored_json(stored: Stored) -> dict[str, Any]:
    """A stored request in the API's shape."""
    record, feedback = stored.record, stored.feedback
    return {
        "request_id": record.id, "time": iso(record.time), "epoch": record.time, "task": record.task,
        "source": record.source, "input": record.input, "answer": record.answer, "latency_ms": record.latency_ms,
        "model": record.model, "weights": record.weights, "truncated": record.truncated,
        "feedback": None if feedback is None else {
            "verdict": feedback.verdict, "expected": feedback.expected, "user": feedback.user,
            "time": iso(feedback.time),
        },
    }
