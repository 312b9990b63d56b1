"""The batch tab: upload a file of texts, classify or extract each one, show a table and offer CSV / JSONL downloads."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from model_loader.errors import InvalidInputError
from model_loader.tasks.options import ClassifyRequest, checked_names

from ..api.schemas import classification_json, extraction_json
from ..jobs.tab import jobs_section
from ..logging_setup import REQUEST_ID
from ..outcomes import outcome_of, user_message
from ..service.request import RequestInfo, Served
from ..ui.tabs import UiContext, failure_text, schema_slider, start_ui_request, ui_error
from .files import (
    FORMATS,
    KEEP_RESULTS,
    BatchItem,
    flat_record,
    prune_results,
    read_batch_file,
    result_record,
    write_results,
)

TASKS = [("分类 Classify", "classify"), ("抽取 Extract", "extract")]
# A batch shares the model with everyone else: when the gate is full it waits its turn this long.
BUSY_WAIT_S = 120.0
SAMPLE_FILE = Path(__file__).with_name("sample_batch.csv")
# The results table shows the start of each text, so that one long text cannot push the
# label, score and error columns off screen; the downloads have the whole text.
PREVIEW_CHARS = 40
# Failed rows named in the summary; the rest are in the table and the downloads.
SUMMARY_FAILURES = 5


def batch_dir(ctx: UiContext) -> Path:
    """Where result files are written, one folder per batch request id (the newest KEEP_RESULTS kept)."""
    return ctx.settings.workspace / "batch"


def batch_tab(ctx: UiContext) -> None:
    limits = ctx.settings
    with gr.Tab("批量处理 Batch", id="batch"):
        gr.Markdown(
            f"上传 CSV（`text` 列，可带 `id` 列）、JSONL（每行 `{{\"text\": ...}}`）或 TXT（每行一条），"
            f"最多 {limits.batch_max_rows} 条、{limits.batch_max_bytes // 1024} KiB。 · "
            f"Upload a CSV with a `text` column (and optionally `id`), JSONL with `{{\"text\": ...}}` per line, "
            f"or TXT with one text per line; at most {limits.batch_max_rows} texts and "
            f"{limits.batch_max_bytes // 1024} KiB. 服务器保留最近 {KEEP_RESULTS} 批结果 · "
            f"The server keeps the results of the last {KEEP_RESULTS} batches."
        )
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="文件 File", file_types=list(FORMATS), elem_id="batch-file")
                task = gr.Radio(TASKS, value="classify", label="任务 Task", elem_id="batch-task")
                labels = gr.Textbox(label="标签或字段 Labels or fields（逗号分隔 · comma-separated）",
                                    value="投诉，咨询，表扬，退货", elem_id="batch-labels")
                threshold = schema_slider(0.0, 1.0, value=0.0, step=0.05, visible=False,
                                         label="置信度阈值 Confidence threshold", elem_id="batch-threshold")
                exclusive = gr.Checkbox(False, visible=False, elem_id="batch-exclusive",
                                        label="字段互斥 Exclusive fields（一段文字只归一个字段 · a span keeps "
                                              "only its best field）")
                run = gr.Button("开始处理 Run batch", variant="primary", elem_id="batch-run")
            with gr.Column():
                table = gr.Dataframe(label="结果 Results", interactive=False, wrap=True, elem_id="batch-table")
                downloads = gr.File(label="下载 Download (CSV, JSONL)", file_count="multiple",
                                    interactive=False, elem_id="batch-downloads")
                details = gr.Markdown(elem_id="batch-details")
        gr.Examples([[str(SAMPLE_FILE), "classify", "投诉，咨询，表扬，退货"]], inputs=[upload, task, labels],
                    label="示例 Example")
        if ctx.jobs is not None:
            jobs_section(ctx, upload, task, labels, threshold, exclusive)

    def show_options(choice: str) -> tuple[Any, Any]:
        return gr.update(visible=choice == "extract"), gr.update(visible=choice == "extract")

    async def run_batch(file: str | None, task: str, labels: str, threshold: Any, exclusive: Any,
                        progress: gr.Progress = gr.Progress()):  # noqa: B008
        request_id = start_ui_request()
        started = time.perf_counter()
        options = {"threshold": threshold, "exclusive": exclusive} if task == "extract" else {}
        # A failed run clears the results of the one before and says why where they were (not only
        # in a toast), so that no old summary or download passes for this run's.
        try:
            items, names = _read_inputs(ctx, file, task, labels, options, started)
        except gr.Error as refused:
            return None, None, failure_text(refused)
        records: list[dict[str, Any]] = []
        with ctx.runs.track("batch", len(items)) as run:
            for done, item in enumerate(items):
                progress((done, len(items)), desc="处理中 Processing", unit="texts")
                try:
                    result, error = await _run_one(ctx, task, item, names, options)
                except gr.Error as failed:
                    return None, None, failure_text(failed)
                records.append(result_record(item, result, error))
                run[1] = done + 1
        with_id = any(item.id for item in items)
        flat = [flat_record(task, record, names, with_id) for record in records]
        prune_results(batch_dir(ctx), KEEP_RESULTS - 1)
        files = write_results(records, flat, batch_dir(ctx) / request_id)
        summary = batch_summary(records, request_id, time.perf_counter() - started)
        ctx.service.record(RequestInfo("batch", "ui", "", len(names), rows=len(records)), started, None)
        table_value = {"headers": list(flat[0]), "data": [_preview(row) for row in flat]}
        return table_value, [str(path) for path in files], summary

    task.change(show_options, task, [threshold, exclusive], queue=False, api_visibility="private")
    # One progress bar, over the table: on every output its caption overlapped the summary's text.
    run.click(run_batch, [upload, task, labels, threshold, exclusive], [table, downloads, details],
              api_name="batch", show_progress_on=[table])


def batch_summary(records: list[dict[str, Any]], request_id: str, seconds: float) -> str:
    """Counts, and which rows failed and why (the first few; the table and downloads have them all)."""
    failed = [record for record in records if record["error"]]
    summary = (f"完成 {len(records)} 条，失败 {len(failed)} 条 · Done: {len(records)} texts, {len(failed)} failed · "
               f"请求 Request `{request_id}` · {seconds:.1f} s")
    if failed:
        named = [
            f"- 第 {record['row']} 行 row {record['row']}"
            + (f" (id {record['id']})" if record.get("id") else "")
            + f": {record['error']}"
            for record in failed[:SUMMARY_FAILURES]
        ]
        if len(failed) > SUMMARY_FAILURES:
            named.append(f"- …另有 {len(failed) - SUMMARY_FAILURES} 条 · and {len(failed) - SUMMARY_FAILURES} more "
                         "(see the `error` column)")
        summary += "\n\n失败的行 Failed rows:\n" + "\n".join(named)
    return summary


def _preview(row: dict[str, Any]) -> list[Any]:
    text = row["text"]
    shown = text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + f"…（共 {len(text)} 字 · {len(text)} chars）"
    return [shown if name == "text" else value for name, value in row.items()]


def _read_inputs(
    ctx: UiContext, file: str | None, task: str, labels: str, options: dict[str, Any], started: float
) -> tuple[list[BatchItem], list[str]]:
    """The file's texts and the labels, or one calm error for the whole batch (bad file, labels or options)."""
    info = RequestInfo(task or "batch", "batch", "")
    try:
        if not file:
            raise InvalidInputError("没有文件 · no file: upload a CSV, JSONL or TXT file first")
        items = read_batch_file(Path(file), ctx.settings.batch_max_bytes, ctx.settings.batch_max_rows)
        # Checked once here, rather than failing every row alike; each row is checked the same way with its text.
        asked = checked_names(ctx.engine.settings, task, labels or "", options)
        names = list(asked.labels if isinstance(asked, ClassifyRequest) else asked.fields)
    except Exception as exc:  # worded by the outcome table; unexpected ones logged with a traceback
        ctx.service.record(info, started, exc)
        raise ui_error(exc) from None
    return items, names


