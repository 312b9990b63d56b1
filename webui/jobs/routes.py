"""The jobs' HTTP routes: POST /api/jobs (multipart), GET /api/jobs[/{id}[/results]], DELETE /api/jobs/{id}."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from model_loader.errors import InvalidInputError

from ..api.forms import form_file, read_form
from ..api.routes import answer_in_thread, error_response
from ..logging_setup import REQUEST_ID
from ..service.request import RequestInfo, Service
from .files import csv_header, csv_line, csv_text, jsonl_line
from .room import JobsRoom, file_too_large

# Multipart framing and the form fields around the file.
FORM_USAGE = ("send the file as the multipart/form-data field `file`, "
              "e.g. curl -F file=@tickets.csv -F task=classify -F labels=投诉,咨询")
_SUBMIT_FORM = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object",
            "required": ["file", "task"],
            "properties": {
                "file": {"type": "string", "format": "binary", "description": "CSV, JSONL or TXT"},
                "task": {"type": "string", "enum": ["classify", "extract"]},
                "labels": {"type": "string", "description": "comma-separated, for classify"},
                "fields": {"type": "string", "description": "comma-separated, for extract"},
                "threshold": {"type": "number"},
                "exclusive": {"type": "boolean"},
                "text_column": {"type": "string"},
            },
        }}},
    }
}


def build_jobs_router(room: JobsRoom, service: Service) -> APIRouter:
    router = APIRouter()

    async def answer(request: Request, work: Any, *args: Any, status: int = 200, log_it: bool = False) -> Any:
        return await answer_in_thread(service, "jobs", request, work, *args, status=status, log_it=log_it)

    @router.post("/api/jobs", status_code=202, openapi_extra=_SUBMIT_FORM)
    async def submit(request: Request) -> Any:
        started = time.perf_counter()
        limit = room.settings.jobs_max_bytes
        try:
            form = await read_form(request, limit, lambda size, at_least: file_too_large(size, limit, at_least),
                                   FORM_USAGE, max_files=1, max_fields=16)
        except Exception as exc:
            service.record(RequestInfo("jobs", "api", ""), started, exc)
            return error_response(exc)
        try:
            task = str(form.get("task") or "")
            names = form.get("labels") if task == "classify" else form.get("fields")
            names = names if names is not None else form.get("labels") or form.get("fields")

            def accept() -> dict[str, Any]:
                job_request = room.check_request(
                    task, str(names or ""), form.get("threshold"), form.get("exclusive"),
                    str(form.get("text_column") or ""),
                )
                upload = form_file(form, "file", FORM_USAGE)
                job = room.submit(job_request, upload.file, upload.filename or "")
                return {"job_id": job.id, "state": job.state, "rows_total": job.rows_total,
                        "request_id": REQUEST_ID.get()}

            return await answer(request, accept, status=202, log_it=True)
        finally:
            await form.close()

    @router.get("/api/jobs")
    async def list_jobs(request: Request) -> Any:
        def work() -> dict[str, Any]:
            jobs, next_before = room.page(request.query_params.get("limit"), request.query_params.get("before"))
            return {"jobs": [room.to_json(job) for job in jobs], "next_before": next_before}

        return await answer(request, work)

    @router.get("/api/jobs/{job_id}")
    async def get_job(request: Request, job_id: str) -> Any:
        return await answer(request, lambda: room.to_json(room.job(job_id)))

    @router.get("/api/jobs/{job_id}/results")
    async def results(request: Request, job_id: str, format: str = "jsonl") -> Any:  # noqa: A002 - the API's name
        started = time.perf_counter()
        try:
            if format not in ("jsonl", "csv"):
                raise InvalidInputError(f"格式不对 · format is {format!r}: ask for format=jsonl or format=csv")
            job = await anyio.to_thread.run_sync(room.job, job_id)
        except Exception as exc:
            service.record(RequestInfo("jobs", "api", request.url.path), started, exc)
            return error_response(exc)
        store = room.need_store()

        def lines() -> Iterator[str]:
            if format == "csv":
                yield "\ufeff" + csv_text(csv_header(job.task, job.columns, job.names))  # BOM: Excel reads Chinese
            for row, source, result, error in store.results(job.id):
                if format == "csv":
                    yield csv_line(job.task, job.columns, job.names, row, source, result, error)
                else:
                    yield jsonl_line(row, source, result, error)

        media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson; charset=utf-8"
        name = f"job-{job.id}-results.{format}"
        return StreamingResponse(lines(), media_type=media,
                                 headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @router.delete("/api/jobs/{job_id}")
    async def delete_job(request: Request, job_id: str) -> Any:
        def act() -> dict[str, Any]:
            flag = request.query_params.get("purge", "false").lower()
            if flag not in ("true", "false", "1", "0"):
                raise InvalidInputError(f"purge 取值不对 · purge is {flag!r}: send ?purge=true, or leave it out")
            if flag in ("true", "1"):
                room.purge(job_id)
                return {"job_id": job_id, "purged": True}
            return room.to_json(room.cancel(job_id))

        return await answer(request, act, log_it=True)

    return router

