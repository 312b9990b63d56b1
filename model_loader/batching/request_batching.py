"""Request batching: a worker thread that owns the model and runs waiting requests together.

Callers on any thread submit a job (a task's plan) and wait on its future. The worker takes
everything that is waiting (up to a batch size), groups it by the plan's type, and hands
each group to one ``run`` call, so concurrent requests share forward passes and
the model is only ever touched from this one thread. (How many sequences of a batch hold
a cache at once is cache_groups' business.)

Callers announce a job while they prepare it (``expecting``): tokenising a request
takes milliseconds under the GIL, so eight clients that send at once reach the
queue over tens of milliseconds, and a fixed gather window would split them into
several batches that each read all the weights again.

After every batch, once its callers have their results, ``after_batch`` runs (the engine
hands freed memory back to the system there). Also when more requests wait: under steady
load the queue is seldom empty, and each batch's freed memory would then stay with the
process while the next batch's other shapes fit only partly into it. It takes milliseconds
against a batch's seconds.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

Runner = Callable[[list[object]], list[object]]

# The longest a batch waits for jobs still being prepared: a bound, should a caller stall.
ARRIVAL_WAIT_LIMIT_S = 0.25
_ARRIVAL_POLL_S = 0.002


@dataclass
class _Job:
    payload: object
    future: Future = field(default_factory=Future)


class BatchWorker:
    def __init__(
        self,
        run: Runner,
        max_batch: int,
        gather_seconds: float = 0.0,
        name: str = "seqgpt-model",
        after_batch: Callable[[], None] | None = None,
    ) -> None:
        self._run_payloads = run
        self._after_batch = after_batch
        self._max_batch = max(1, max_batch)
        self._gather_seconds = gather_seconds
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._arrivals_lock = threading.Lock()
        self._arriving = 0
        self._running_since: float | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def running_for(self) -> float | None:
        """Seconds the ``run`` call now running (the plans of one type in a batch) has taken so far;
        None between calls."""
        since = self._running_since
        return None if since is None else time.monotonic() - since

    @contextmanager
    def expecting(self) -> Iterator[None]:
        """Held by a caller while it prepares a job: a batch being gathered waits for it."""
        with self._arrivals_lock:
            self._arriving += 1
        try:
            yield
        finally:
            with self._arrivals_lock:
                self._arriving -= 1

    def submit(self, payload: object) -> Future:
        """Queue ``payload``; ``run`` gets it in a list with the waiting payloads of its type."""
        job = _Job(payload)
        self._queue.put(job)
        return job.future

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _take_batch(self) -> list[_Job] | None:
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        # Clients that send at the same moment arrive a few milliseconds apart. The batch
        # waits while jobs are announced as on their way, and until none has arrived or
        # been announced for the gather window, so one forward pass serves them all.
        started = time.monotonic()
        last_seen, limit = started, started + ARRIVAL_WAIT_LIMIT_S
        while len(batch) < self._max_batch:
            now = time.monotonic()
            if self._arriving > 0:
                last_seen = now
            until = min(last_seen + self._gather_seconds, limit)
            if now >= until:
                break
            try:
                job = self._queue.get(timeout=min(until - now, _ARRIVAL_POLL_S))
            except queue.Empty:
                continue
            last_seen = time.monotonic()
            if job is None:
                self._queue.put(None)  # stop after this batch
                break
            batch.append(job)
        return batch

    def _run(self) -> None:
        while (batch := self._take_batch()) is not None:
            kinds: dict[type, list[_Job]] = {}
            for job in batch:
                kinds.setdefault(type(job.payload), []).append(job)
            for kind, jobs in kinds.items():
                self._run_group(kind, jobs)
            del batch, kinds, jobs  # the payloads, and with them the requests' plans, go now
            if self._after_batch is not None:
                try:
                    self._after_batch()
                except Exception:  # housekeeping must never stop the worker
                    log.exception("after_batch failed")

    def _run_group(self, kind: type, jobs: list[_Job]) -> None:
        live = [job for job in jobs if job.future.set_running_or_notify_cancel()]
        if not live:
            return
        self._running_since = time.monotonic()
        try:
            results = self._run_payloads([job.payload for job in live])
        except BaseException as exc:  # the callers get the error; the worker keeps serving
            log.debug("batch of %d %s jobs failed", len(live), kind.__name__, exc_info=True)
            for job in live:
                job.future.set_exception(exc)
            return
        finally:
            self._running_since = None
        for job, result in zip(live, results, strict=True):
            job.future.set_result(result)
