"""The one table from an error to how a request ended: HTTP status, metric outcome, UI title and Retry-After.

Every entry point (JSON API, Gradio UI and API, batch and evaluation rows, /health) asks this
module what an exception means and how to word it, so the same error reads the same wherever
it is raised; nothing else in the web layer decides by an exception's type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import ValidationError

from evaluation.data import EvaluationDataError
from model_loader.errors import (
    AbandonedError,
    InvalidInputError,
    ModelLoadError,
    ModelNotReadyError,
    OverloadedError,
    SettingsError,
)
from serving.wire import ReplicaUnavailableError

from .api.schemas import describe_errors
from .batch.files import BatchFileError
from .history.errors import HistoryOffError, RequestNotFoundError
from .jobs.errors import JobLimitError, JobNotFoundError, StorageError
from .kb.errors import DocumentNotFoundError
from .service.gate import BusyError
from .service.shutdown import ShuttingDownError


class BodyTooLargeError(InvalidInputError):
    """The request body is over the size limit (HTTP 413 rather than 422)."""

    def __init__(self, message: str, drained: bool = True) -> None:
        super().__init__(message)
        # False when the server stopped reading: the connection must then be closed.
        self.drained = drained


def too_large(zh: str, en: str, size: int, limit: int, fix: str, at_least: bool = False) -> str:
    """The words of every 413: what was sent (``zh``, ``en``), its size (``at_least`` when the server
    stopped counting), the limit it passed, and ``fix``, how to get under it."""
    return (f"{zh}过大 · {en} is {'more than ' if at_least else ''}{_bytes(size)}, over the limit of "
            f"{_bytes(limit)}: {fix}")


def _bytes(count: int) -> str:
    return f"{count:,} bytes" + (f" ({count / 1048576:.1f} MiB)" if count >= 1048576 else "")


class RouteError(InvalidInputError):
    """No route at this path (404), or not for this method (405)."""

    def __init__(self, message: str, status: int, allow: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.allow = allow  # the methods the path takes, for the Allow header of a 405


@dataclass(frozen=True)
class Outcome:
    """How a request ended, in each of the forms the edges need."""

    # the metric and log label: ok, invalid, busy, shed, abandoned, stopping, unavailable, not_ready, error
    name: str
    status: int  # the HTTP status of the JSON API
    title: str  # the heading of the UI message, Chinese first
    retry_after: int | None = None  # seconds, for the Retry-After header of a 503

    @property
    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else None


# A message with Chinese in it is already bilingual.
_CJK = re.compile(r"[\u4e00-\u9fff]")

OK = Outcome("ok", 200, "完成 Done")
INVALID = Outcome("invalid", 422, "输入有误 Invalid input")
INTERNAL = Outcome("error", 500, "内部错误 Internal error")

# Most specific first: the first type the exception is an instance of decides.
TABLE: tuple[tuple[type[BaseException], Outcome], ...] = (
    (BodyTooLargeError, Outcome("invalid", 413, "内容过大 Request too large")),
    (InvalidInputError, INVALID),
    (ValidationError, INVALID),  # the request schemas' type and shape checks
    (BatchFileError, INVALID),
    (EvaluationDataError, INVALID),
    (BusyError, Outcome("busy", 503, "繁忙 Busy", retry_after=2)),
    (JobLimitError, Outcome("busy", 429, "任务过多 Too many jobs", retry_after=60)),
    (JobNotFoundError, Outcome("invalid", 404, "没有这个任务 No such job")),
    (RequestNotFoundError, Outcome("invalid", 404, "没有这个请求 No such request")),
    (DocumentNotFoundError, Outcome("invalid", 404, "没有这个文档 No such document")),
    (HistoryOffError, Outcome("invalid", 404, "请求历史未开启 History is off")),
    (StorageError, Outcome("storage", 507, "存储不可用 Storage unavailable")),
    # Refused by the engine for the work queued ahead; Retry-After is that wait (response_headers).
    (OverloadedError, Outcome("shed", 503, "繁忙 Busy")),
    # The client went away: nobody reads the answer, 499 as nginx logs it.
    (AbandonedError, Outcome("abandoned", 499, "已取消 Abandoned")),
    (ShuttingDownError, Outcome("stopping", 503, "服务重启中 Restarting", retry_after=10)),
    # Before ModelNotReadyError, of which it is a kind: Ray Serve restarts a dead replica in seconds.
    (ReplicaUnavailableError, Outcome("unavailable", 503, "副本不可用 Replica unavailable", retry_after=3)),
    (ModelNotReadyError, Outcome("not_ready", 503, "模型未就绪 Not ready", retry_after=5)),
    # Permanent until the operator acts: no Retry-After, no "try again later".
    (ModelLoadError, Outcome("not_ready", 503, "模型加载失败 Model failed to load")),
    # A bad SEQGPT_* setting is the operator's to fix, not the request's: no retry helps until then.
    (SettingsError, Outcome("not_ready", 503, "设置有误 Settings error")),
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


def response_headers(exc: BaseException) -> dict[str, str] | None:
    """The HTTP headers an error's answer carries: Retry-After, Allow for a 405, Connection: close
    where the server stopped reading the body."""
    headers = dict(outcome_of(exc).headers or {})
    if isinstance(exc, OverloadedError):
        headers["Retry-After"] = str(exc.retry_after_s)
    if isinstance(exc, BodyTooLargeError) and not exc.drained:
        headers["Connection"] = "close"
    if isinstance(exc, RouteError) and exc.allow:
        headers["Allow"] = exc.allow
    return headers or None


def reason(exc: BaseException) -> str:
    """The error's own words, for the request log and for messages."""
    if isinstance(exc, ValidationError):
        return describe_errors(exc.errors())
    return str(exc)


def user_message(exc: BaseException, request_id: str) -> str:
    """What the user reads: the error's own words for expected errors; for anything else, where to look."""
    outcome = outcome_of(exc)
    if outcome is INTERNAL:
        return (
            "内部错误，详情见服务器日志 · Internal error; the server log has the "
            f"details under request id {request_id}"
        )
    if isinstance(exc, BusyError):
        return f"服务繁忙，请稍后再试 · {exc}"
    if isinstance(exc, OverloadedError):
        return f"服务繁忙，请 {exc.retry_after_s} 秒后再试（请求编号 {request_id}）· {exc} (request id {request_id})"
    if isinstance(exc, ReplicaUnavailableError):
        return f"模型副本暂时不可用，请稍后再试 · {exc}"
    if isinstance(exc, ModelNotReadyError):
        return f"模型未就绪，请稍后再试 · {exc}"
    if isinstance(exc, ModelLoadError):
        return f"模型加载失败，修复后重启服务 · {exc}"
    if isinstance(exc, SettingsError):
        return f"设置有误，请改正后重启 · {exc}"
    if isinstance(exc, EvaluationDataError) and not _CJK.search(str(exc)):
        # The evaluation harness words its errors for the command line too, in English.
        return f"评测文件有误 · {exc}"
    return reason(exc)
