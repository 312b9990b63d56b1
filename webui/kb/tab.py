"""The 知识库 Knowledge base tab: add and delete documents (with progress), search with highlighted hits, summarise."""

from __future__ import annotations

import html
import re
import time
from pathlib import Path
from typing import Any

import anyio.to_thread
import gradio as gr

from model_loader.errors import InvalidInputError
from model_loader.results import Summary
from model_loader.tasks.options import SummarizeRequest

from ..service.request import RequestInfo
from ..ui.render import details_line
from ..ui.tabs import UiContext, call_engine, start_ui_request, ui_error, validate
from .documents import from_file, from_json
from .schemas import SummaryMetrics
from .service import KnowledgeBase
from .store import Hit

DOC_HEADERS = ["doc_id", "名称 Name", "段落 Passages", "字数 Chars"]
EXAMPLE_DOC = (
    "硬件故障排查指南：电脑蓝屏或重启后无法进入系统时，先断电检查内存条和硬盘连接，"
    "再尝试进入安全模式卸载最近安装的驱动。若仍无法启动，使用系统修复盘恢复引导。\n"
    "打印机脱机处理：确认网线或无线连接正常，重新安装打印机驱动后再试。"
)


def highlight(passage: str, query: str) -> str:
    """Pure: the passage as HTML with every character pair it shares with the query marked."""
    pairs = {query[i : i + 2] for i in range(len(query) - 1) if not query[i : i + 2].isspace()}
    marked = [False] * len(passage)
    for i in range(len(passage) - 1):
        if passage[i : i + 2] in pairs:
            marked[i] = marked[i + 1] = True
    out, open_ = [], False
    for ch, on in zip(passage, marked, strict=True):
        if on != open_:
            out.append("<mark>" if on else "</mark>")
            open_ = on
        out.append(html.escape(ch))
    return "".join(out) + ("</mark>" if open_ else "")


def hits_html(hits: list[Hit], query: str) -> str:
    if not hits:
        return "<p>没有命中 · No hits: add documents first.</p>"
    rows = [
        f'<div class="kb-hit" data-doc="{html.escape(h.doc_id)}"><b>#{n} · {html.escape(h.doc_id)}</b> '
        f"段 chunk {h.chunk_id} · [{h.start}, {h.end}) · 相似度 score <b>{h.score:.4f}</b>"
        f"<p>{highlight(h.text, query)}</p></div>"
        for n, h in enumerate(hits, 1)
    ]
    return "".join(rows)


def summary_html(summary: Summary, ctx: UiContext) -> str:
    """The summary with its two health figures, red where flagged and green where not."""
    settings = ctx.engine.settings

    def figure(name: str, value: float, flagged: bool, rule: str) -> str:
        colour = "#c5221f" if flagged else "#188038"
        state = "flagged" if flagged else "ok"
        return (f'<span class="kb-figure kb-{state}" style="color:{colour};font-weight:bold">'
                f"{name} {value:.3f} ({'⚠ ' if flagged else '✓ '}{rule})</span>")

    ratio_flag = "too_terse" in summary.flags or "too_long" in summary.flags
    parts = [
        figure("相似度 Similarity", summary.similarity, "drifted" in summary.flags,
               f"≥ {settings.summary_min_similarity}"),
        figure("压缩比 Compression", summary.compression_ratio, ratio_flag,
               f"{settings.summary_min_ratio}–{settings.summary_max_ratio}"),
    ]
    flags = ", ".join(summary.flags) or "none"
    return (f'<div id="kb-summary-box"><p>{html.escape(summary.summary) or "(空 empty)"}</p>'
            f"<p>{' · '.join(parts)}</p><p>标记 Flags: <b>{html.escape(flags)}</b></p></div>")


def details_html(request_id: str, latency_ms: float) -> str:
    """The line every answer has under it (request id, to find it in the log and the history; latency)."""
    line = re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(details_line(request_id, latency_ms)))
    return f'<p id="kb-summary-details">{line}</p>'


