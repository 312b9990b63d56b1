"""The JSON routes (/api/classify, /api/extract, /api/generate), /health and /metrics; errors become HTTP codes."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from model_loader.errors import InvalidInputError
from model_loader.interface import EngineAPI
from model_loader.tasks.options import ClassifyRequest, ExtractRequest, GenerateRequest
from serving.replicas import ClusterStatus, replicas_json

from ..logging_setup import REQUEST_ID
from ..outcomes import INTERNAL, BodyTooLargeError, outcome_of, response_headers, too_large, user_message
from ..service.request import RequestInfo, Service, not_ready_reason
from .route_table import route_table
from .schemas import (
    ClassifyBody,
    ExtractBody,
    GenerateBody,
    TaskBody,
    classification_json,
    extraction_json,
    generation_json,
)

log = logging.getLogger(__name__)

# A call is (what to log about it, the engine method, its arguments).
Call = tuple[RequestInfo, Callable[..., Any], tuple[Any, ...]]

# A body over the limit is still read, and thrown away, up to this many bytes: a client that is
# still sending when the server answers and closes gets "connection reset" instead of the 413
# (Python's urllib does). Beyond this bound the server answers at once and closes the connection.
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024


async def answer_in_thread(
    service: Service, task: str, request: Request, work: Any, *args: Any, status: int = 200, log_it: bool = False
) -> JSONResponse:
    """Run the blocking ``work(*args)`` in a thread (a room's store: SQLite blocks) and answer its JSON; any
    error gets the API's shape and a request-log line, a success one only with ``log_it``."""
    started = time.perf_counter()
    try:
        body = await anyio.to_thread.run_sync(work, *args)
    except Exception as exc:
        service.record(RequestInfo(task, "api", request.url.path), started, exc)
        return error_response(exc)
    if log_it:
        service.record(RequestInfo(task, "api", request.url.path), started, None)
    return JSONResponse(body, status_code=status)


def error_response(exc: BaseException) -> JSONResponse:
    """The JSON answer to a failed request: status, message and headers all come from the outcome table."""
    request_id = REQUEST_ID.get()
    return JSONResponse(
        {"error": user_message(exc, request_id), "request_id": request_id},
        status_code=outcome_of(exc).status,
        headers=response_headers(exc),
    )


def build_api_router(engine: EngineAPI, service: Service, render_metrics: Callable[[], bytes]) -> APIRouter:
    router = APIRouter()
    limits = engine.settings
    # Room for the longest text in JSON escapes (\uXXXX is 6 bytes a character) plus the labels.
    max_body_bytes = 8 * max(limits.max_text_chars, limits.max_prompt_chars) + 64 * 1024

    async def handle(
        request: Request,
        task: str,
        model: type[TaskBody],
        call: Callable[[Any], Call],
        to_json: Callable[[Any], dict[str, Any]],
    ) -> JSONResponse:
        started = time.perf_counter()
        body: Any = None
        try:
            body = await read_json_body(request, max_body_bytes)
            checked = model.model_validate(body).checked(limits)
            info, fn, args = call(checked)
        except Exception as exc:  # every failure is answered; unexpected ones with a traceback
            service.record(RequestInfo(task, "api", _loggable_text(body)), started, exc)
            return error_response(exc)
        try:
            served = await service.run(info, fn, *args, disconnected=request.is_disconnected)
        except Exception as exc:  # logged by the service, with a traceback when unexpected
            return error_response(exc)
        return JSONResponse(
            {**to_json(served.result), "request_id": served.request_id, "latency_ms": served.latency_ms}
        )

    @router.post("/api/classify", openapi_extra=_body_schema(ClassifyBody))
    async def classify(request: Request) -> JSONResponse:
        def call(req: ClassifyRequest) -> Call:
            info = RequestInfo("classify", "api", req.text, len(req.labels))
            return info, engine.classify, (req.text, req.labels)

        return await handle(request, "classify", ClassifyBody, call, classification_json)

    @router.post("/api/extract", openapi_extra=_body_schema(ExtractBody))
    async def extract(request: Request) -> JSONResponse:
        def call(req: ExtractRequest) -> Call:
            info = RequestInfo("extract", "api", req.text, len(req.fields))
            return info, engine.extract, (req.text, req.fields, req.threshold, req.exclusive)

        return await handle(request, "extract", ExtractBody, call, extraction_json)

    @router.post("/api/generate", openapi_extra=_body_schema(GenerateBody))
    async def generate(request: Request) -> JSONResponse:
        def call(req: GenerateRequest) -> Call:
            info = RequestInfo("generate", "api", req.prompt)
            return info, engine.generate, (req.prompt, req.max_new_tokens)

        return await handle(request, "generate", GenerateBody, call, generation_json)

    # HEAD too: load balancers and uptime probes often ask with it.
    @router.api_route("/health", methods=["GET", "HEAD"])
    async def health() -> JSONResponse:
        status = engine.status
        driver_problem = service.gpu.driver_problem()
        if driver_problem:
            return JSONResponse({"status": "error", "reason": driver_problem, "device": status.device}, status_code=503)
        # Behind Ray Serve: how many replicas run, in which states, on which devices.
        replicas = {"replicas": replicas_json(status)} if isinstance(status, ClusterStatus) else {}
        if not status.ready:
            reason = status.error if status.state == "error" and status.error else None
            return JSONResponse(
                {"status": status.state, "reason": reason or not_ready_reason(status.state, status.error), **replicas},
                status_code=503,
            )
        try:
            await anyio.to_thread.run_sync(engine.health_check)
        except Exception as exc:
            if outcome_of(exc) is INTERNAL:
                log.exception("health check failed")
            return JSONResponse({"status": "unhealthy", "reason": str(exc), **replicas}, status_code=503)
        return JSONResponse(
            {
                "status": "ok",
                "device": status.device,
                "dtype": status.dtype,
                "model_dir": status.model_dir,
                "is_demo": status.is_demo,
                "load_seconds": status.load_seconds,
                "attention": status.attention,
                **embedding_health(engine),
                "weights": status.weights,
                **replicas,
            }
        )

    @router.api_route("/metrics", methods=["GET", "HEAD"])
    async def metrics() -> Response:
        return Response(render_metrics(), media_type=CONTENT_TYPE_LATEST)

    # Last, so that it sees only what no route above took; without it, the UI mounted at "/"
    # would answer a GET /api/classify with its own 404 and no request id.
    @router.api_route(
        "/api/{path:path}",
        methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        include_in_schema=False,
    )
    async def unknown(request: Request) -> JSONResponse:
        started = time.perf_counter()
        error = route_table(request.app).error(request.method, request.url.path)
        service.record(RequestInfo("route", "api", request.url.path), started, error)
        return error_response(error)

    return router


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The request shape for /api/docs; bodies are parsed by hand so that limits come from the engine."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


# How to get under the JSON routes' size limit; other routes name their own.
TEXT_LIMIT_FIX = "send a shorter text (the limit follows SEQGPT_MAX_TEXT_CHARS and SEQGPT_MAX_PROMPT_CHARS)"


async def read_json_body(request: Request, max_bytes: int, fix: str = TEXT_LIMIT_FIX) -> Any:
    """The parsed JSON body; a body over ``max_bytes`` is read to its end (up to a bound) and refused with
    a 413 whose message ends with ``fix``, what the sender can do about it."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > DRAIN_LIMIT_BYTES:
        raise BodyTooLargeError(_too_large(int(declared), max_bytes, fix), drained=False)
    chunks: list[bytes] = []
    size = 0
    # Counted while it streams, so a chunked body (no Content-Length) is never held whole.
    async for chunk in request.stream():
        size += len(chunk)
        if size <= max_bytes:
            chunks.append(chunk)
        elif size > DRAIN_LIMIT_BYTES:
            raise BodyTooLargeError(_too_large(size, max_bytes, fix, at_least=True), drained=False)
        else:
            chunks.clear()
    if size > max_bytes:
        raise BodyTooLargeError(_too_large(size, max_bytes, fix))
    try:
        return json.loads(b"".join(chunks), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise InvalidInputError(
            f"请求体不是有效的 JSON · the request body is not valid JSON ({exc}): "
            "send a JSON object with Content-Type: application/json"
        ) from None
    except RecursionError:
        raise InvalidInputError(
            "请求体嵌套过深 · the request body is nested too deeply: send a flat JSON object such as "
            '{"text": "...", "labels": ["..."]}'
        ) from None


def _too_large(size: int, max_bytes: int, fix: str, at_least: bool = False) -> str:
    return too_large("请求体", "the request body", size, max_bytes, fix, at_least)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _loggable_text(body: Any) -> str:
    if isinstance(body, dict):
        for key in ("text", "prompt"):
            if isinstance(body.get(key), str):
                return body[key]
    return ""


def embedding_health(engine: EngineAPI) -> dict[str, Any]:
    """The embedding model's state for /health (it loads on first use, so "idle" is healthy)."""
    embedder = getattr(engine, "embedder", None)
    if embedder is None:
        return {}
    status = embedder.status
    return {"embedding": {"state": status.state, "model_dir": status.model_dir, "is_demo": status.is_demo,
                          "device": status.device, "dtype": status.dtype, "dimensions": status.dimensions,
                          "error": status.error}}
