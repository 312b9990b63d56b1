"""The Gradio Blocks: status bar, demo-weights banner, device switch and the four tabs."""

from __future__ import annotations

import logging
from typing import Any

import anyio.to_thread
import gradio as gr

from ..batch.tab import batch_tab
from ..evaluate.tab import evaluate_tab
from ..history.tab import history_tab
from ..kb.schemas import SummaryMetrics
from ..kb.service import KnowledgeBase
from ..kb.tab import knowledge_tab
from ..service.status import GpuMonitor, format_status
from .page_liveness import activity_html
from .tabs import UiContext, classification_tab, extraction_tab, prompt_tab, start_ui_request, ui_error

log = logging.getLogger(__name__)

DEMO_BANNER = (
    "⚠️ **演示权重 Demo weights.** 当前加载的是随机初始化的演示模型，输出没有意义。"
    "安装真实模型：在项目目录运行 `.venv/bin/python scripts/download_model.py`"
    "（Docker 镜像内：`python scripts/download_model.py`；已有副本：放进目标目录并加 `--source none`），"
    "它会同时把设置文件 `seqgpt560m.env` 指向新模型；"
    "然后重启：`scripts/supervisorctl restart seqgpt560m`（镜像内：`supervisorctl restart seqgpt560m`）。 · "
    "The loaded weights are random demo weights: their output is meaningless. Install the real model with "
    "`.venv/bin/python scripts/download_model.py` from the project folder (in the Docker image: "
    "`python scripts/download_model.py`; for a copy you have, put it in place and add `--source none`), "
    "which also points `SEQGPT_MODEL_DIR` in `seqgpt560m.env` at it; "
    "then restart: `scripts/supervisorctl restart seqgpt560m` (in the image: `supervisorctl restart seqgpt560m`)."
)

CSS = """
#seqgpt-demo-banner { background: #fff6e0; border: 1px solid #f0c36d; border-radius: 6px; padding: 8px 12px; }
/* No column of the batch results may grow past this, so label, score and error stay on screen. */
#batch-table th, #batch-table td { max-width: 16rem; }
/* The worst errors: text, expected and the model's answer side by side, each wrapped in its column. */
#evaluate-errors th, #evaluate-errors td { max-width: 14rem; white-space: normal; overflow-wrap: anywhere; }
"""

DEVICE_CHOICES = [("GPU", "cuda"), ("CPU", "cpu")]


def build_blocks(ctx: UiContext, gpu: GpuMonitor, kb: tuple[KnowledgeBase, SummaryMetrics] | None = None) -> gr.Blocks:
    """The whole UI. Nothing here touches the model until a user acts."""
    devices = ctx.engine.available_devices()
    embedder = kb[0].embedder if kb is not None else None

    def refresh() -> tuple[str, Any]:
        status = ctx.engine.status
        embedding = embedder.status if embedder is not None else None
        activity = activity_html(ctx.runs, ctx.service.gate.running, ctx.service.gate.waiting,
                                 ctx.engine.queued_seconds)
        return format_status(status, gpu.read(), embedding).html + activity, gr.update(visible=status.is_demo)

    with gr.Blocks(title="SeqGPT-560M", analytics_enabled=False, delete_cache=(3600, 86400)) as blocks:
        gr.Markdown("## SeqGPT-560M 开放域理解 · Zero-shot classification and extraction")
        status_bar = gr.HTML(format_status(ctx.engine.status, gpu.read()).html, elem_id="seqgpt-status")
        banner = gr.Markdown(DEMO_BANNER, visible=ctx.engine.status.is_demo, elem_id="seqgpt-demo-banner")
        if "cuda" in devices:
            _device_switch(ctx)
        with gr.Tabs():
            classification_tab(ctx)
            extraction_tab(ctx)
            prompt_tab(ctx)
            batch_tab(ctx)
            evaluate_tab(ctx)
            if kb is not None:
                knowledge_tab(ctx, *kb)
            history_tab(ctx)
        timer = gr.Timer(ctx.settings.status_refresh_s)
        # Outside the queue, so the status bar keeps refreshing while every model slot is busy.
        timer.tick(refresh, None, [status_bar, banner], queue=False, show_progress="hidden",
                   api_visibility="private")
        blocks.load(refresh, None, [status_bar, banner], queue=False, show_progress="hidden",
                    api_visibility="private")
    # Gradio counts only waiting events and refuses all of them at max_size=0, hence the floor of 1.
    # A full Gradio queue shows "This application is currently busy. Please try again."
    blocks.queue(max_size=max(1, ctx.settings.queue_size), default_concurrency_limit=ctx.settings.concurrency)
    return blocks


def _device_switch(ctx: UiContext) -> None:
    current = "cpu" if ctx.engine.status.device.startswith("cpu") else "cuda"
    switch = gr.Radio(DEVICE_CHOICES, value=current, label="运行设备 Device",
                      info="切换会重新加载模型 · Switching reloads the model", elem_id="seqgpt-device")

    async def switch_device(device: str) -> None:
        start_ui_request()
        log.info("device switch to %s requested from the UI", device)
        try:
            await anyio.to_thread.run_sync(ctx.engine.switch_device, device)
        except Exception as exc:
            log.exception("device switch to %s failed", device)
            raise ui_error(exc) from None
        gr.Info(f"已切换到 {device} · Now running on {device}")

    switch.change(switch_device, switch, None, api_visibility="private", concurrency_limit=1)
