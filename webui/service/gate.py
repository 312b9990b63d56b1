"""A bounded waiting room in front of the model: a few calls run at once, a few more wait, the rest are busy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread

T = TypeVar("T")


class BusyError(Exception):
    """Every running slot and every waiting place is taken; the caller should try again shortly."""


class ModelGate:
    """Admits at most ``concurrency + queue_size`` requests; runs ``concurrency`` of them at a time.

    Waiting happens on the event loop, not in a worker thread, so a full queue costs no threads.
    The API and the UI share one gate, so the limits hold for the whole process.
    """

    def __init__(self, concurrency: int, queue_size: int) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self.queue_size = queue_size
        self._slots = asyncio.Semaphore(concurrency)
        self._admitted = 0
        self._running = 0
        # When the last request was admitted (monotonic): background work (webui/jobs) keeps its
        # slices short while people are using the model.
        self.last_admitted = float("-inf")

    @property
    def waiting(self) -> int:
        """Requests admitted but not yet running."""
        return self._admitted - self._running

    @property
    def running(self) -> int:
        return self._running

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run the blocking ``fn(*args)`` in a worker thread once a slot is free; BusyError if full."""
        if self._admitted >= self.concurrency + self.queue_size:
            raise BusyError(
                f"busy: {self._running} requests running and {self.waiting} waiting; try again in a few seconds"
            )
        self._admitted += 1
        self.last_admitted = time.monotonic()
        try:
            async with self._slots:
                self._running += 1
                try:
                    return await anyio.to_thread.run_sync(fn, *args)
                finally:
                    self._running -= 1
        finally:
            self._admitted -= 1
