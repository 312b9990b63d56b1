"""One thread that runs the embedding model, interactive work first: a search never waits behind a whole ingestion."""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

INTERACTIVE = 0  # searches, summaries' similarity
BULK = 1  # ingestion batches


class PriorityWorker:
    """Runs submitted calls one at a time on its own thread, lowest priority number first.

    An ingestion submits its passages as many small batches at BULK priority; a search
    submitted meanwhile runs as soon as the batch in progress ends.
    """

    def __init__(self, name: str = "seqgpt-embed") -> None:
        self._queue: queue.PriorityQueue[tuple[int, int, Callable[[], Any] | None, Future | None]] = (
            queue.PriorityQueue()
        )
        self._order = itertools.count()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], Any], priority: int = INTERACTIVE) -> Future:
        future: Future = Future()
        self._queue.put((priority, next(self._order), fn, future))
        return future

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def stop(self) -> None:
        self._queue.put((-1, next(self._order), None, None))
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            _priority, _order, fn, future = self._queue.get()
            if fn is None or future is None:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the caller, who decides what it means
                future.set_exception(exc)
