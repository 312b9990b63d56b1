"""The one table from an error to how a request ended: HTTP status, metric outcome, UI title and Retry-After.

Every entry point (JSON API, Gradio UI and API, batch rows) asks this module what an
exception means, so the same error reads the same wherever it is raised.
"""

from __future__ import annotations

from dataclasses import dataclass

from model_loader.errors import InvalidInputError, ModelLoadError, ModelNotReadyError
from serving.wire import ReplicaUnavailableError

from .concurrency import BusyError


class BodyTooLargeError(InvalidInputError):
    """The request body is over the size limit (HTTP 413 rather than 422)."""

    def __init__(self, message: str, drained: bool = True) -> None:
        super().__init__(message)
        # False when the server stopped reading: the connection must then be closed.
        self.drained = drained


class RouteError(InvalidInputError):
    """No route at this path (404), or not for this method (405)."""

    def __init__(self, message: str, status: int, allow: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.allow = allow  # the methods the path takes, for the Allow header of a 405


@dataclass(frozen=True)
class Outcome:
    """How a request ended, in each of the forms the edges need."""

    name: str  # the metric and log label: ok, invalid, busy, unavailable, not_ready, error
    status: int  # the HTTP status of the JSON API
    title: str  # the heading of the UI message, Chinese first
    retry_after: int | None = None  # seconds, for the Retry-After header of a 503

    @property
    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else None


OK = Outcome("ok", 200, "完成 Done")
INVALID = Outcome("invalid", 422, "输入有误 Invalid input")
INTERNAL = Outcome("error", 500, "内部错误 Internal error")

# Most specific first: the first type the exception is an instance of decides.
TABLE: tuple[tuple[type[BaseException], Outcome], ...] = (
    (BodyTooLargeError, Outcome("invalid", 413, "内容过大 Request too large")),
    (InvalidInputError, INVALID),
    (BusyError, Outcome("busy", 503, "繁忙 Busy", retry_after=2)),
    # Before ModelNotReadyError, of which it is a kind: Ray Serve restarts a dead replica in seconds.
    (ReplicaUnavailableError, Outcome("unavailable", 503, "副本不可用 Replica unavailable", retry_after=3)),
    (ModelNotReadyError, Outcome("not_ready", 503, "模型未就绪 Not ready", retry_after=5)),
    (ModelLoadError, Outcome("not_ready", 503, "模型加载失败 Model failed to load", retry_after=5)),
)


def outcome_of(exc: BaseException | None) -> Outcome:
    """The outcome of a request that ended with ``exc`` (None: it succeeded)."""
    if exc is None:
        return OK
    if isinstance(exc, RouteError):
        return Outcome("invalid", exc.status, INVALID.title)
    for kind, outcome in TABLE:
        if isinstance(exc, kind):
            return outcome
    return INTERNAL


def user_message(exc: BaseException, request_id: str) -> str:
    """What the user reads: the error's own words for expected errors; for anything else, where to look."""
    outcome = outcome_of(exc)
    if outcome is INTERNAL:
        return (
            "内部错误，详情见服务器日志 · Internal error while running the model; the server log has the "
            f"details under request id {request_id}"
        )
    if isinstance(exc, BusyError):
        return f"服务繁忙，请稍后再试 · {exc}"
    if isinstance(exc, ReplicaUnavailableError):
        return f"模型副本暂时不可用，请稍后再试 · {exc}"
    if isinstance(exc, ModelNotReadyError):
        return f"模型未就绪，请稍后再试 · {exc}"
    if isinstance(exc, ModelLoadError):
        return f"模型加载失败 · {exc}"
    return str(exc)
