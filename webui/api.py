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
from pydantic import BaseModel, ValidationError

from model_loader.engine import Engine
from model_loader.errors import InvalidInputError, ModelNotReadyError

from .concurrency import BusyError
from .logging_setup import REQUEST_ID
from .schemas import (
    ClassifyRequest,
    ExtractRequest,
    GenerateRequest,
    classification_json,
    describe_errors,
    extraction_json,
    generation_json,
)
from .service import RequestInfo, Service, not_ready_reason

log = logging.getLogger(__name__)

# A call is (what to log about it, the engine method, its arguments).
Call = tuple[RequestInfo, Callable[..., Any], tuple[Any, ...]]

INTERNAL_ERROR = "internal error while running the model; the server log has the details under this request id"


def error_response(status_code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": message, "request_id": REQUEST_ID.get()}, status_code=status_code, headers=headers
    )


def build_api_router(engine: Engine, service: Service, render_metrics: Callable[[], bytes]) -> APIRouter:
    router = APIRouter()
    limits = engine.settings
    max_body_bytes = 8 * max(limits.max_text_chars, limits.max_prompt_chars) + 64 * 1024

    async def handle(
        request: Request,
        task: str,
        model: type[BaseModel],
        call: Callable[[Any], Call],
        to_json: Callable[[Any], dict[str, Any]],
    ) -> JSONResponse:
        started = time.perf_counter()
        body: Any = None
        try:
            body = await _json_body(request, max_body_bytes)
            parsed = model.model_validate(body, context={"limits": limits})
        except (InvalidInputError, ValidationError) as exc:
            message = describe_errors(exc.errors()) if isinstance(exc, ValidationError) else str(exc)
            service.record(RequestInfo(task, "api", _loggable_text(body)), started, InvalidInputError(message))
            return error_response(422, message)
        info, fn, args = call(parsed)
        try:
            served = await service.run(info, fn, *args)
        except InvalidInputError as exc:
            return error_response(422, str(exc))
        except BusyError as exc:
            return error_response(503, str(exc), headers={"Retry-After": "2"})
        except ModelNotReadyError as exc:
            return error_response(503, str(exc), headers={"Retry-After": "5"})
        except Exception:  # logged with its traceback by the service
            return error_response(500, INTERNAL_ERROR)
        return JSONResponse(
            {**to_json(served.result), "request_id": served.request_id, "latency_ms": served.latency_ms}
        )

    @router.post("/api/classify", openapi_extra=_body_schema(ClassifyRequest))
    async def classify(request: Request) -> JSONResponse:
        def call(req: ClassifyRequest) -> Call:
            info = RequestInfo("classify", "api", req.text, len(req.labels))
            return info, engine.classify, (req.text, req.labels)

        return await handle(request, "classify", ClassifyRequest, call, classification_json)

    @router.post("/api/extract", openapi_extra=_body_schema(ExtractRequest))
    async def extract(request: Request) -> JSONResponse:
        def call(req: ExtractRequest) -> Call:
            info = RequestInfo("extract", "api", req.text, len(req.fields))
            return info, engine.extract, (req.text, req.fields, req.threshold, req.exclusive)

        return await handle(request, "extract", ExtractRequest, call, extraction_json)

    @router.post("/api/generate", openapi_extra=_body_schema(GenerateRequest))
    async def generate(request: Request) -> JSONResponse:
        def call(req: GenerateRequest) -> Call:
            info = RequestInfo("generate", "api", req.prompt)
            return info, engine.generate, (req.prompt, req.max_new_tokens)

        return await handle(request, "generate", GenerateRequest, call, generation_json)

    @router.get("/health")
    async def health() -> JSONResponse:
        status = engine.status
        driver_problem = service.gpu.driver_problem()
        if driver_problem:
            return JSONResponse({"status": "error", "reason": driver_problem, "device": status.device}, status_code=503)
        if not status.ready:
            reason = status.error if status.state == "error" and status.error else None
            return JSONResponse(
                {"status": status.state, "reason": reason or not_ready_reason(status.state, status.error)},
                status_code=503,
            )
        try:
            await anyio.to_thread.run_sync(engine.health_check)
        except Exception as exc:
            if not isinstance(exc, ModelNotReadyError):
                log.exception("health check failed")
            return JSONResponse({"status": "unhealthy", "reason": str(exc)}, status_code=503)
        return JSONResponse(
            {
                "status": "ok",
                "device": status.device,
                "dtype": status.dtype,
                "model_dir": status.model_dir,
                "is_demo": status.is_demo,
                "load_seconds": status.load_seconds,
            }
        )

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(render_metrics(), media_type=CONTENT_TYPE_LATEST)

    return router


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The request shape for /api/docs; bodies are parsed by hand so that limits come from the engine."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


async def _json_body(request: Request, max_bytes: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise InvalidInputError(f"the request body is {declared} bytes, more than {max_bytes}: send less text")
    raw = await request.body()
    if len(raw) > max_bytes:
        raise InvalidInputError(f"the request body is {len(raw)} bytes, more than {max_bytes}: send less text")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(
            f"the request body is not valid JSON ({exc}): send a JSON object with Content-Type: application/json"
        ) from None


def _loggable_text(body: Any) -> str:
    if isinstance(body, dict):
        for key in ("text", "prompt"):
            if isinstance(body.get(key), str):
                return body[key]
    return ""
