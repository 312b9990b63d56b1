"""Runs one engine call as a request: admission through the gate, timing, metrics and the one-line request log."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from model_loader.batching.scheduling import ABANDONED
from model_loader.errors import ModelLoadError, ModelNotReadyError
from model_loader.interface import EngineAPI

from ..logging_setup import REQUEST_ID, new_request_id
from ..outcomes import INTERNAL, outcome_of, reason
from .abandon import watching
from .gate import ModelGate
from .metrics import Metrics
from .shutdown import ShutdownClock
from .status import GpuMonitor, gpu_memory_text

log = logging.getLogger(__name__)

PREFIX_CHARS = 20
T = TypeVar("T")


@dataclass(frozen=True)
class RequestInfo:
    """What the request log says about the input: never more than a short prefix of the text."""

    task: str
    source: str
    text: str
    label_count: int = 0
    rows: int | None = None  # a batch's or an evaluation's summary line: how many rows it ran
    # What the history keeps as the input where the engine call's own arguments are not what was
    # asked (a knowledge-base question: the question and where its passages came from).
    asked: dict[str, Any] | None = None


@dataclass(frozen=True)
class Served(Generic[T]):
    result: T
    request_id: str
    latency_ms: float


def request_log_line(info: RequestInfo, latency_ms: float, device: str, gpu_memory: str, outcome: str) -> str:
    """Pure: the one line logged per request (time and request id come from the log format)."""
    prefix = json.dumps(info.text[:PREFIX_CHARS], ensure_ascii=False)
    return (
        f"request task={info.task} source={info.source} chars={len(info.text)} prefix={prefix} "
        f"labels={info.label_count} latency_ms={latency_ms:.1f} device={device} "
        f"gpu_mem={gpu_memory} outcome={outcome}" + ("" if info.rows is None else f" rows={info.rows}")
    )


class Service:
    """The one path from the API and the UI to the engine."""

    def __init__(
        self, engine: EngineAPI, gate: ModelGate, metrics: Metrics, gpu: GpuMonitor, clock: ShutdownClock
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.gate = gate
        self.metrics = metrics
        self.gpu = gpu
        # The request history (webui/history/room.py), set by build_app; None keeps nothing.
        self.history: Any = None

    async def run(
        self,
        info: RequestInfo,
        fn: Callable[..., T],
        *args: object,
        disconnected: Callable[[], Awaitable[bool]] | None = None,
    ) -> Served[T]:
        """Run ``fn(*args)`` (a blocking engine method) for one request; errors are logged, then re-raised.
        ``disconnected`` tells whether the client has gone: its work is then dropped."""
        token = REQUEST_ID.set(new_request_id()) if REQUEST_ID.get() == "-" else None
        request_id = REQUEST_ID.get()
        started = time.perf_counter()
        # Seen by the engine in the thread that runs fn: set, the request's queued work is dropped.
        abandoned = threading.Event()
        abandon_token = ABANDONED.set(abandoned)
        try:
            status = self.engine.status
            if status.state == "error":  # permanent until the operator fixes it: no "try again later"
                raise ModelLoadError(not_ready_reason(status.state, status.error))
            if not status.ready:
                raise ModelNotReadyError(not_ready_reason(status.state, status.error))
            result = await self.clock.race(watching(self.gate.run(fn, *args), disconnected, abandoned))
        except Exception as exc:
            self.record(info, started, exc)
            raise
        else:
            self.record(info, started, None)
            served = Served(result, request_id, round((time.perf_counter() - started) * 1000, 1))
            if self.history is not None:  # queued for its writer thread: costs the request nothing more
                call, inputs = (fn, args) if info.asked is None else (None, (info.asked,))
                self.history.record(info.task, info.source, request_id, served.latency_ms, call, inputs, result)
            return served
        finally:
            abandoned.set()  # when this coroutine was cancelled, nobody waits for the work any more
            ABANDONED.reset(abandon_token)
            if token is not None:
                REQUEST_ID.reset(token)

    def record(self, info: RequestInfo, started: float, exc: BaseException | None) -> None:
        """Log the request line and count it; unexpected errors get their traceback."""
        seconds = time.perf_counter() - started
        outcome = outcome_of(exc)
        self.metrics.observe(info.task, info.source, outcome.name, seconds)
        line = request_log_line(
            info, seconds * 1000, self.engine.status.device, gpu_memory_text(self.gpu.read()), outcome.name
        )
        if outcome is INTERNAL:
            log.error(line, exc_info=exc)
        elif exc is not None:
            log.info("%s reason=%s", line, json.dumps(reason(exc), ensure_ascii=False))
        else:
            log.info(line)


def not_ready_reason(state: str, error: str | None) -> str:
    """Why the model cannot answer yet, in words for the user."""
    if state == "error":
        return (f"model failed to load: {error or 'see the server log'}. "
                "It stays so until this is fixed and the app restarted (scripts/supervisorctl restart seqgpt560m)")
    return "model is loading; try again in a few seconds"