async def _run_one(
    ctx: UiContext, task: str, item: BatchItem, names: list[str], options: dict[str, Any]
) -> tuple[dict[str, Any] | None, str | None]:
    """One text of the batch: (JSON result, None) or (None, why it failed). Busy means wait, not fail."""
    info = RequestInfo(task, "batch", item.text, len(names))
    try:
        if item.error:
            raise InvalidInputError(item.error)
        req = checked_names(ctx.engine.settings, task, names, options, text=item.text)
    except Exception as exc:  # this row's own problem: the others still run
        ctx.service.record(info, time.perf_counter(), exc)
        return None, user_message(exc, REQUEST_ID.get())
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    to_json: Callable[[Any], dict[str, Any]]
    if isinstance(req, ClassifyRequest):
        fn, args, to_json = ctx.engine.classify, (req.text, req.labels), classification_json
    else:
        fn, args, to_json = ctx.engine.extract, (req.text, req.fields, req.threshold, req.exclusive), extraction_json
    deadline = time.monotonic() + BUSY_WAIT_S
    while True:
        try:
            served: Served[Any] = await ctx.service.run(info, fn, *args)
            return to_json(served.result), None
        except Exception as exc:  # logged by the service, with a traceback when unexpected
            outcome = outcome_of(exc).name
            if outcome == "busy" and time.monotonic() <= deadline:
                await asyncio.sleep(0.5)
                continue
            if outcome in ("busy", "not_ready", "stopping"):  # every row would fail alike: stop and say why
                raise ui_error(exc) from None
            return None, user_message(exc, REQUEST_ID.get())
