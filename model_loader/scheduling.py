"""Work estimates and the model worker's choice of what runs next: short work first, old work not forgotten.

Every job queued for the model carries an estimate of its work in units (prompt tokens, plus
decode steps weighted as the tokens they cost). A measured rate per kind of job (seconds per
unit, learnt from the runs that finished) turns work into seconds, so the engine can tell how
long a new request would wait before it starts, and refuse it at once when that is too long.

The worker picks the job with the least work, unless some job has waited longer than
``AGEING_S``: then the oldest goes first, so a long request is delayed, never starved. Jobs of
the same kind and of similar size join it in one call (requests arriving together still share
forward passes), up to ``SLICE_S`` of estimated work, so one call stays short and a short request
waits for at most about that long.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Protocol

# A decode step reads all the weights for the one token it adds to each row: on a CPU it costs
# about as much as this many prompt tokens of a prefill (memory-bound against compute-bound).
DECODE_STEP_UNITS = 20
# Seconds per unit before anything has been measured, by device (full-size model, fp32 on a
# 2-core CPU; fp16 on one GPU). The first measurement replaces it.
PRIOR_SECONDS_PER_UNIT = {"cpu": 0.006, "cuda": 0.0003}
# Weight of the newest measurement in the running average of a kind's rate.
RATE_SMOOTHING = 0.3
# A job that has waited this long is taken before any shorter one.
AGEING_S = 20.0
# One call's estimated seconds; more jobs join it only while the total stays within this.
SLICE_S = 4.0
# Jobs join a call only when they are at most this many times the work of the one it was built for.
SIMILAR_WORK = 2.0

# Set by the web layer for one request: when it is set, the request's client has gone and its
# queued work is dropped. Context variables follow the call into the worker thread that waits.
ABANDONED: ContextVar[threading.Event | None] = ContextVar("seqgpt_abandoned", default=None)


class Queued(Protocol):
    payload: object
    work: float
    queued_at: float


class WorkRate:
    """Seconds per unit of work, per kind of job, learnt from finished runs; safe from any thread."""

    def __init__(self, prior_seconds_per_unit: float) -> None:
        self._prior = prior_seconds_per_unit
        self._rates: dict[type, float] = {}
        self._lock = threading.Lock()

    def seconds(self, kind: type, work: float) -> float:
        with self._lock:
            return work * self._rates.get(kind, self._prior)

    def observe(self, kind: type, work: float, seconds: float) -> None:
        """A run of ``work`` units of ``kind`` took ``seconds``."""
        if work <= 0 or seconds <= 0:
            return
        measured = seconds / work
        with self._lock:
            old = self._rates.get(kind)
            self._rates[kind] = measured if old is None else old + RATE_SMOOTHING * (measured - old)


def prior_for(device: str) -> float:
    return PRIOR_SECONDS_PER_UNIT["cuda" if device.startswith("cuda") else "cpu"]


def estimate(job: Queued, rate: WorkRate) -> float:
    """A queued job's estimated seconds."""
    return rate.seconds(type(job.payload), job.work)


def order(jobs: Sequence[Queued], now: float, rate: WorkRate, ageing_s: float = AGEING_S) -> list[Queued]:
    """Jobs in the order they should run: those waiting over ``ageing_s`` oldest first, then the
    shortest estimated first."""
    aged = sorted((j for j in jobs if now - j.queued_at >= ageing_s), key=lambda j: j.queued_at)
    fresh = sorted((j for j in jobs if now - j.queued_at < ageing_s), key=lambda j: (estimate(j, rate), j.queued_at))
    return aged + fresh


def pick_batch(
    jobs: Sequence[Queued], now: float, max_batch: int, rate: WorkRate, ageing_s: float = AGEING_S
) -> list[Queued]:
    """The jobs of the next call: the first in ``order``, and jobs of its kind and of similar size
    after it, up to ``max_batch`` and ``SLICE_S`` of estimated work (the first alone may be more)."""
    ranked = order(jobs, now, rate, ageing_s)
    if not ranked:
        return []
    head = ranked[0]
    kind = type(head.payload)
    batch, seconds = [head], estimate(head, rate)
    for job in ranked[1:]:
        if len(batch) >= max_batch:
            break
        if type(job.payload) is not kind or job.work > SIMILAR_WORK * max(head.work, 1.0):
            continue
        more = estimate(job, rate)
        if seconds + more > SLICE_S:
            continue
        batch.append(job)
        seconds += more
    return batch


def wait_ahead(jobs: Sequence[Queued], seconds: float, rate: WorkRate, now: float, running_left_s: float) -> float:
    """Estimated seconds before a new job of ``seconds`` estimated work starts: what is left of the
    running call, and every queued job that ``order`` would put before it (shorter, or past ageing)."""
    ahead = running_left_s
    for job in jobs:
        other = estimate(job, rate)
        if other <= seconds or now - job.queued_at >= AGEING_S:
            ahead += other
    return ahead
