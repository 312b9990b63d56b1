"""Dropping the work of a request whose client has gone: a watch on the connection sets the engine's flag."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

# How often a waiting request asks whether its client is still connected.
POLL_S = 0.5


async def watching(
    work: Awaitable[T], disconnected: Callable[[], Awaitable[bool]] | None, abandoned: threading.Event
) -> T:
    """``work``'s result, while ``disconnected`` is polled: once the client is gone, ``abandoned`` is set,
    and the engine drops the request's queued work and answers AbandonedError (see model_loader.batching.admission)."""
    task = asyncio.ensure_future(work)
    try:
        while disconnected is not None and not task.done():
            await asyncio.wait({task}, timeout=POLL_S)
            if not task.done() and await disconnected():
                abandoned.set()
                break
        return await task
    finally:
        if not task.done():
            task.cancel()
