"""The history's HTTP routes: GET/DELETE /api/requests, GET /api/requests/{id}, its feedback, and the export."""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ..api.routes import answer_in_thread, error_response, read_json_body
from ..logging_setup import REQUEST_ID
from ..service.request import RequestInfo, Service
from .room import HistoryRoom, stored_json

FEEDBACK_MAX_BYTES = 256 * 1024


def authenticated_user(request: Request, auth_on: bool) -> str | None:
    """The basic-auth user who sent the request; the middleware has already refused any wrong password."""
    if not auth_on:
        return None
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    try:
        user = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")[0]
    except (binascii.Error, ValueError):
        return None
    return user if scheme.lower() == "basic" and user else None


def build_history_router(room: HistoryRoom, service: Service) -> APIRouter:
    router = APIRouter()

    async def answer(request: Request, work: Any, *args: Any, log_it: bool = False) -> Any:
        return await answer_in_thread(service, "history", request, work, *args, log_it=log_it)

    @router.get("/api/requests")
    async def list_requests(request: Request) -> Any:
        query = request.query_params

        def work() -> dict[str, Any]:
            found, next_before = room.page(query.get("task"), query.get("q"), query.get("feedback"),
                                           query.get("limit"), query.get("before"))
            return {"requests": [stored_json(stored) for stored in found], "next_before": next_before}

        return await answer(request, work)

    @router.delete("/api/requests")
    async def erase(request: Request) -> Any:
        before = request.query_params.get("before")
        return await answer(request, lambda: {"erased": room.erase_before(before), "before": before}, log_it=True)

    @router.get("/api/requests/{request_id}")
    async def get_request(request: Request, request_id: str) -> Any:
        return await answer(request, lambda: stored_json(room.get(request_id)))

    @router.post("/api/requests/{request_id}/feedback")
    async def feedback(request: Request, request_id: str) -> Any:
        started = time.perf_counter()
        try:
            body = await read_json_body(request, FEEDBACK_MAX_BYTES,
                                        f"send a shorter correction (at most {FEEDBACK_MAX_BYTES // 1024} KiB)")
        except Exception as exc:
            service.record(RequestInfo("feedback", "api", ""), started, exc)
            return error_response(exc)
        user = authenticated_user(request, room.settings.auth is not None)
        return await answer(request, lambda: {**stored_json(room.set_feedback(request_id, body, user)),
                                              "feedback_request_id": REQUEST_ID.get()}, log_it=True)

    @router.get("/api/feedback/export")
    async def export(request: Request) -> Any:
        started = time.perf_counter()
        task = request.query_params.get("task", "")
        try:
            lines = await anyio.to_thread.run_sync(lambda: list(room.export(task)))
        except Exception as exc:
            service.record(RequestInfo("history", "api", request.url.path), started, exc)
            return error_response(exc)
        return StreamingResponse(iter(lines), media_type="application/x-ndjson; charset=utf-8",
                                 headers={"Content-Disposition": f'attachment; filename="feedback-{task}.jsonl"'})

    return router
