"""Work estimates and the model worker's choice of what runs next: short work first, old work not forgotten.

Every job queued for the model carries an estimate of its work in units (prompt tokens, plus
decode steps weighted as the tokens they cost). A measured rate per kind of job (seconds per
unit, learnt from the runs that finished) turns work into seconds, so the engine can tell how
long a new request would wait before it starts, and refuse it at once when that is too long.

The worker picks the job with the least estimated work, less a quarter of the time it has
waited (``AGEING_FACTOR``): a short request passes long ones, and a long one moves up as it
waits, so it is delayed, never starved. Jobs of the same kind and of similar size join it in one
call (requests arriving together still share forward passes) while the call stays within three
times ``SLICE_S`` or its first job's estimate; their decode steps are shared (``call_work``: a step
adds a token to every row for one read of the weights), so eight free prompts cost little more
than one. Short jobs need not wait for a whole call: between two decode
steps of a running call (and between two prompts of its prefill), the worker runs queued jobs of at
most ``INTERLEAVE_WORK_S`` (a token takes a step; a long answer takes hundreds). An extraction's decode
steps are counted as many as fields really take (``AnswerSteps``), not as many as they may.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
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
# Decode steps of an extraction field before any has been measured: a field answers with a name, a
# date or an amount, a few tokens, though it may write up to SEQGPT_EXTRACT_MAX_NEW_TOKENS.
PRIOR_FIELD_STEPS = 16.0
# Every this many seconds a job waits count as one second less of work when it is ranked.
AGEING_FACTOR = 4.0
# Jobs join a call while its estimate stays within CALL_STRETCH times this many seconds, or times its
# first job's own estimate where that is longer. Free prompts share their decode steps: one step over
# eight rows took about 120 ms on a 2-core EPYC, and eight free prompts run one by one 394 ms a step.
# Short jobs run between the steps of a long call (INTERLEAVE_WORK_S), so a longer call holds them up little.
SLICE_S = 4.0
CALL_STRETCH = 3.0
# Jobs join a call only when their work is within this factor of the one it was built for, either way:
# a short job in a long call would wait for all of it, since every job of a call is answered at its end.
SIMILAR_WORK = 2.0

# Between two decode steps of a running call, queued jobs estimated at this many seconds or less
# run (looked for at most every INTERLEAVE_EVERY_S), so a short request waits for a step of a long
# call, not for all of it. Answers do not depend on what runs beside them, so nothing changes but when.
# Measured in 20-minute soaks (8 clients, 2-core EPYC): 2 s gave short requests p95 45 s; one
# call's work (4 s) gave 58 s, since the jobs run inside a call then hold up every other one.
INTERLEAVE_WORK_S = 2.0
INTERLEAVE_EVERY_S = 0.25

# Set by the model worker while a call runs: what the decoding loops call between two steps.
BETWEEN_STEPS: ContextVar[Callable[[], None] | None] = ContextVar("seqgpt_between_steps", default=None)

# Set by the web layer for one request: when it is set, the request's client has gone and its
# queued work is dropped. Context variables follow the call into the worker thread that waits.
ABANDONED: ContextVar[threading.Event | None] = ContextVar("seqgpt_abandoned", default=None)


class Queued(Protocol):
    payload: object
    work: float
    shared: float  # the part of work that jobs run in one call share (their decode steps)
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


class AnswerSteps:
    """Decode steps an extraction piece takes (its longest field's answer), learnt from finished runs;
    safe from any thread.

    A piece's estimate counted at the field limit (128 steps) would outweigh its prompt: a
    40-character extraction would look as long as an 800-token piece of a long text, join its
    call, and wait for it. Learnt, the steps are those the model really takes."""

    def __init__(self, prior: float = PRIOR_FIELD_STEPS) -> None:
        self._steps = prior
        self._lock = threading.Lock()

    def expected(self) -> float:
        with self._lock:
            return self._steps

    def observe(self, steps: int) -> None:
        with self._lock:
            self._steps += RATE_SMOOTHING * (steps - self._steps)


def prior_for(device: str) -> float:
    return PRIOR_SECONDS_PER_UNIT["cuda" if device.startswith("cuda") else "cpu"]


def call_work(jobs: Sequence[Queued]) -> float:
    """Units of one call running ``jobs`` together: their prompts add up, their decode steps are
    shared (a step adds a token to every row for one read of the weights)."""
    return sum(job.work - job.shared for job in jobs) + max((job.shared for job in jobs), default=0.0)


def estimate(job: Queued, rate: WorkRate) -> float:
    """A queued job's estimated seconds."""
    return rate.seconds(type(job.payload), job.work)


def rank(job: Queued, rate: WorkRate, now: float) -> float:
    """What the job is ranked by, least first: its estimated seconds less its wait over AGEING_FACTOR."""
    return estimate(job, rate) - max(0.0, now - job.queued_at) / AGEING_FACTOR


def order(jobs: Sequence[Queued], now: float, rate: WorkRate) -> list[Queued]:
    """Jobs in the order they should run: least rank first, then the oldest."""
    return sorted(jobs, key=lambda j: (rank(j, rate, now), j.queued_at))


def pick_batch(jobs: Sequence[Queued], now: float, max_batch: int, rate: WorkRate) -> list[Queued]:
    """The jobs of the next call: the first in ``order``, and jobs of its kind and of similar size
    after it, up to ``max_batch`` and while the call's estimate (``call_work``: decode steps shared)
    stays within CALL_STRETCH times the longer of ``SLICE_S`` and the first job's own estimate.
    A short job stays out of a long job's call (``similar``): it would be answered only at the call's end."""
    ranked = order(jobs, now, rate)
    if not ranked:
        return []
    head = ranked[0]
    kind = type(head.payload)
    batch = [head]
    limit = CALL_STRETCH * max(SLICE_S, estimate(head, rate))
    for job in ranked[1:]:
        if len(batch) >= max_batch:
            break
        if type(job.payload) is not kind or not similar(job.work, head.work):
            continue
        if rate.seconds(kind, call_work([*batch, job])) > limit:
            continue
        batch.append(job)
    return batch


def similar(work: float, other: float) -> bool:
    """Whether two jobs' work lies within SIMILAR_WORK of each other."""
    return max(work, other) <= SIMILAR_WORK * max(min(work, other), 1.0)


def calls_seconds(jobs: Sequence[Queued], rate: WorkRate, max_batch: int) -> float:
    """Estimated seconds to run ``jobs``: those of one kind in calls of up to ``max_batch``, each call
    counting its decode steps once (``call_work``), as the worker will run them."""
    by_kind: dict[type, list[Queued]] = {}
    for job in jobs:
        by_kind.setdefault(type(job.payload), []).append(job)
    return sum(
        rate.seconds(kind, call_work(queued[start : start + max_batch]))
        for kind, queued in by_kind.items()
        for start in range(0, len(queued), max(1, max_batch))
    )


def wait_ahead(
    jobs: Sequence[Queued], seconds: float, rate: WorkRate, now: float, running_left_s: float, max_batch: int = 1
) -> float:
    """Estimated seconds before a new job of ``seconds`` estimated work starts: what is left of the
    running call, and the calls of every queued job that ``order`` would now put before it."""
    ahead = [job for job in jobs if rank(job, rate, now) <= seconds]
    return running_left_s + calls_seconds(ahead, rate, max_batch)


def between_steps() -> None:
    """Called by the decoding loops between two steps: the worker may run short queued work there."""
    hook = BETWEEN_STEPS.get()
    if hook is not None:
        hook()
