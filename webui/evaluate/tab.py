"""The 评测 Evaluate tab: upload a labelled file; see accuracy / F1, both charts and the worst errors; download all."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gradio as gr

from evaluation import SUMMARY_CHARS
from evaluation.report import rouge_table
from evaluation.rouge import ROUGE_KEYS
from model_loader.errors import InvalidInputError

from ..batch.tab import batch_dir
from ..service.request import RequestInfo
from ..ui.tabs import UiContext, failure_text, start_ui_request, ui_error
from .job import load_gold, predict_all, summary_length, write_outputs

TASKS = [("分类 Classify", "classify"), ("抽取 Extract", "extract"), ("摘要 Summarize", "summarize")]
SAMPLE_FILE = Path(__file__).with_name("sample_evaluate.csv")
CHART_HEIGHT = 460
MAP_HINT = "news_finance=财经\nnews_sports=体育"
# Characters of each text shown in the worst-errors table.
PREVIEW_CHARS = 40


def evaluate_tab(ctx: UiContext) -> None:
    limits = ctx.settings
    with gr.Tab("评测 Evaluate", id="evaluate"):
        gr.Markdown(
            "用你自己标注好的数据衡量模型：分类用 `text`,`label` 的 CSV / JSONL 或 TNEWS 格式；抽取用 CLUENER 格式或 "
            '`{"text", "entities": [{"field", "start", "end"}]}` 的 JSONL。'
            f"最多 {limits.batch_max_rows} 行、{limits.batch_max_bytes // 1024} KiB。 · "
            "Measure the model on your own labelled rows: classification as CSV / JSONL with `text` and `label` "
            "(or TNEWS), extraction as CLUENER JSONL or JSONL with `entities` (end exclusive), summaries as "
            "JSONL with `text` (or LCSTS's `content`) and a reference `summary`, scored by ROUGE-1/2/L. "
            f"At most {limits.batch_max_rows} rows and {limits.batch_max_bytes // 1024} KiB."
        )
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="标注文件 Labelled file", file_types=[".jsonl", ".json", ".csv"],
                                 elem_id="evaluate-file")
                task = gr.Radio(TASKS, value="classify", label="任务 Task", elem_id="evaluate-task")
                mapping = gr.Textbox(label="标签/字段映射 Label or field map（KEY=VALUE，每行一个 · one per line）",
                                     lines=4, placeholder=MAP_HINT, elem_id="evaluate-map")
                max_chars = gr.Number(SUMMARY_CHARS, precision=0, minimum=1,
                                      label="摘要字数上限 Summary length (summarize)", elem_id="evaluate-max-chars")
                run = gr.Button("开始评测 Evaluate", variant="primary", elem_id="evaluate-run")
                downloads = gr.File(label="下载 Download (report JSON, predictions JSONL, charts)",
                                    file_count="multiple", interactive=False, elem_id="evaluate-downloads")
            with gr.Column(scale=2):
                summary = gr.Markdown(elem_id="evaluate-summary")
                table = gr.Dataframe(label="各标签得分 Scores per label / field", interactive=False,
                                     elem_id="evaluate-metrics")
                with gr.Row():
                    confusion = gr.Image(label="混淆矩阵 Confusion matrix", type="filepath", interactive=False,
                                         height=CHART_HEIGHT, elem_id="evaluate-confusion")
                    f1_chart = gr.Image(label="F1", type="filepath", interactive=False, height=CHART_HEIGHT,
                                        elem_id="evaluate-f1")
                errors = gr.Dataframe(label="最严重的错误 Worst errors", interactive=False, wrap=True,
                                      elem_id="evaluate-errors")
        gr.Examples([[str(SAMPLE_FILE), "classify", ""]], inputs=[upload, task, mapping], label="示例 Example")

    async def evaluate(file: str | None, task: str, map_text: str, max_chars: float | None,
                       progress: gr.Progress = gr.Progress()):  # noqa: B008
        request_id = start_ui_request()
        started = time.perf_counter()
        # A failed run clears the report of the one before and says why in the summary's place.
        cleared = (None, None, None, None, None)
        try:
            gold, length = _read(ctx, file, task, map_text or "", max_chars, started)
        except gr.Error as error:
            return (failure_text(error), *cleared)
        progress((0, len(gold.rows)), desc="评测中 Evaluating", unit="rows")

        def advance(done: int) -> None:
            tracked[1] = done
            progress((done, len(gold.rows)), desc="评测中 Evaluating", unit="rows")

        with ctx.runs.track("evaluate", len(gold.rows)) as tracked:
            try:
                records = await predict_all(ctx.service, gold, advance, length)
            except Exception as exc:  # busy for too long, or the model not ready: worded by the outcome table
                return (failure_text(ui_error(exc)), *cleared)
        report, paths = write_outputs(gold, records, batch_dir(ctx) / request_id)
        ctx.service.record(RequestInfo("evaluate", "ui", "", len(gold.names), rows=len(records)), started, None)
        details = f"{_headline(report)}\n\n请求 Request `{request_id}` · {time.perf_counter() - started:.1f} s"
        # A summary evaluation draws one chart (ROUGE) and no confusion matrix, whose box then hides.
        charts = [str(path) for path in paths[2:]]
        confusion_png = gr.Image(value=charts[0], visible=True) if len(charts) == 2 else gr.Image(visible=False)
        return (details, _scores_table(report), confusion_png, charts[-1], _errors_table(report),
                [str(path) for path in paths])

    run.click(evaluate, [upload, task, mapping, max_chars], [summary, table, confusion, f1_chart, errors, downloads],
              api_name="evaluate", show_progress_on=[table])


def _read(ctx: UiContext, file: str | None, task: str, map_text: str, max_chars: float | None, started: float):
    try:
        if not file:
            raise InvalidInputError("没有文件 · no file: upload a labelled CSV or JSONL file first")
        path = Path(file)
        if path.stat().st_size > ctx.settings.batch_max_bytes:
            raise InvalidInputError(f"文件过大 · the file is larger than {ctx.settings.batch_max_bytes // 1024} KiB: "
                                    "evaluate a smaller sample, or raise SEQGPT_BATCH_MAX_BYTES")
        length = summary_length(ctx.engine.settings, max_chars)
        gold = load_gold(path.read_bytes(), path.name, task, map_text, ctx.settings, ctx.engine.settings)
        return gold, length
    except Exception as exc:  # worded by the outcome table; unexpected ones logged with a traceback
        ctx.service.record(RequestInfo("evaluate", "ui", ""), started, exc)
        raise ui_error(exc) from None


def _headline(report: dict[str, Any]) -> str:
    if report["task"] == "classify":
        lines = [f"**准确率 Accuracy {report['accuracy']:.4f} · macro-F1 {report['macro_f1']:.4f}**"]
    elif report["task"] == "summarize":
        lines = ["**ROUGE F1 (字符 characters): " + " · ".join(
            f"{name} {report[name]['f1']:.4f}" for name in ROUGE_KEYS) + "**"]
    else:
        micro, loose = report["micro"], report["text_match"]["micro"]
        lines = [f"**严格匹配 Strict spans: P {micro['precision']:.4f} · R {micro['recall']:.4f} · "
                 f"F1 {micro['f1']:.4f}** · 文本匹配 Text match F1 {loose['f1']:.4f}"]
    latency = report["latency_ms"]
    lines.append(f"{report['rows']} 行 rows · 延迟 latency p50 {latency['p50']} ms, p95 {latency['p95']} ms · "
                 f"{report['rows_per_s']} rows/s")
    if report["skipped"]:
        shown = "; ".join(f"line {bad['line']}: {bad['reason']}" for bad in report["skipped"][:5])
        count = len(report["skipped"])
        lines.append(f"跳过 {count} 行有误的数据 · Skipped {count} bad rows ({shown})")
    if report["failed"]:
        count = len(report["failed"])
        lines.append(f"{count} 行模型出错，计为错误 · {count} rows failed and count as wrong")
    return "\n\n".join(lines)


def _scores_table(report: dict[str, Any]) -> dict[str, Any]:
    if report["task"] == "summarize":
        table = rouge_table(report)
    else:
        table = report["per_label"] if report["task"] == "classify" else report["per_field"]
    first = {"classify": "标签 Label", "extract": "字段 Field", "summarize": "ROUGE"}[report["task"]]
    headers = [first, "precision", "recall", "F1", "support"]
    return {"headers": headers,
            "data": [[name, m["precision"], m["recall"], m["f1"], m["support"]] for name, m in table.items()]}


def _errors_table(report: dict[str, Any]) -> dict[str, Any]:
    """The worst errors, each text cut to its start so that the expected and the model's answer stay
    on screen beside it (report.json has the whole texts)."""
    rows = [[e["line"], _preview(e["text"]), e["expected"], e["got"]] for e in report["worst_errors"]]
    return {"headers": ["行 Line", "文本 Text", "标注 Expected", "模型 Got"], "data": rows or [["", "", "", ""]]}


def _preview(text: str) -> str:
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "…"
