"""Request batching, on real threads: which jobs share a batch, and that none waits forever."""

from __future__ import annotations

import threading
import time

import pytest

from model_loader.batching.request_batching import ARRIVAL_WAIT_LIMIT_S, BatchWorker

GATHER_S = 0.005


@pytest.fixture
def worker():
    batches: list[list[object]] = []

    def handler(payloads: list[object]) -> list[object]:
        batches.append(list(payloads))
        return [f"done {p}" for p in payloads]

    w = BatchWorker(handler, max_batch=8, gather_seconds=GATHER_S)
    w.batches = batches
    yield w
    w.stop()


def announce_then_submit(worker: BatchWorker, payload: str, preparing_s: float, entered: threading.Event, out: dict):
    with worker.expecting():
        entered.set()
        time.sleep(preparing_s)
        out[payload] = worker.submit(payload)


def test_a_job_announced_while_a_batch_gathers_joins_that_batch(worker):
    entered, out = threading.Event(), {}
    late = threading.Thread(target=announce_then_submit, args=(worker, "late", 10 * GATHER_S, entered, out))
    late.start()
    entered.wait()
    first = worker.submit("first")
    late.join()
    assert first.result(timeout=5) == "done first"
    assert out["late"].result(timeout=5) == "done late"
    assert worker.batches == [["first", "late"]]


def test_a_job_nobody_announced_does_not_wait_for_later_ones(worker):
    first = worker.submit("first")
    assert first.result(timeout=5) == "done first"
    time.sleep(10 * GATHER_S)
    assert worker.submit("second").result(timeout=5) == "done second"
    assert worker.batches == [["first"], ["second"]]


def test_a_stalled_announcement_holds_a_batch_no_longer_than_the_limit(worker):
    entered, out = threading.Event(), {}
    stall_s = 4 * ARRIVAL_WAIT_LIMIT_S
    stalled = threading.Thread(target=announce_then_submit, args=(worker, "stalled", stall_s, entered, out))
    stalled.start()
    entered.wait()
    started = time.monotonic()
    assert worker.submit("first").result(timeout=5) == "done first"
    waited = time.monotonic() - started
    stalled.join()
    assert out["stalled"].result(timeout=5) == "done stalled"
    assert waited < stall_s, "the first job waited for the stalled caller instead of giving up at the limit"
    assert worker.batches == [["first"], ["stalled"]]


def test_an_announcement_that_ends_in_an_error_stops_being_waited_for(worker):
    entered = threading.Event()

    def fails_while_preparing():
        with pytest.raises(ValueError), worker.expecting():
            entered.set()
            time.sleep(2 * GATHER_S)
            raise ValueError("bad input found while preparing")

    failing = threading.Thread(target=fails_while_preparing)
    failing.start()
    entered.wait()
    started = time.monotonic()
    assert worker.submit("first").result(timeout=5) == "done first"
    failing.join()
    assert time.monotonic() - started < ARRIVAL_WAIT_LIMIT_S
    assert worker.batches == [["first"]]


def test_running_for_is_none_when_idle_and_counts_up_while_a_batch_runs():
    started, release = threading.Event(), threading.Event()

    def hold(payloads):
        started.set()
        release.wait(timeout=30)
        return payloads

    w = BatchWorker(hold, max_batch=8)
    try:
        assert w.running_for() is None
        done = w.submit("x")
        assert started.wait(timeout=5)
        first = w.running_for()
        time.sleep(0.05)
        assert first is not None and w.running_for() >= first + 0.04
        release.set()
        assert done.result(timeout=5) == "x"
        assert w.running_for() is None
    finally:
        release.set()
        w.stop()


def test_housekeeping_runs_once_a_batch_ends_with_nothing_waiting_and_a_failure_there_stops_nothing():
    ran = threading.Event()
    calls: list[int] = []

    def housekeeping() -> None:
        calls.append(1)
        ran.set()
        raise RuntimeError("housekeeping failed")

    w = BatchWorker(lambda payloads: [f"done {p}" for p in payloads], max_batch=8, after_batch=housekeeping)
    try:
        assert w.submit("first").result(timeout=5) == "done first"
        assert ran.wait(timeout=5)
        ran.clear()
        assert w.submit("second").result(timeout=5) == "done second"
        assert ran.wait(timeout=5)
    finally:
        w.stop()
    assert len(calls) == 2
