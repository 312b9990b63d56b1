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

What runs next is the scheduler's choice (scheduling.pick_batch): the least estimated work
first, the oldest first once it has waited too long, one call at most a few seconds of work.
Between two decode steps of a call, queued jobs short enough (scheduling.INTERLEAVE_WORK_S)
run inside it, so a short request does not wait for a long answer to be written in full.
A job whose request was abandoned (its ``abandoned`` event set, or its future cancelled) is
dropped before it runs.
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
from typing import cast

from .scheduling import (
    BETWEEN_STEPS,
    INTERLEAVE_EVERY_S,
    INTERLEAVE_WORK_S,
    WorkRate,
    call_work,
    calls_seconds,
    estimate,
    pick_batch,
    wait_ahead,
)

log = logging.getLogger(__name__)

Runner = Callable[[list[object]], list[object]]

# The longest a batch waits for jobs still being prepared: a bound, should a caller stall.
ARRIVAL_WAIT_LIMIT_S = 0.25
_ARRIVAL_POLL_S = 0.002


@dataclass
class _Job:
    payload: object
    work: float = 1.0  # estimated, in the scheduler's units
    shared: float = 0.0  # the part of work shared with the jobs of the same call (decode steps)
    abandoned: threading.Event | None = None  # set when nobody waits for the answer any more
    queued_at: float = field(default_factory=time.monotonic)
    future: Future = field(default_factory=Future)

    def dropped(self) -> bool:
        return self.future.cancelled() or (self.abandoned is not None and self.abandoned.is_set())


