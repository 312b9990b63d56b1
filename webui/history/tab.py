"""The 历史 History tab: find a request, see its input and answer, mark it, correct it, evaluate on the corrections."""

from __future__ import annotations

import json
import time
from typing import Any

import anyio.to_thread
import gradio as gr

from model_loader.errors import InvalidInputError
from model_loader.results import Extraction, Mention

from ..batch.tab import batch_dir
from ..evaluate.job import load_gold, predict_all, write_outputs
from ..evaluate.tab import _errors_table, _headline, _scores_table
from ..service.request import RequestInfo
from ..ui.render import highlight_spans
from ..ui.tabs import UiContext, start_ui_request, ui_error
from .feedback import expected_from_text
from .room import HistoryRoom, iso
from .store import Stored

TASK_FILTER = [("全部 All", ""), ("分类 Classify", "classify"), ("抽取 Extract", "extract"),
               ("自由Prompt Generate", "generate")]
FEEDBACK_FILTER = [("全部 All", ""), ("未评价 No feedback", "none"), ("已评价 Any feedback", "any"),
                   ("正确 Correct", "correct"), ("错误 Wrong", "wrong")]
EVAL_TASKS = [("分类 Classify", "classify"), ("抽取 Extract", "extract")]
LIST_HEADERS = ["时间 Time (UTC)", "请求 Request", "任务 Task", "来源 Source", "文本 Text", "答案 Answer",
                "反馈 Feedback"]
LIST_LIMIT = 100
PREFIX = 40


