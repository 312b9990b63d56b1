"""The classification, extraction and free-prompt tabs, and how their handlers reach the engine."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import gradio as gr

from model_loader.errors import InvalidInputError
from model_loader.interface import EngineAPI
from model_loader.settings import Settings
from model_loader.tasks.options import ClassifyRequest, ExtractRequest, GenerateRequest, count_names

from ..api.schemas import extraction_json
from ..logging_setup import REQUEST_ID, new_request_id
from ..outcomes import outcome_of, user_message
from ..service.request import RequestInfo, Served, Service
from ..settings import ServerSettings
from . import examples
from .page_liveness import LongRuns
from .render import (
    TABLE_HEADERS,
    details_line,
    extraction_markdown,
    extraction_rows,
    highlight_spans,
    output_capped_note,
)

T = TypeVar("T")
FORMATS = [("JSON", "json"), ("表格 Table", "table"), ("Markdown", "markdown")]


@dataclass(frozen=True)
class UiContext:
    engine: EngineAPI
    service: Service
    settings: ServerSettings
    jobs: Any = None  # the durable jobs (webui/jobs/room.py JobsRoom); None where a tab is built without them
    history: Any = None  # the request history (webui/history/room.py HistoryRoom); None: no History tab
    runs: LongRuns = field(default_factory=LongRuns)  # batches and evaluations now, for the status bar


# Gradio renders a toast's text as (sanitised) HTML, and gradio_client hands the same text to
# programs. Full-width look-alikes keep user text from being read as markup in the one, and
# readable, unescaped, in the other.
_MARKUP = str.maketrans({"<": "＜", ">": "＞", "&": "＆"})


def ui_error(exc: BaseException) -> gr.Error:
    """A calm error toast for the UI and the Gradio API, worded by the outcome table, with the request id.

    Gradio's toast shows its type ("Error") as the heading whatever title it is given, so the
    outcome's bilingual title starts the message instead."""
    outcome = outcome_of(exc)
    request_id = REQUEST_ID.get()
    words = user_message(exc, request_id)
    # "没有这个任务 No such job: 没有这个任务 · there is no job …" would say its Chinese twice.
    said = outcome.title.split(" ")[0] + " · "
    words = words.removeprefix(said)
    message = f"{outcome.title}: {words} · 请求 Request {request_id}"
    return gr.Error(message.translate(_MARKUP), title=outcome.title, print_exception=False)


def failure_text(error: gr.Error) -> str:
    """A whole run (batch, evaluation) that failed, said where its results would have been: it stays
    on the page, unlike a toast, and replaces the results of the run before."""
    return f"❌ **{error.message}**"


def schema_slider(*args: Any, **kwargs: Any) -> gr.Slider:
    """A slider whose value is checked by the request schema, like every other input.

    Gradio's own range check raises before the handler runs, so a value sent through the
    Gradio API got a traceback in the log and no request line; unchecked here, it gets the
    same calm message and ``outcome=invalid`` line as any bad input. (A subclass would do
    the same, but Gradio writes a .pyi file beside the module of every Component subclass.)"""
    slider = gr.Slider(*args, **kwargs)
    slider.preprocess = _as_sent  # type: ignore[method-assign]
    return slider


def _as_sent(payload: Any) -> Any:
    return payload


def answer_on_click(button: gr.Button, fn: Callable[..., Any], inputs: list[Any], outputs: list[Any],
                    api_name: str) -> None:
    """``fn`` answers the click, after the last answer is cleared: an error toast must not sit over
    the previous input's answer and its request id, as if they answered this one."""

    def cleared() -> tuple[None, ...]:
        return (None,) * len(outputs)

    button.click(cleared, None, outputs, queue=False, show_progress="hidden", api_visibility="private").then(
        fn, inputs, outputs, api_name=api_name)


def start_ui_request() -> str:
    """Each UI event is a request of its own, with a fresh id for its log lines."""
    request_id = new_request_id()
    REQUEST_ID.set(request_id)
    return request_id


def validate(ctx: UiContext, info: RequestInfo, check: Callable[[Settings], T]) -> T:
    """The engine's checked request type, as the JSON API builds it; bad input is logged and shown, and never
    reaches the model."""
    started = time.perf_counter()
    try:
        return check(ctx.engine.settings)
    except InvalidInputError as exc:
        ctx.service.record(info, started, exc)
        raise ui_error(exc) from None


async def call_engine(ctx: UiContext, info: RequestInfo, fn: Any, *args: Any) -> Served[Any]:
    """Run an engine call for the UI; every failure becomes the toast the outcome table words."""
    try:
        return await ctx.service.run(info, fn, *args)
    except Exception as exc:  # logged by the service, with a traceback when unexpected
        raise ui_error(exc) from None


