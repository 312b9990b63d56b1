"""Hands each answered request to a bounded queue that one writer thread drains into the history store.

A request pays for one ``put_nowait`` and nothing else: the JSON shaping, the truncation and the
SQLite write all happen on the writer thread. A full queue drops the record and counts it; a
full disk or read-only workspace logs one warning per outage and drops what it could not write.
The same thread purges by age and size every PURGE_EVERY_S.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from model_loader.results import Classification, Extraction, Generation

from ..api.schemas import classification_json, extraction_json, generation_json
from ..jobs.store import is_storage_problem
from .store import HistoryStore, Record

log = logging.getLogger(__name__)

QUEUE_SIZE = 10_000
WRITE_BATCH = 256
PURGE_EVERY_S = 600.0
# Evaluation rows come from a labelled file the user already has; storing them would bury real requests.
SKIPPED_SOURCES = frozenset({"evaluate"})

# (time, task, source, request id, latency, engine method, its arguments, result, model, weights)
_Item = tuple[float, str, str, str, float | None, Callable[..., Any] | None, tuple[Any, ...], Any, str, str]


class HistoryRecorder:
    def __init__(self, store: HistoryStore, retention_days: int, max_mb: int, max_text_chars: int,
                 queue_size: int = QUEUE_SIZE) -> None:
        self.store = store
        self.max_age_s = retention_days * 86400.0
        self.max_bytes = max_mb * 1024 * 1024
        self.max_text_chars = max_text_chars
        self.dropped = 0  # records lost to a full queue or a failed write, for /metrics
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._loop, name="seqgpt-history", daemon=True)
        self._failing = False
        self._purged_at = 0.0
        self._signatures: dict[Any, inspect.Signature | None] = {}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, then end the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=10)

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until everything queued so far is written (or dropped): for the UI's look-up and for tests."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    # ---- the request's side: never blocks, never raises ------------------------------

    def record(self, task: str, source: str, request_id: str, latency_ms: float | None,
               fn: Callable[..., Any] | None, args: tuple[Any, ...], result: Any, model: str, weights: str) -> None:
        if source in SKIPPED_SOURCES:
            return
        try:
            self._queue.put_nowait((time.time(), task, source, request_id, latency_ms, fn, args, result, model,
                                    weights))
        except queue.Full:
            self.dropped += 1

    def record_job_rows(self, job: Any, outcomes: list[Any], texts: dict[int, str], model: str,
                        weights: str) -> None:
        """A job's committed slice: each row that has a result, under its row's request id."""
        names_key = "labels" if job.task == "classify" else "fields"
        for outcome in outcomes:
            if outcome.result is None:
                continue
            args = {"text": texts.get(outcome.row, ""), names_key: job.names, **job.options, "job_id": job.id,
                    "row": outcome.row}
            self.record(job.task, "job", f"job-{job.id}-{outcome.row}", None, None, (args,), outcome.result,
                        model, weights)

    # ---- the writer thread -----------------------------------------------------------

    def _loop(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=5.0)
            except queue.Empty:
                self._maybe_purge()
                continue
            items = [first]
            while len(items) < WRITE_BATCH:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = None in items
            self._write([item for item in items if item is not None])
            for _ in items:
                self._queue.task_done()
            self._maybe_purge()
            if stop:
                return

    def _write(self, items: list[_Item]) -> None:
        if not items:
            return
        try:
            records = [self._to_record(item) for item in items]
            self.store.add(records)
        except Exception as exc:  # a storage problem must cost the requests nothing
            self.dropped += len(items)
            if not self._failing:
                self._failing = True
                log.warning("request history not written (%d requests dropped): %s; free disk space or make the "
                            "workspace writable; requests are still answered", len(items), exc,
                            exc_info=not is_storage_problem(exc))
            return
        if self._failing:
            self._failing = False
            log.warning("request history is written again")

    def _maybe_purge(self) -> None:
        if time.monotonic() - self._purged_at < PURGE_EVERY_S:
            return
        self._purged_at = time.monotonic()
        try:
            by_age, by_size = self.store.purge(self.max_age_s, self.max_bytes)
        except Exception as exc:
            log.warning("request history purge failed: %s", exc, exc_info=not is_storage_problem(exc))
            return
        if by_age or by_size:
            log.info("request history purged %d requests older than %d days and %d over %d MB "
                     "(SEQGPT_HISTORY_RETENTION_DAYS, SEQGPT_HISTORY_MAX_MB)", by_age, self.max_age_s // 86400,
                     by_size, self.max_bytes // (1024 * 1024))

    def _to_record(self, item: _Item) -> Record:
        stamp, task, source, request_id, latency_ms, fn, args, result, model, weights = item
        inputs = args[0] if fn is None else self._named(fn, args)
        inputs, truncated = self._cut(inputs)
        text = next((value for key in ("text", "prompt", "query") if isinstance(value := inputs.get(key), str)), "")
        return Record(request_id, stamp, task, source, text, inputs, answer_json(result), latency_ms, model, weights,
                      truncated)

    def _named(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> dict[str, Any]:
        """The call's arguments by parameter name (text, labels, fields, threshold…), whatever the task."""
        key = getattr(fn, "__func__", fn)
        if key not in self._signatures:
            try:
                self._signatures[key] = inspect.signature(fn)
            except (TypeError, ValueError):
                self._signatures[key] = None
        signature = self._signatures[key]
        if signature is not None:
            try:
                return {name: _plain(value) for name, value in signature.bind(*args).arguments.items()}
            except TypeError:
                pass
        return {f"arg{i}": _plain(value) for i, value in enumerate(args)}

    def _cut(self, inputs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Texts over the limit are stored cut, and the input says each one's full length."""
        cut = {key: len(value) for key, value in inputs.items()
               if isinstance(value, str) and len(value) > self.max_text_chars}
        if not cut:
            return inputs, False
        kept = {key: value[: self.max_text_chars] if key in cut else value for key, value in inputs.items()}
        marks = {key: {"chars": chars, "kept": self.max_text_chars} for key, chars in cut.items()}
        return {**kept, "truncated": marks}, True


def answer_json(result: Any) -> Any:
    """The answer in the API's own JSON shape."""
    if isinstance(result, Classification):
        return classification_json(result)
    if isinstance(result, Extraction):
        return extraction_json(result)
    if isinstance(result, Generation):
        return generation_json(result)
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return dataclasses.asdict(result)
    return _plain(result)


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return str(value)
