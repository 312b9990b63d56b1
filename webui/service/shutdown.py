"""The shutdown deadline: requests still running when the grace period ends get a clear 503, not a cut connection.

On SIGTERM (``supervisorctl restart``, ``docker stop``) uvicorn stops accepting connections and
waits ``SEQGPT_GRACEFUL_SHUTDOWN_S`` for the requests in flight; then it cancels them and closes
their connections, and a client reads an empty reply. A request the model cannot finish in time
is therefore answered a little before that moment, through the outcome table like any other error,
so the caller reads why and when to retry.
"""

from __future__ import annotations

import asyncio
import time
import types
from collections.abc import Awaitable
from typing import TypeVar

import uvicorn

from model_loader.errors import SeqGPTError

T = TypeVar("T")

# How often a waiting request looks at the clock; a shutdown is rare and an answer a tenth of a
# second later costs nothing, where a cross-thread wake-up from a signal handler would.
POLL_S = 0.1


class ShuttingDownError(SeqGPTError):
    """The appliance is restarting or stopping and could not finish this request in its grace period."""


class ShutdownClock:
    """When the server was told to stop, and so when the requests in flight must be answered."""

    def __init__(self) -> None:
        self._deadline: float | None = None

    def begin(self, grace_s: float) -> None:
        """Called once a stop signal arrives. Answers leave a margin before uvicorn cuts connections:
        a quarter of the grace period, at most a second, for the reply to be written."""
        if self._deadline is None:
            self._deadline = time.monotonic() + grace_s - min(1.0, grace_s / 4)

    @property
    def stopping(self) -> bool:
        return self._deadline is not None

    async def passed(self) -> None:
        """Returns once a stop has begun and its deadline has passed."""
        while self._deadline is None or time.monotonic() < self._deadline:
            await asyncio.sleep(POLL_S)

    async def race(self, work: Awaitable[T]) -> T:
        """``work``'s result, or ShuttingDownError once the deadline passes first."""
        task = asyncio.ensure_future(work)
        deadline = asyncio.ensure_future(self.passed())
        try:
            await asyncio.wait({task, deadline}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            deadline.cancel()
        if task.done():
            return task.result()
        task.cancel()  # the engine's thread finishes on its own; the process is about to exit
        raise ShuttingDownError(
            "服务正在重启或停止，此请求未能在停机前完成，请稍后重试 · the appliance is restarting or stopping and "
            "could not finish this request before it stopped; send it again in a few seconds"
        )


class DrainingServer(uvicorn.Server):
    """uvicorn's server, telling the clock when a stop signal arrives."""

    def __init__(self, config: uvicorn.Config, clock: ShutdownClock) -> None:
        super().__init__(config)
        self.clock = clock

    def handle_exit(self, sig: int, frame: types.FrameType | None) -> None:
        if self.config.timeout_graceful_shutdown is not None:  # None: uvicorn waits as long as it takes
            self.clock.begin(self.config.timeout_graceful_shutdown)
        super().handle_exit(sig, frame)
