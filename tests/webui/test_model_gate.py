"""The gate in front of the model: a fixed number run at once, a bounded number wait, the rest are busy at once."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from webui.service.gate import BusyError, ModelGate


def test_full_gate_answers_busy_immediately_and_recovers():
    async def scenario() -> None:
        gate = ModelGate(concurrency=1, queue_size=1)
        release = threading.Event()
        running = asyncio.create_task(gate.run(release.wait))
        waiting = asyncio.create_task(gate.run(lambda: "second"))
        while gate.running != 1 or gate.waiting != 1:
            await asyncio.sleep(0.01)

        started = time.perf_counter()
        with pytest.raises(BusyError, match="busy.*try again"):
            await gate.run(lambda: "third")
        assert time.perf_counter() - started < 0.1

        release.set()
        assert await running is True
        assert await waiting == "second"
        assert await gate.run(lambda: "after") == "after"
        assert (gate.running, gate.waiting) == (0, 0)

    asyncio.run(scenario())


def test_no_more_than_concurrency_calls_run_at_once():
    async def scenario() -> int:
        gate = ModelGate(concurrency=2, queue_size=10)
        lock = threading.Lock()
        active = peak = 0

        def work() -> None:
            nonlocal active, peak
            with lock:
                active += 1
                peak = max(peak, active)
            time.sleep(0.05)
            with lock:
                active -= 1

        await asyncio.gather(*(gate.run(work) for _ in range(8)))
        return peak

    assert asyncio.run(scenario()) == 2


def test_an_error_in_the_call_frees_its_slot():
    async def scenario() -> None:
        gate = ModelGate(concurrency=1, queue_size=0)

        def fail() -> None:
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            await gate.run(fail)
        assert await gate.run(lambda: 1) == 1

    asyncio.run(scenario())
