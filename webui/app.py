"""build_app: one FastAPI app with the JSON routes, /health, /metrics and the Gradio UI mounted at ``/``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import cast

import gradio as gr
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Mount

from model_loader.embedding import Embedder
from model_loader.interface import EngineAPI
from serving.remote import RemoteEngine

from .api.docs import render_docs
from .api.middleware import BasicAuthMiddleware, RequestIdMiddleware
from .api.route_table import RouteTable, route_table
from .api.routes import build_api_router, error_response
from .batch.tab import batch_dir
from .evaluate.routes import build_evaluate_router
from .history.metrics import watch_history
from .history.room import HistoryRoom
from .history.routes import build_history_router
from .jobs.metrics import JobMetrics
from .jobs.room import JobsRoom
from .jobs.routes import build_jobs_router
from .kb.routes import build_kb_router
from .kb.schemas import SummaryMetrics
from .kb.service import KnowledgeBase
from .kb.settings import KbSettings
from .outcomes import RouteError
from .service.gate import ModelGate
from .service.metrics import Metrics
from .service.request import Service
from .service.shutdown import ShutdownClock
from .service.status import GpuMonitor
from .settings import ServerSettings
from .ui.page import CSS, build_blocks
from .ui.page_liveness import page_script
from .ui.tabs import UiContext

log = logging.getLogger(__name__)


def build_app(engine: EngineAPI, settings: ServerSettings, clock: ShutdownClock | None = None) -> FastAPI:
    """Wire the engine to HTTP and the UI. Cheap: it loads nothing; call ``engine.load()`` separately.
    ``clock`` is the server's shutdown clock (see shutdown.py); without one, nothing is cut short."""
    gpu = GpuMonitor(engine.settings.device)
    gate = ModelGate(settings.concurrency, settings.queue_size)
    metrics = Metrics(
        queue_depth=lambda: float(gate.waiting + engine.queue_depth),
        load_seconds=lambda: float(engine.status.load_seconds or 0.0),
        gpu=gpu.read,
        answers_by_replica=engine.answers_by_replica if isinstance(engine, RemoteEngine) else None,
    )
    service = Service(engine, gate, metrics, gpu, clock or ShutdownClock())
    job_metrics = JobMetrics(metrics.registry)
    jobs = JobsRoom(engine, gate, settings, job_metrics.count_rows)
    job_metrics.watch(lambda: jobs.need_store().count_by_state())
    history = HistoryRoom(engine, settings)
    service.history = history if history.on else None
    if jobs.runner is not None and history.on:
        jobs.runner.on_commit = history.record_job_rows
    watch_history(metrics.registry, history)

    app = FastAPI(title="SeqGPT-560M", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")

    @app.get("/api/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        return HTMLResponse(render_docs(app.openapi(), str(request.base_url)))

    # Routes first: the Gradio mount at "/" catches every path not matched before it. The
    # evaluation route comes before the API router, whose last route answers any other /api/ path.
    ctx = UiContext(engine, service, settings, jobs, history)
    # The knowledge base uses the engine's GTE; behind replicas (no embedder in the engine) one of its own.
    embedder = getattr(engine, "embedder", None) or Embedder()
    kb = KnowledgeBase(embedder, KbSettings.from_env(workspace=settings.workspace))
    summaries = SummaryMetrics(metrics.registry)
    routers = (
        build_evaluate_router(ctx),
        build_kb_router(engine, service, kb, summaries),
        build_history_router(history, service),
        build_jobs_router(jobs, service),
        build_api_router(engine, service, metrics.render),
    )
    for router in routers:
        app.include_router(router)
    app.state.route_table = RouteTable([*app.routes, *(route for router in routers for route in router.routes)])
    app.router.on_startup.append(history.start)
    app.router.on_shutdown.append(history.stop)
    # The runner starts with the server (it waits for the model itself) and stops with it.
    app.router.on_startup.append(jobs.start)
    app.router.on_shutdown.append(jobs.stop)

    blocks = build_blocks(ctx, gpu, (kb, summaries))
    results = batch_dir(ctx)
    results.mkdir(parents=True, exist_ok=True)
    gr.mount_gradio_app(
        app,
        blocks,
        path="/",
        server_name=settings.host,
        server_port=settings.port,
        footer_links=["api", "settings"],
        allowed_paths=[str(results)],
        max_file_size=max(settings.batch_max_bytes, settings.jobs_max_bytes),  # big files go to jobs
        ssr_mode=False,
        mcp_server=False,
        css=CSS,
        head=page_script(),
    )
    not_found = _route_not_found(app)
    for routed in (app, _mounted_ui(app)):
        routed.add_exception_handler(404, not_found)
        routed.add_exception_handler(405, not_found)
    # Added last, so they wrap everything; the request id outermost, so a refused login has one too.
    if settings.auth is not None:
        app.add_middleware(BasicAuthMiddleware, user=settings.auth[0], password=settings.auth[1])
    app.add_middleware(RequestIdMiddleware)
    return app


def _mounted_ui(app: FastAPI) -> FastAPI:
    # Gradio mounts its own FastAPI app (gradio.routes.App) at "/".
    return cast(FastAPI, next(route.app for route in app.routes if isinstance(route, Mount)))


def _route_not_found(app: FastAPI) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """404 and 405 anywhere, in the UI's routes too, answer in the API's shape: error and request id."""

    async def route_not_found(request: Request, exc: Exception) -> JSONResponse:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        error = route_table(app).error(request.method, request.url.path)
        detail = getattr(exc, "detail", None)
        if status == 404 and detail not in (None, "Not Found"):
            # A route that exists said what it did not find (a file, a session): keep its words.
            error = RouteError(f"没有找到 · not found: {detail}", status=404)
        elif status == 405 and error.status == 404:
            # A UI route (not in the table) that takes other methods: Starlette's Allow says which.
            allow = (getattr(exc, "headers", None) or {}).get("Allow")
            use = f": use {allow.replace(', ', ' or ')}" if allow else ""
            error = RouteError(f"方法不允许 · {request.method} is not allowed on {request.url.path}{use}",
                               status=405, allow=allow)
        log.info("%s %s answered %d", request.method, request.url.path, error.status)
        return error_response(error)

    return route_not_found
