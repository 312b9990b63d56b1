"""build_app: one FastAPI app with the JSON routes, /health, /metrics and the Gradio UI mounted at ``/``."""

from __future__ import annotations

import gradio as gr
from fastapi import FastAPI

from model_loader.engine import Engine

from .api import build_api_router
from .batch_tab import batch_dir
from .concurrency import ModelGate
from .evaluate_api import build_evaluate_router
from .metrics import Metrics
from .middleware import BasicAuthMiddleware, RequestIdMiddleware
from .service import Service
from .settings import ServerSettings
from .status import GpuMonitor
from .tabs import UiContext
from .ui import CSS, build_blocks


def build_app(engine: Engine, settings: ServerSettings) -> FastAPI:
    """Wire the engine to HTTP and the UI. Cheap: it loads nothing; call ``engine.load()`` separately."""
    gpu = GpuMonitor()
    gate = ModelGate(settings.concurrency, settings.queue_size)
    metrics = Metrics(
        queue_depth=lambda: float(gate.waiting + engine.queue_depth),
        load_seconds=lambda: float(engine.status.load_seconds or 0.0),
        gpu=gpu.read,
    )
    service = Service(engine, gate, metrics, gpu)

    app = FastAPI(title="SeqGPT-560M", docs_url="/api/docs", redoc_url=None, openapi_url="/api/openapi.json")
    # Routes first: the Gradio mount at "/" catches every path not matched before it.
    app.include_router(build_api_router(engine, service, metrics.render))

    ctx = UiContext(engine, service, settings)
    app.include_router(build_evaluate_router(ctx))
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
    )
    # Added last, so they wrap everything: auth runs first, then the request id.
    app.add_middleware(RequestIdMiddleware)
    if settings.auth is not None:
        app.add_middleware(BasicAuthMiddleware, user=settings.auth[0], password=settings.auth[1])
    return app