def classification_tab(ctx: UiContext) -> None:
    with gr.Tab("文本分类 Classification", id="classify"):
        with gr.Row():
            with gr.Column():
                text = gr.Textbox(label="文本 Text", lines=6, placeholder="粘贴要分类的文本 · Paste a text",
                                  elem_id="classify-text")
                labels = gr.Textbox(label="标签 Labels（逗号分隔 · comma-separated）", placeholder="财经，体育，科技",
                                    elem_id="classify-labels")
                run = gr.Button("分类 Classify", variant="primary", elem_id="classify-run")
            with gr.Column():
                result = gr.Label(label="结果与置信度 Label and confidence", elem_id="classify-result")
                details = gr.Markdown(elem_id="classify-details")
        gr.Examples(examples.CLASSIFY, inputs=[text, labels], label="示例 Examples")

    async def classify(text: str, labels: str) -> tuple[dict[str, float], str]:
        start_ui_request()
        req = validate(ctx, RequestInfo("classify", "ui", text or "", count_names(labels)),
                       lambda limits: ClassifyRequest.checked(limits, text=text, labels=labels))
        info = RequestInfo("classify", "ui", req.text, len(req.labels))
        served = await call_engine(ctx, info, ctx.engine.classify, req.text, req.labels)
        return dict(served.result.scores), details_line(served.request_id, served.latency_ms, served.result.pieces)

    answer_on_click(run, classify, [text, labels], [result, details], api_name="classify")


def extraction_tab(ctx: UiContext) -> None:
    with gr.Tab("信息抽取 Extraction", id="extract"):
        with gr.Row():
            with gr.Column():
                text = gr.Textbox(label="文本 Text", lines=6, placeholder="粘贴要抽取的文本 · Paste a text",
                                  elem_id="extract-text")
                fields = gr.Textbox(label="字段 Fields（逗号分隔 · comma-separated）",
                                    placeholder="公司名称，金额，时间", elem_id="extract-fields")
                threshold = schema_slider(0.0, 1.0, value=0.0, step=0.05, label="置信度阈值 Confidence threshold")
                run = gr.Button("抽取 Extract", variant="primary", elem_id="extract-run")
            with gr.Column():
                highlighted = gr.HighlightedText(label="原文标注 Highlighted in the text", show_legend=True,
                                                 elem_id="extract-highlight")
                output_format = gr.Radio(FORMATS, value="json", label="输出格式 Output format")
                as_json = gr.JSON(label="JSON", elem_id="extract-json")
                as_table = gr.Dataframe(headers=TABLE_HEADERS, label="表格 Table", visible=False,
                                        interactive=False, elem_id="extract-table")
                as_markdown = gr.Code(language="markdown", label="Markdown", visible=False,
                                      elem_id="extract-markdown")
                details = gr.Markdown(elem_id="extract-details")
        gr.Examples(examples.EXTRACT, inputs=[text, fields], label="示例 Examples")

    async def extract(text: str, fields: str, threshold: float) -> tuple[Any, ...]:
        start_ui_request()
        req = validate(ctx, RequestInfo("extract", "ui", text or "", count_names(fields)),
                       lambda limits: ExtractRequest.checked(limits, text=text, fields=fields, threshold=threshold))
        info = RequestInfo("extract", "ui", req.text, len(req.fields))
        served = await call_engine(ctx, info, ctx.engine.extract, req.text, req.fields, req.threshold)
        result = served.result
        return (
            highlight_spans(req.text, result),
            extraction_json(result),
            extraction_rows(result),
            extraction_markdown(result),
            details_line(served.request_id, served.latency_ms, result.pieces),
        )

    def show_format(choice: str) -> tuple[Any, Any, Any]:
        return (gr.update(visible=choice == "json"), gr.update(visible=choice == "table"),
                gr.update(visible=choice == "markdown"))

    answer_on_click(run, extract, [text, fields, threshold], [highlighted, as_json, as_table, as_markdown, details],
                    api_name="extract")
    output_format.change(show_format, output_format, [as_json, as_table, as_markdown], queue=False,
                         api_visibility="private")


def prompt_tab(ctx: UiContext) -> None:
    limit = ctx.engine.settings.max_new_tokens
    with gr.Tab("自由Prompt Free prompt", id="generate"):
        with gr.Row():
            with gr.Column():
                prompt = gr.Textbox(value=examples.DEFAULT_PROMPT, label="Prompt（SeqGPT 格式 · SeqGPT format）",
                                    lines=8, elem_id="generate-prompt")
                max_new_tokens = schema_slider(1, limit, value=min(64, limit), step=1,
                                              label="最多生成 Max new tokens")
                run = gr.Button("生成 Generate", variant="primary", elem_id="generate-run")
            with gr.Column():
                output = gr.Textbox(label="原始输出 Raw output", lines=8, interactive=False, buttons=["copy"],
                                    elem_id="generate-output")
                details = gr.Markdown(elem_id="generate-details")
        gr.Examples(examples.PROMPTS, inputs=[prompt], label="示例 Examples")

    async def generate(prompt: str, max_new_tokens: Any) -> tuple[str, str]:
        start_ui_request()
        req = validate(ctx, RequestInfo("generate", "ui", prompt or ""),
                       lambda limits: GenerateRequest.checked(limits, prompt=prompt, max_new_tokens=max_new_tokens))
        served = await call_engine(ctx, RequestInfo("generate", "ui", req.prompt), ctx.engine.generate,
                                   req.prompt, req.max_new_tokens)
        note = " · ".join(
            part for part in (details_line(served.request_id, served.latency_ms),
                              output_capped_note(served.result, ctx.engine.settings.window_tokens)) if part
        )
        return served.result.text, note

    answer_on_click(run, generate, [prompt, max_new_tokens], [output, details], api_name="generate")