class BatchWorker:
    def __init__(
        self,
        run: Runner,
        max_batch: int,
        gather_seconds: float = 0.0,
        name: str = "seqgpt-model",
        after_batch: Callable[[], None] | None = None,
        rate: WorkRate | None = None,
    ) -> None:
        self._run_payloads = run
        self._after_batch = after_batch
        self._max_batch = max(1, max_batch)
        self._gather_seconds = gather_seconds
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._arrivals_lock = threading.Lock()
        self._arriving = 0
        self._running_since: float | None = None
        self.rate = rate or WorkRate(0.001)
        # Jobs queued and not yet running, in submission order; read by other threads for estimates.
        self._waiting: list[_Job] = []
        self._waiting_lock = threading.Lock()
        self._running_estimate = 0.0
        self._interleaved_s = 0.0  # seconds of short jobs run inside the call now running
        self._next_interleave = 0.0
        self._stopping = False
        self.dropped = 0  # jobs never run because their requests were abandoned
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def waiting(self) -> int:
        with self._waiting_lock:
            return len(self._waiting)

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

    def submit(
        self, payload: object, work: float = 1.0, abandoned: threading.Event | None = None, shared: float = 0.0
    ) -> Future:
        """Queue ``payload`` (``work``: its estimate, ``shared``: the part of it that other jobs in the same
        call share); ``run`` gets it in a list with payloads of its type. Once ``abandoned`` is set, the
        job is dropped unless it is already running."""
        job = _Job(payload, work, shared, abandoned)
        with self._waiting_lock:
            self._waiting.append(job)
        self._queue.put(job)
        return job.future

    def wait_ahead(self, kind: type, work: float) -> float:
        """Estimated seconds before a new job of ``kind`` and ``work`` would start."""
        now = time.monotonic()
        jobs, left = self._live_waiting(), self._running_left(now)
        return wait_ahead(jobs, self.rate.seconds(kind, work), self.rate, now, left, self._max_batch)

    def queued_seconds(self) -> float:
        """Estimated seconds of all the work queued and still running: how long the last job would wait."""
        return self._running_left(time.monotonic()) + calls_seconds(self._live_waiting(), self.rate, self._max_batch)

    def _running_left(self, now: float) -> float:
        """Estimated seconds left of the call now running; 0 between calls."""
        since = self._running_since
        return 0.0 if since is None else max(0.0, self._running_estimate - (now - since))

    def _live_waiting(self) -> list[_Job]:
        with self._waiting_lock:
            return [job for job in self._waiting if not job.dropped()]

    def _claim(self, batch: list[_Job]) -> None:
        """Take ``batch`` out of the waiting jobs; the caller holds ``_waiting_lock``."""
        chosen = {id(job) for job in batch}
        self._waiting = [job for job in self._waiting if id(job) not in chosen]

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _take_batch(self) -> list[_Job] | None:
        with self._waiting_lock:
            pending = bool(self._waiting)
        if not pending and not self._stopping:
            first = self._queue.get()
            if first is None:
                return None
        elif not pending:
            return None
        self._gather()
        with self._waiting_lock:
            dropped = [job for job in self._waiting if job.dropped()]
            self._waiting = [job for job in self._waiting if not job.dropped()]
            batch = cast(list[_Job], pick_batch(self._waiting, time.monotonic(), self._max_batch, self.rate))
            self._claim(batch)
        self._drop(dropped)
        if not batch and self._stopping:
            return None
        return batch

    def _gather(self) -> None:
        """Wait for jobs on their way. Clients that send at the same moment arrive a few milliseconds
        apart: this waits while jobs are announced as on their way, and until none has arrived or
        been announced for the gather window, so one forward pass serves them all."""
        started = time.monotonic()
        last_seen, limit = started, started + ARRIVAL_WAIT_LIMIT_S
        while True:
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
                self._stopping = True  # stop once what is queued has run
                break
        while True:  # the queue only wakes the worker; the jobs themselves are in _waiting
            try:
                if self._queue.get_nowait() is None:
                    self._stopping = True
            except queue.Empty:
                break

    def _drop(self, jobs: list[_Job]) -> None:
        for job in jobs:
            job.future.cancel()
        if jobs:
            self.dropped += len(jobs)
            log.info("dropped %d queued jobs whose requests were abandoned", len(jobs))

    def _run(self) -> None:
        while (batch := self._take_batch()) is not None:
            if batch:
                self._run_group(type(batch[0].payload), batch)
            del batch  # the payloads, and with them the requests' plans, go now
            if self._after_batch is not None:
                try:
                    self._after_batch()
                except Exception:  # housekeeping must never stop the worker
                    log.exception("after_batch failed")

    def _run_group(self, kind: type, jobs: list[_Job], inside: bool = False) -> None:
        """Run ``jobs`` (all of ``kind``) in one call; ``inside``: between two steps of a running call."""
        abandoned = [job for job in jobs if job.dropped()]
        self._drop(abandoned)
        live = [job for job in jobs if not job.dropped() and job.future.set_running_or_notify_cancel()]
        if not live:
            return
        work = call_work(live)
        started = time.monotonic()
        if not inside:
            self._running_estimate = self.rate.seconds(kind, work)
            self._running_since, self._interleaved_s = started, 0.0
            self._next_interleave = started + INTERLEAVE_EVERY_S
        hook = BETWEEN_STEPS.set(None if inside else self._run_short_jobs)
        try:
            results = self._run_payloads([job.payload for job in live])
        except BaseException as exc:  # the callers get the error; the worker keeps serving
            log.debug("batch of %d %s jobs failed", len(live), kind.__name__, exc_info=True)
            for job in live:
                job.future.set_exception(exc)
            return
        finally:
            BETWEEN_STEPS.reset(hook)
            if not inside:
                self._running_since = None
        # The call's own time: short jobs run between its steps are theirs to count.
        own = time.monotonic() - started - (0.0 if inside else self._interleaved_s)
        self.rate.observe(kind, work, own)
        for job, result in zip(live, results, strict=True):
            job.future.set_result(result)

    def _run_short_jobs(self) -> None:
        """Between two decode steps of the running call: run the queued jobs short enough to pass it
        (scheduling.INTERLEAVE_WORK_S), so a short request waits for a step, not for the whole call."""
        now = time.monotonic()
        if now < self._next_interleave:
            return
        self._next_interleave = now + INTERLEAVE_EVERY_S
        with self._waiting_lock:
            short = [j for j in self._waiting if not j.dropped() and estimate(j, self.rate) <= INTERLEAVE_WORK_S]
            batch = cast(list[_Job], pick_batch(short, now, self._max_batch, self.rate))
            self._claim(batch)
        if batch:
            self._run_group(type(batch[0].payload), batch, inside=True)
            self._interleaved_s += time.monotonic() - now
