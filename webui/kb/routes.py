"""The knowledge base's JSON routes (/api/kb/...) and /api/summarize; errors answered through the outcome table."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from model_loader.interface import EngineAPI
from model_loader.tasks.options import SummarizeRequest

from ..api.forms import form_file, is_form, read_form
from ..api.routes import error_response, read_json_body
from ..logging_setup import REQUEST_ID
from ..outcomes import BodyTooLargeError, too_large
from ..service.request import RequestInfo, Service
from .documents import FILE_HINT, NewDocument, check_id, from_file, from_json
from .schemas import SummaryMetrics, document_json, hit_json, json_object, summarize_request, summary_json
from .service import KnowledgeBase

USAGE_SEARCH = 'send {"query": "电脑蓝屏怎么办", "top_k": 5}'
# A query is a question, not a document: its body is held to this.
QUERY_MAX_BYTES = 64 * 1024
QUERY_FIX = f"send a shorter query (a search or question body is at most {QUERY_MAX_BYTES // 1024} KiB)"
UPLOAD_FIX = "split the documents over several uploads, or raise SEQGPT_KB_MAX_UPLOAD_BYTES"
SUMMARY_FIX = "send a shorter text (the limit follows SEQGPT_MAX_TEXT_CHARS)"


def build_kb_router(engine: EngineAPI, service: Service, kb: KnowledgeBase, summaries: SummaryMetrics) -> APIRouter:
    router = APIRouter()
    limits = kb.settings

    async def answer(task: str, text: str, work: Callable[[], Awaitable[dict[str, Any]]]) -> JSONResponse:
        """Run ``work``, log and count it like every request, and answer its JSON or its error."""
        started = time.perf_counter()
        try:
            # A stop's grace period ends the wait with a 503 saying so, as for the model's routes.
            body = await service.clock.race(work())
        except Exception as exc:  # the outcome table decides what each error means
            service.record(RequestInfo(task, "api", text), started, exc)
            return error_response(exc)
        service.record(RequestInfo(task, "api", text), started, None)
        latency = round((time.perf_counter() - started) * 1000, 1)
        return JSONResponse({**body, "request_id": REQUEST_ID.get(), "latency_ms": latency})

    @router.post("/api/kb/documents")
    async def add_documents(request: Request) -> JSONResponse:
        async def work() -> dict[str, Any]:
            docs = await _read_documents(request, kb)
            removed: list[str] = []
            if docs[0].file:  # an uploaded file: it replaces its earlier upload
                stored, removed = await anyio.to_thread.run_sync(kb.add_file, docs)
            else:
                stored = await anyio.to_thread.run_sync(kb.add, docs)
            return {"documents": [{"doc_id": d.doc_id, "chunks": d.chunks} for d in stored], "removed": removed}

        return await answer("kb_add", "", work)

    @router.get("/api/kb/documents")
    async def list_documents() -> JSONResponse:
        async def work() -> dict[str, Any]:
            docs = await anyio.to_thread.run_sync(kb.documents)
            return {"documents": [document_json(d) for d in docs], "store": kb.where}

        return await answer("kb_list", "", work)

    @router.delete("/api/kb/documents/{doc_id:path}")
    async def delete_document(doc_id: str) -> JSONResponse:
        async def work() -> dict[str, Any]:
            check_id(doc_id)
            await anyio.to_thread.run_sync(kb.delete, doc_id)
            return {"deleted": doc_id}

        return await answer("kb_delete", doc_id, work)

    @router.get("/api/kb/ingestions")
    async def ingestions() -> JSONResponse:
        return JSONResponse({"ingestions": [vars(i) for i in kb.ingestions.values()]})

    @router.post("/api/kb/search")
    async def search(request: Request) -> JSONResponse:
        body: dict[str, Any] = {}

        async def work() -> dict[str, Any]:
            body.update(json_object(await read_json_body(request, QUERY_MAX_BYTES, QUERY_FIX), USAGE_SEARCH))
            query, top_k = kb.check_query(body.get("query"), body.get("top_k", 5))
            hits = await anyio.to_thread.run_sync(kb.search, query, top_k)
            return {"hits": [hit_json(h) for h in hits]}

        return await answer("kb_search", "", work)

    @router.post("/api/summarize")
    async def summarize(request: Request) -> JSONResponse:
        started = time.perf_counter()
        try:
            body = await read_json_body(request, 8 * engine.settings.max_text_chars + 4096, SUMMARY_FIX)
            asked = summarize_request(body, engine.settings)
        except Exception as exc:  # refused before the model: logged here
            service.record(RequestInfo("summarize", "api", ""), started, exc)
            return error_response(exc)
        try:
            served = await service.run(
                RequestInfo("summarize", "api", asked.text), engine.summarize, asked.text, asked.max_chars
            )
        except Exception as exc:  # logged by the service
            return error_response(exc)
        summaries.observe(served.result)
        return JSONResponse({**summary_json(served.result), "request_id": served.request_id,
                             "latency_ms": served.latency_ms})

    @router.post("/api/kb/ask")
    async def ask(request: Request) -> JSONResponse:
        started = time.perf_counter()
        try:
            body = json_object(await read_json_body(request, QUERY_MAX_BYTES, QUERY_FIX), USAGE_SEARCH)
            query, top_k = kb.check_query(body.get("query"), body.get("top_k", 3))
            # The summary's length is checked now, with the query standing in for the texts found.
            max_chars = SummarizeRequest.checked(engine.settings, text=query, max_chars=body.get("max_chars")).max_chars
            hits = await anyio.to_thread.run_sync(kb.search, query, top_k)
        except Exception as exc:
            service.record(RequestInfo("kb_ask", "api", ""), started, exc)
            return error_response(exc)
        summary = None
        if hits:
            joined = "\n".join(hit.text for hit in hits)
            asked = {"query": query, "top_k": top_k, "max_chars": max_chars,
                     "sources": [{"doc_id": hit.doc_id, "chunk_id": hit.chunk_id} for hit in hits], "passages": joined}
            try:
                served = await service.run(RequestInfo("kb_ask", "api", query, asked=asked), engine.summarize, joined,
                                           max_chars)
            except Exception as exc:  # logged by the service
                return error_response(exc)
            summaries.observe(served.result)
            summary = summary_json(served.result)
        latency = round((time.perf_counter() - started) * 1000, 1)
        return JSONResponse({"hits": [hit_json(h) for h in hits], "summary": summary,
                             "request_id": REQUEST_ID.get(), "latency_ms": latency})

    async def _read_documents(request: Request, kb: KnowledgeBase) -> list[NewDocument]:
        """The documents sent, as JSON or as an uploaded file (then each names it in ``file``)."""
        if is_form(request):
            form = await read_form(request, limits.max_upload_bytes, _too_large, FILE_HINT, max_files=1, max_fields=4)
            try:
                upload = form_file(form, "file", f"{FILE_HINT}, e.g. curl -F file=@guide.txt")
                data = await upload.read(limits.max_upload_bytes + 1)
            finally:
                await form.close()
            if len(data) > limits.max_upload_bytes:
                raise BodyTooLargeError(_too_large(len(data)))
            return from_file(upload.filename or "", data, limits.max_documents)
        body = await read_json_body(request, limits.max_upload_bytes, UPLOAD_FIX)
        return from_json(body, limits.max_documents)

    def _too_large(size: int, at_least: bool = False) -> str:
        return too_large("文件", "the upload", size, limits.max_upload_bytes, UPLOAD_FIX, at_least)

    return router
