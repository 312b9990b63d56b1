"""Logging to stdout, configured once by the entry point; every line carries the current request id."""

from __future__ import annotations

import contextvars
import logging
import sys
import uuid

# The id of the request being served in this task or thread; "-" outside any request.
# asyncio tasks and anyio worker threads copy the context, so engine log lines inherit it.
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("seqgpt_request_id", default="-")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def new_request_id() -> str:
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Stamps each record with the request id of the context that logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


def configure_logging(level: str = "INFO") -> None:
    """Send all logs, ours and the libraries', to stdout in one format. Call once, from ``__main__``."""
    # A character the stream cannot encode (a lone surrogate from a JSON escape, or anything on a
    # non-UTF-8 locale) is written as a backslash escape instead of failing the whole log line.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    # A handler-level filter sees records from every logger, including uvicorn's and the engine's.
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers[:] = []
        uvicorn_logger.propagate = True
    # Third-party chatter that would drown the one-line-per-request log.
    for name in ("httpx", "httpcore", "multipart", "matplotlib", "PIL"):
        logging.getLogger(name).setLevel(logging.WARNING)