def knowledge_tab(ctx: UiContext, kb: KnowledgeBase, summaries: SummaryMetrics) -> None:
    with gr.Tab("知识库 Knowledge base", id="kb"):
        gr.Markdown("GTE 语义检索，SeqGPT 摘要 · Semantic search with GTE, summaries with SeqGPT. "
                    f"存储 Store: `{kb.where}`", elem_id="kb-intro")
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="上传文档 Upload (.txt .md .csv .jsonl)", file_types=[".txt", ".md", ".csv",
                                 ".jsonl"], elem_id="kb-file")
                doc_id = gr.Textbox(label="文档编号 Document id（粘贴文本时 · for pasted text）", value="guide",
                                    elem_id="kb-doc-id")
                doc_text = gr.Textbox(label="或粘贴文本 Or paste a text", lines=5, value=EXAMPLE_DOC,
                                      elem_id="kb-doc-text")
                add = gr.Button("添加 Add", variant="primary", elem_id="kb-add")
                added = gr.Markdown(elem_id="kb-added")
            with gr.Column():
                table = gr.Dataframe(headers=DOC_HEADERS, interactive=False, elem_id="kb-docs")
                delete_id = gr.Textbox(label="删除的文档编号 Document id to delete", elem_id="kb-delete-id")
                with gr.Row():
                    delete = gr.Button("删除 Delete", variant="stop", elem_id="kb-delete")
                    refresh = gr.Button("刷新 Refresh", elem_id="kb-refresh")
        with gr.Row():
            query = gr.Textbox(label="查询 Query", value="我电脑蓝屏了，重启后进不去系统", elem_id="kb-query")
            top_k = gr.Slider(1, kb.settings.max_top_k, value=3, step=1, label="命中数 Top k")
            search = gr.Button("检索 Search", variant="primary", elem_id="kb-search")
        hits_view = gr.HTML(elem_id="kb-hits")
        with gr.Row():
            which = gr.Number(0, precision=0, minimum=0, label="摘要哪条 Summarise hit # (0: all top hits)")
            max_chars = gr.Slider(10, ctx.engine.settings.summary_max_chars, value=60, step=10,
                                  label="摘要最多字数 Max characters")
            summarise = gr.Button("生成摘要 Summarise", elem_id="kb-summarize")
        summary_view = gr.HTML(elem_id="kb-summary")
        found = gr.State([])

    def rows() -> list[list[Any]]:
        return [[d.doc_id, d.name, d.chunks, d.chars] for d in kb.documents()]

    async def add_documents(path: str | None, doc_id: str, text: str,
                            progress: gr.Progress = gr.Progress()) -> tuple[str, Any]:  # noqa: B008
        start_ui_request()
        started = time.perf_counter()
        try:
            progress(0, desc="嵌入中 Embedding…")

            def report(ingestion: Any) -> None:
                progress((ingestion.passages_done, max(1, ingestion.passages_total)), unit="passages")

            removed: list[str] = []
            if path:
                docs = from_file(Path(path).name, Path(path).read_bytes(), kb.settings.max_documents)
                stored, removed = await anyio.to_thread.run_sync(kb.add_file, docs, report)
            else:
                docs = from_json({"documents": [{"id": doc_id, "text": text}]}, kb.settings.max_documents)
                stored = await anyio.to_thread.run_sync(kb.add, docs, report)
        except Exception as exc:  # logged like every request, shown as a toast
            ctx.service.record(RequestInfo("kb_add", "ui", ""), started, exc)
            raise ui_error(exc) from None
        ctx.service.record(RequestInfo("kb_add", "ui", ""), started, None)
        lines = ", ".join(f"`{d.doc_id}` ({d.chunks} 段 passages)" for d in stored)
        gone = f"\n\n已移除该文件旧版本中的 Removed, no longer in the file: {', '.join(removed)}" if removed else ""
        return f"已添加 Added: {lines}{gone}", await anyio.to_thread.run_sync(rows)

    async def delete_document(doc_id: str) -> tuple[str, Any]:
        start_ui_request()
        started = time.perf_counter()
        doc_id = (doc_id or "").strip()
        try:
            if not doc_id:
                raise InvalidInputError("缺少文档编号 · type the id of the document to delete: the table lists them")
            await anyio.to_thread.run_sync(kb.delete, doc_id)
        except Exception as exc:  # logged like every request, shown as a toast
            ctx.service.record(RequestInfo("kb_delete", "ui", doc_id), started, exc)
            raise ui_error(exc) from None
        ctx.service.record(RequestInfo("kb_delete", "ui", doc_id), started, None)
        return f"已删除 Deleted `{doc_id}`", await anyio.to_thread.run_sync(rows)

    async def list_documents() -> Any:
        return await anyio.to_thread.run_sync(rows)

    async def run_search(query: str, top_k: float) -> tuple[str, list[dict[str, Any]]]:
        start_ui_request()
        started = time.perf_counter()
        try:
            hits = await anyio.to_thread.run_sync(kb.search, query, int(top_k))
        except Exception as exc:
            ctx.service.record(RequestInfo("kb_search", "ui", query or ""), started, exc)
            raise ui_error(exc) from None
        ctx.service.record(RequestInfo("kb_search", "ui", query), started, None)
        return hits_html(hits, query), [vars(h) for h in hits]

    async def summarise_hits(hits: list[dict[str, Any]], which: float, max_chars: float) -> str:
        start_ui_request()
        if not hits:
            raise gr.Error("先检索 · Search first: there are no hits to summarise")
        pick = int(which or 0)
        if not 0 <= pick <= len(hits):
            raise gr.Error(f"没有第 {pick} 条 · there is no hit #{pick}: choose 0 to {len(hits)}")
        text = hits[pick - 1]["text"] if pick else "\n".join(h["text"] for h in hits)
        # A slider may hand over 60.0; anything else goes as sent, for the engine's request type to refuse.
        length = int(max_chars) if isinstance(max_chars, float) and max_chars.is_integer() else max_chars
        info = RequestInfo("summarize", "ui", text)
        asked = validate(ctx, info, lambda limits: SummarizeRequest.checked(limits, text=text, max_chars=length))
        served = await call_engine(ctx, info, ctx.engine.summarize, asked.text, asked.max_chars)
        summaries.observe(served.result)
        return summary_html(served.result, ctx) + details_html(served.request_id, served.latency_ms)

    def warm_up() -> None:
        kb.embedder.load_in_background()  # GTE loads while the user reads the tab

    add.click(add_documents, [upload, doc_id, doc_text], [added, table], api_visibility="private")
    delete.click(delete_document, [delete_id], [added, table], api_visibility="private")
    refresh.click(list_documents, None, [table], api_visibility="private")
    search.click(run_search, [query, top_k], [hits_view, found], api_visibility="private")
    summarise.click(summarise_hits, [found, which, max_chars], [summary_view], api_visibility="private")
    refresh.click(warm_up, None, None, queue=False, api_visibility="private")