def history_tab(ctx: UiContext) -> None:
    room: HistoryRoom | None = ctx.history
    with gr.Tab("历史 History", id="history"):
        if room is None or not room.on:
            gr.Markdown(room.unavailable if room is not None else "请求历史未开启 · request history is off",
                        elem_id="history-off")
            return
        gr.Markdown("每个答案下方的请求 ID 可在这里打开；文本保存在工作区，见 docs/history.md。 · Open any answer by "
                    "the request id shown under it; texts are kept in the workspace (docs/history.md: how to erase).")
        with gr.Row():
            query = gr.Textbox(label="搜索 Search text", scale=3, elem_id="history-q")
            task = gr.Dropdown(TASK_FILTER, value="", label="任务 Task", scale=1, elem_id="history-task")
            feedback = gr.Dropdown(FEEDBACK_FILTER, value="", label="反馈 Feedback", scale=1,
                                   elem_id="history-feedback")
            search = gr.Button("查找 Find", scale=1, elem_id="history-search")
        table = gr.Dataframe(headers=LIST_HEADERS, interactive=False, wrap=True, elem_id="history-table")
        ids = gr.State([])
        with gr.Row():
            request_id = gr.Textbox(label="请求 ID Request id", scale=3, elem_id="history-id")
            open_button = gr.Button("打开 Open", scale=1, elem_id="history-open")
        with gr.Row():
            with gr.Column():
                detail = gr.Markdown(elem_id="history-detail")
                text_box = gr.Textbox(label="文本 Text", lines=4, interactive=False, elem_id="history-text")
                highlighted = gr.HighlightedText(label="原文标注 Highlighted in the text", show_legend=True,
                                                 elem_id="history-highlight")
                answer = gr.JSON(label="答案 Answer", elem_id="history-answer")
            with gr.Column():
                with gr.Row():
                    correct = gr.Button("✓ 正确 Correct", elem_id="history-correct")
                    wrong = gr.Button("✗ 错误 Wrong", elem_id="history-wrong")
                expected = gr.Textbox(
                    label="正确答案 Right answer", lines=4, elem_id="history-expected",
                    info="分类：正确的标签；抽取：每行“字段: 提及1|提及2”（无则 None） · Classify: the right label; "
                         "extract: one line per field, `field: mention1|mention2` (None for none)",
                )
                save = gr.Button("保存更正 Save correction", variant="primary", elem_id="history-save")
                saved = gr.Markdown(elem_id="history-saved")
                counter = gr.Dataframe(headers=["任务 Task", "正确 Correct", "错误 Wrong"], interactive=False,
                                       label="反馈计数 Feedback per task", elem_id="history-counter")
        with gr.Row():
            eval_task = gr.Radio(EVAL_TASKS, value="classify", label="任务 Task", elem_id="history-eval-task")
            evaluate = gr.Button("在我的更正上评测 Evaluate on my corrections", variant="primary",
                                 elem_id="history-evaluate")
        eval_summary = gr.Markdown(elem_id="history-eval-summary")
        eval_table = gr.Dataframe(label="各标签得分 Scores per label / field", interactive=False,
                                  elem_id="history-eval-metrics")
        with gr.Row():
            confusion = gr.Image(label="混淆矩阵 Confusion matrix", type="filepath", interactive=False,
                                 elem_id="history-eval-confusion")
            f1_chart = gr.Image(label="F1", type="filepath", interactive=False, elem_id="history-eval-f1")
        eval_errors = gr.Dataframe(label="最严重的错误 Worst errors", interactive=False, elem_id="history-eval-errors")

    async def in_thread(task_name: str, work: Any, *args: Any) -> Any:
        """Store work off the event loop; errors worded by the outcome table, logged like a request."""
        started = time.perf_counter()
        try:
            return await anyio.to_thread.run_sync(work, *args)
        except Exception as exc:
            ctx.service.record(RequestInfo(task_name, "ui", ""), started, exc)
            raise ui_error(exc) from None

    async def find(q: str, task_name: str, verdict: str) -> tuple[Any, list[str], Any]:
        start_ui_request()
        found = await in_thread("history", room.search, task_name, q, verdict, LIST_LIMIT, None)
        return _list_table(found), [s.record.id for s in found], _counter(room)

    async def open_request(rid: str) -> tuple[Any, ...]:
        start_ui_request()
        stored = await in_thread("history", room.get, rid or "")
        return (*_detail(stored), stored.record.id, _counter(room))

    async def pick(id_list: list[str], event: gr.SelectData) -> tuple[Any, ...]:
        row = event.index[0] if isinstance(event.index, list | tuple) else event.index
        return await open_request(id_list[row] if 0 <= row < len(id_list) else "")

    async def give(rid: str, verdict: str, text: str) -> tuple[Any, ...]:
        start_ui_request()

        def work() -> Stored:
            stored = room.get(rid or "")
            body: dict[str, Any] = {"verdict": verdict}
            if verdict == "wrong" and (text or "").strip():
                body["expected"] = expected_from_text(stored.record.task, text)
            return room.set_feedback(stored.record.id, body, None)

        stored = await in_thread("feedback", work)
        shown = "正确 correct" if verdict == "correct" else "错误 wrong"
        note = f"已保存：{shown} · Saved: request `{stored.record.id}` marked {verdict}"
        if stored.feedback and stored.feedback.expected:
            note += f" · 更正 correction: `{json.dumps(stored.feedback.expected, ensure_ascii=False)}`"
        return (*_detail(stored), note, _counter(room))

    async def mark_correct(rid: str) -> tuple[Any, ...]:
        return await give(rid, "correct", "")

    async def mark_wrong(rid: str, text: str) -> tuple[Any, ...]:
        return await give(rid, "wrong", text)

    async def run_evaluation(task_name: str, progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008
        request_id = start_ui_request()
        started = time.perf_counter()

        def gold_set() -> Any:
            data = "".join(room.export(task_name)).encode("utf-8")
            if not data:
                raise _no_corrections(task_name)
            return load_gold(data, "corrections.jsonl", task_name, "", ctx.settings, ctx.engine.settings)

        gold = await in_thread("evaluate", gold_set)
        try:
            records = await predict_all(ctx.service, gold, lambda done: progress(
                (done, len(gold.rows)), desc="评测中 Evaluating", unit="rows"))
        except Exception as exc:  # busy for too long, or the model not ready: worded by the outcome table
            raise ui_error(exc) from None
        report, paths = write_outputs(gold, records, batch_dir(ctx) / request_id)
        details = (f"{_headline(report)}\n\n在 {len(gold.rows)} 条已评价的请求上 · on {len(gold.rows)} requests with "
                   f"feedback · 请求 Request `{request_id}` · {time.perf_counter() - started:.1f} s")
        return details, _scores_table(report), str(paths[2]), str(paths[3]), _errors_table(report)

    detail_outputs = [detail, text_box, highlighted, answer, expected]
    search.click(find, [query, task, feedback], [table, ids, counter], api_visibility="private")
    query.submit(find, [query, task, feedback], [table, ids, counter], api_visibility="private")
    open_button.click(open_request, request_id, [*detail_outputs, request_id, counter], api_visibility="private")
    request_id.submit(open_request, request_id, [*detail_outputs, request_id, counter], api_visibility="private")
    table.select(pick, ids, [*detail_outputs, request_id, counter], api_visibility="private")
    correct.click(mark_correct, request_id, [*detail_outputs, saved, counter], api_visibility="private")
    wrong.click(mark_wrong, [request_id, expected], [*detail_outputs, saved, counter], api_visibility="private")
    save.click(mark_wrong, [request_id, expected], [*detail_outputs, saved, counter], api_visibility="private")
    evaluate.click(run_evaluation, eval_task, [eval_summary, eval_table, confusion, f1_chart, eval_errors],
                   api_visibility="private")


def _no_corrections(task: str) -> Exception:
    return InvalidInputError(
        f"还没有 {task} 的反馈 · no {task} request has feedback yet: mark some answers correct or wrong "
        "(with the right answer) first"
    )


def _list_table(found: list[Stored]) -> dict[str, Any]:
    rows = []
    for stored in found:
        record, feedback = stored.record, stored.feedback
        rows.append([iso(record.time), record.id, record.task, record.source, _prefix(record.text),
                     _prefix(_answer_words(record.task, record.answer)), feedback.verdict if feedback else ""])
    return {"headers": LIST_HEADERS, "data": rows or [["", "", "", "", "", "", ""]]}


def _detail(stored: Stored) -> tuple[str, str, Any, Any, str]:
    """About the request, its text, the highlighted text (extraction), the answer and the correction box."""
    record, feedback = stored.record, stored.feedback
    names = record.input.get("labels") or record.input.get("fields")
    lines = [
        f"**请求 Request `{record.id}`** · {record.task} · {record.source} · {iso(record.time)} · "
        f"{record.latency_ms if record.latency_ms is not None else '–'} ms · {record.weights}",
        f"**{'标签 Labels' if record.task == 'classify' else '字段 Fields'}:** {'，'.join(names)}" if names else "",
        "⚠️ 文本过长，只保存了开头 · the text was cut to the stored limit" if record.truncated else "",
        f"**反馈 Feedback:** {feedback.verdict}" + (f" · {feedback.user}" if feedback and feedback.user else "")
        if feedback else "**反馈 Feedback:** –",
    ]
    highlighted = None
    if record.task == "extract" and isinstance(record.answer, dict):
        highlighted = highlight_spans(record.text, _extraction(record.answer))
    correction = _correction_text(stored)
    return "\n\n".join(line for line in lines if line), record.text, highlighted, record.answer, correction


def _extraction(answer: dict[str, Any]) -> Extraction:
    fields = {name: [Mention(m["text"], m["start"], m["end"], float(m.get("score", 1.0))) for m in mentions]
              for name, mentions in (answer.get("fields") or {}).items()}
    return Extraction(fields=fields, raw=answer.get("raw", ""))


def _correction_text(stored: Stored) -> str:
    """The box pre-filled with the given correction, else the model's own answer, ready to edit."""
    record, feedback = stored.record, stored.feedback
    source = feedback.expected if feedback and feedback.expected else record.answer
    if not isinstance(source, dict):
        return ""
    if record.task == "classify":
        return str(source.get("label", ""))
    if record.task == "extract":
        return "\n".join(f"{name}: {'|'.join(m['text'] for m in mentions) or 'None'}"
                         for name, mentions in (source.get("fields") or {}).items())
    return str(source.get("text", ""))


def _answer_words(task: str, answer: Any) -> str:
    if not isinstance(answer, dict):
        return str(answer)
    if task == "classify":
        return str(answer.get("label", ""))
    if task == "extract":
        return "; ".join(f"{name}: {'|'.join(m['text'] for m in found)}"
                         for name, found in (answer.get("fields") or {}).items() if found)
    return str(answer.get("text", json.dumps(answer, ensure_ascii=False)))


def _counter(room: HistoryRoom) -> dict[str, Any]:
    try:
        table = room.need_store().feedback_by_task()
    except Exception:  # the counter is a courtesy; the action's own result says what happened
        table = {}
    rows = [[task, counts["correct"], counts["wrong"]] for task, counts in table.items()]
    return {"headers": ["任务 Task", "正确 Correct", "错误 Wrong"], "data": rows or [["", 0, 0]]}


def _prefix(text: str) -> str:
    return text if len(text) <= PREFIX else text[:PREFIX] + "…"
