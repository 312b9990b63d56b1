"""``POST /api/evaluate``: a labelled file in (multipart), the evaluation report out as JSON."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import FormData

from evaluation import SUMMARY_CHARS
from model_loader.errors import InvalidInputError
from model_loader.text.files import decode_text, undecodable

from ..api.forms import form_file, read_form
from ..api.routes import error_response
from ..batch.tab import batch_dir
from ..logging_setup import REQUEST_ID
from ..outcomes import too_large
from ..service.request import RequestInfo
from ..ui.tabs import UiContext
from .job import load_gold, predict_all, summary_length, write_outputs

USAGE = ("请以表单上传 · send multipart/form-data with `file` (labelled JSONL or CSV), `task` (classify, "
         "extract or summarize) and optionally `map` (KEY=VALUE pairs) or, for summarize, `max_chars`, e.g. "
         "curl -F file=@dev.jsonl -F task=classify URL/api/evaluate")


# The form for /api/docs and openapi.json; the route reads it by hand, within the batch limits.
FORM_SCHEMA = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object",
    "required": ["file", "task"],
    "properties": {
        "file": {"type": "string", "format": "binary", "examples": ["@tests/data/eval_tnews_sample.jsonl"],
                 "description": "labelled JSONL or CSV (UTF-8 or GB18030)"},
        "task": {"type": "string", "enum": ["classify", "extract", "summarize"], "examples": ["classify"],
                 "description": "summarize: rows with `text` (or LCSTS's `content`) and a reference `summary`; "
                                "scored by ROUGE-1/2/L on characters"},
        "max_chars": {"type": "integer", "examples": [SUMMARY_CHARS],
                      "description": f"summarize: the longest summary asked for (default {SUMMARY_CHARS})"},
        "map": {"type": "string", "examples": ["news_finance=财经,news_sports=体育"],
                "description": "label or field map: KEY=VALUE pairs, comma-separated or one per line, or a file"},
    },
}}}}}


def build_evaluate_router(ctx: UiContext) -> APIRouter:
    router = APIRouter()

    @router.post("/api/evaluate", openapi_extra=FORM_SCHEMA,
                 summary="评测 Evaluate: a labelled file in, accuracy / F1 and every prediction out")
    async def evaluate(request: Request) -> JSONResponse:
        started = time.perf_counter()
        info = RequestInfo("evaluate", "api", "")
        try:
            gold, max_chars = await _read_upload(request, ctx)
            records = await predict_all(ctx.service, gold, lambda _done: None, max_chars)
            report, _paths = write_outputs(gold, records, batch_dir(ctx) / REQUEST_ID.get())
        except Exception as exc:  # the outcome table says what each error means; a row's own errors stay in its record
            ctx.service.record(info, started, exc)
            return error_response(exc)
        ctx.service.record(RequestInfo("evaluate", "api", "", len(gold.names), rows=len(records)), started, None)
        return JSONResponse({**report, "predictions": records, "request_id": REQUEST_ID.get()})

    return router


async def _read_upload(request: Request, ctx: UiContext):
    limit = ctx.settings.batch_max_bytes

    def upload_too_large(size: int, at_least: bool) -> str:
        return too_large("文件", "the upload", size, limit,
                         "evaluate a smaller sample, or raise SEQGPT_BATCH_MAX_BYTES", at_least)

    form = await read_form(request, limit, upload_too_large, USAGE, max_files=2, max_fields=5)
    try:
        return await _read_fields(form, ctx)
    finally:
        await form.close()


async def _read_fields(form: FormData, ctx: UiContext):
    upload, task, map_text = form_file(form, "file", USAGE), form.get("task"), form.get("map") or ""
    if not isinstance(task, str):
        raise InvalidInputError(f"缺少任务 · `task` is missing: {USAGE}")
    if not isinstance(map_text, str):  # the map sent as a file (curl -F map=@map.txt)
        data = await map_text.read(64 * 1024)
        decoded = decode_text(data)  # as every upload: UTF-8, else GB18030
        if decoded is None:
            raise InvalidInputError(f"{undecodable(data)} (the map)")
        map_text = decoded
    max_chars = summary_length(ctx.engine.settings, form.get("max_chars"))
    data = await upload.read(ctx.settings.batch_max_bytes + 1)
    gold = load_gold(data, upload.filename or "upload.jsonl", task, map_text, ctx.settings, ctx.engine.settings)
    return gold, max_chars
