"""The batch tab: upload a file of texts, classify or extract each one, show a table and offer CSV / JSONL downloads."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import gradio as gr
from pydantic import BaseModel, ValidationError

from model_loader.errors import InvalidInputError, ModelNotReadyError
from model_loader.prompts import parse_labels

from .batch import FORMATS, BatchFileError, BatchItem, flat_record, read_batch_file, result_record, write_results
from .concurrency import BusyError
from .schemas import ClassifyRequest, ExtractRequest, classification_json, describe_errors, extraction_json
from .service import RequestInfo
from .tabs import UiContext, start_ui_request, ui_error

TASKS = [("分类 Classify", "classify"), ("抽取 Extract", "extract")]
# A batch shares the model with everyone else: when the gate is full it waits its turn this long.
BUSY_WAIT_S = 120.0
SAMPLE_FILE = Path(__file__).with_name("sample_batch.csv")


def batch_dir(ctx: UiContext) -> Path:
    """Where result files are written, one folder per batch request id."""
    return ctx.settings.workspace / "batch"


def batch_tab(ctx: UiContext) -> None:
    limits = ctx.settings
    with gr.Tab("批量处理 Batch", id="batch"):
        gr.Markdown(
            f"上传 CSV（`text` 列）、JSONL（每行 `{{\"text\": ...}}`）或 TXT（每行一条），"
            f"最多 {limits.batch_max_rows} 条、{limits.batch_max_bytes // 1024} KiB。 · "
            f"Upload a CSV with a `text` column, JSONL with `{{\"text\": ...}}` per line, or TXT with one text "
            f"per line; at most {limits.batch_max_rows} texts and {limits.batch_max_bytes // 1024} KiB."
        )
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="文件 File", file_types=list(FORMATS), elem_id="batch-file")
                task = gr.Radio(TASKS, value="classify", label="任务 Task", elem_id="batch-task")
                labels = gr.Textbox(label="标签或字段 Labels or fields（逗号分隔 · comma-separated）",
                                    value="投诉，咨询，表扬，退货", elem_id="batch-labels")
                run = gr.Button("开始处理 Run batch", variant="primary", elem_id="batch-run")
            with gr.Column():
                table = gr.Dataframe(label="结果 Results", interactive=False, elem_id="batch-table")
                downloads = gr.File(label="下载 Download (CSV, JSONL)", file_count="multiple",
                                    interactive=False, elem_id="batch-downloads")
                details = gr.Markdown(elem_id="batch-details")
        gr.Examples([[str(SAMPLE_FILE), "classify", "投诉，咨询，表扬，退货"]], inputs=[upload, task, labels],
                    label="示例 Example")

    async def run_batch(file: str | None, task: str, labels: str, progress: gr.Progress = gr.Progress()):  # noqa: B008
        request_id = start_ui_request()
        started = time.perf_counter()
        items, names = _read_inputs(ctx, file, task, labels, started)
        records: list[dict[str, Any]] = []
        for done, item in enumerate(items):
            progress((done, len(items)), desc="处理中 Processing", unit="texts")
            result, error = await _run_one(ctx, task, item, names)
            records.append(result_record(item, result, error))
        flat = [flat_record(task, record, names) for record in records]
        files = write_results(records, flat, batch_dir(ctx) / request_id)
        failed = sum(1 for record in records if record["error"])
        summary = (f"完成 {len(records)} 条，失败 {failed} 条 · Done: {len(records)} texts, {failed} failed · "
                   f"请求 Request `{request_id}` · {time.perf_counter() - started:.1f} s")
        table_value = {"headers": list(flat[0]), "data": [list(row.values()) for row in flat]}
        return table_value, [str(path) for path in files], summary

    run.click(run_batch, [upload, task, labels], [table, downloads, details], api_name="batch")


def _read_inputs(
    ctx: UiContext, file: str | None, task: str, labels: str, started: float
) -> tuple[list[BatchItem], list[str]]:
    info = RequestInfo(task or "batch", "batch", "")
    try:
        if not file:
            raise InvalidInputError("no file: upload a CSV, JSONL or TXT file first")
        items = read_batch_file(Path(file), ctx.settings.batch_max_bytes, ctx.settings.batch_max_rows)
        limits = ctx.engine.settings
        what = "labels" if task == "classify" else "fields"
        names = parse_labels(labels or "", limits.max_labels, limits.max_label_chars, what=what)
    except (BatchFileError, InvalidInputError) as exc:
        ctx.service.record(info, started, InvalidInputError(str(exc)))
        raise ui_error(str(exc), "输入有误 Invalid input") from None
    return items, names


async def _run_one(
    ctx: UiContext, task: str, item: BatchItem, names: list[str]
) -> tuple[dict[str, Any] | None, str | None]:
    """One text of the batch: (JSON result, None) or (None, why it failed). Busy means wait, not fail."""
    model: type[BaseModel] = ClassifyRequest if task == "classify" else ExtractRequest
    key = "labels" if task == "classify" else "fields"
    info = RequestInfo(task, "batch", item.text, len(names))
    try:
        model.model_validate({"text": item.text, key: names}, context={"limits": ctx.engine.settings})
    except ValidationError as exc:
        message = describe_errors(exc.errors())
        ctx.service.record(info, time.perf_counter(), InvalidInputError(message))
        return None, message
    fn, to_json = (
        (ctx.engine.classify, classification_json) if task == "classify" else (ctx.engine.extract, extraction_json)
    )
    deadline = time.monotonic() + BUSY_WAIT_S
    while True:
        try:
            served = await ctx.service.run(info, fn, item.text, names)
            return to_json(served.result), None
        except BusyError:
            if time.monotonic() > deadline:
                raise ui_error("服务繁忙，请稍后再试 · Busy for too long; run the batch again later.",
                               "繁忙 Busy") from None
            await asyncio.sleep(0.5)
        except InvalidInputError as exc:
            return None, str(exc)
        except ModelNotReadyError as exc:
            raise ui_error(f"模型未就绪 · {exc}", "模型未就绪 Not ready") from None
        except Exception:  # logged with its traceback by the service
            return None, "internal error: see the server log"
