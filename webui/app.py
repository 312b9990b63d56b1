"""build_app: one FastAPI app with the JSON routes, /health, /metrics and the Gradio UI mounted at ``/``."""

from __future__ import annotations

import logging

import gradio as gr
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Mount
from starlette.types import ASGIApp

from model_loader.engine import Engine
from serving.remote import RemoteEngine

from .api import build_api_router, error_response, route_error
from .api_docs import render_docs
from .batch_tab import batch_dir
from .concurrency import ModelGate
from .evaluate_api import build_evaluate_router
from .metrics import Metrics
from .middleware import BasicAuthMiddleware, RequestIdMiddleware
from .outcomes import RouteError
from .page_liveness import page_script
from .service import Service
from .settings import ServerSettings
from .shutdown import ShutdownClock
from .status import GpuMonitor
from .tabs import UiContext
from .ui import CSS, build_blocks

log = logging.getLogger(__name__)


def build_app(engine: Engine, settings: ServerSettings, clock: ShutdownClock | None = None) -> FastAPI:
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

    app = FastAPI(title="SeqGPT-560M", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")

    @app.get("/api/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        return HTMLResponse(render_docs(app.openapi(), str(request.base_url)))

    # Routes first: the Gradio mount at "/" catches every path not matched before it. The
    # evaluation route comes before the API router, whose last route answers any other /api/ path.
    ctx = UiContext(engine, service, settings)
    app.include_router(build_evaluate_router(ctx))
    app.include_router(build_api_router(engine, service, metrics.render))

    blocks = build_blocks(ctx, gpu)
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
        max_file_size=settings.batch_max_bytes,
        ssr_mode=False,
        mcp_server=False,
        css=CSS,
        head=page_script(),
    )
    for routed in (app, _mounted_ui(app)):
        routed.add_exception_handler(404, _route_not_found)
        routed.add_exception_handler(405, _route_not_found)
    # Added last, so they wrap everything; the request id outermost, so a refused login has one too.
    if settings.auth is not None:
        app.add_middleware(BasicAuthMiddleware, user=settings.auth[0], password=settings.auth[1])
    app.add_middleware(RequestIdMiddleware)
    return app


def _mounted_ui(app: FastAPI) -> ASGIApp:
    return next(route.app for route in app.routes if isinstance(route, Mount))


async def _route_not_found(request: Request, exc: Exception) -> JSONResponse:
    """404 and 405 anywhere, in the UI's routes too, answer in the API's shape: error and request id."""
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    error = route_error(request.method, request.url.path, status)
    detail = getattr(exc, "detail", None)
    if status == 404 and detail not in (None, "Not Found"):
        # A route that exists said what it did not find (a file, a session): keep its words.
        error = RouteError(f"没有找到 · not found: {detail}", status=404)
    log.info("%s %s answered %d", request.method, request.url.path, error.status)
    return error_response(error)
