"""Pure conversions from engine results to what the Gradio components show (no Gradio import here)."""

from __future__ import annotations

from model_loader.results import Extraction, Generation, Mention

TABLE_HEADERS = ["字段 Field", "内容 Mention", "起 Start", "止 End", "置信度 Score"]


def highlight_spans(text: str, extraction: Extraction) -> list[tuple[str, str | None]]:
    """The text cut into (piece, field or None) for gr.HighlightedText; overlaps keep the higher score."""
    mentions = sorted(
        ((m, name) for name, found in extraction.fields.items() for m in found if 0 <= m.start < m.end),
        key=lambda pair: (-pair[0].score, pair[0].start),
    )
    taken: list[tuple[Mention, str]] = []
    for mention, name in mentions:
        if all(mention.end <= other.start or mention.start >= other.end for other, _ in taken):
            taken.append((mention, name))
    taken.sort(key=lambda pair: pair[0].start)

    pieces: list[tuple[str, str | None]] = []
    cursor = 0
    for mention, name in taken:
        if mention.start > cursor:
            pieces.append((text[cursor : mention.start], None))
        pieces.append((text[mention.start : mention.end], name))
        cursor = mention.end
    if cursor < len(text):
        pieces.append((text[cursor:], None))
    return pieces


def extraction_rows(extraction: Extraction) -> list[list[object]]:
    """One table row per mention; a field with nothing found gets one row saying so."""
    rows: list[list[object]] = []
    for name, mentions in extraction.fields.items():
        if not mentions:
            rows.append([name, "（无 none）", "", "", ""])
        for m in mentions:
            rows.append([name, m.text, m.start, m.end, round(m.score, 4)])
    return rows


def extraction_markdown(extraction: Extraction) -> str:
    """A Markdown table of the mentions, shown as source text (never rendered as HTML)."""
    lines = ["| " + " | ".join(TABLE_HEADERS) + " |", "|" + " --- |" * len(TABLE_HEADERS)]
    for row in extraction_rows(extraction):
        lines.append("| " + " | ".join(_markdown_cell(cell) for cell in row) + " |")
    return "\n".join(lines)


def _markdown_cell(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def split_note(pieces: int) -> str:
    """Tells the user that a long text was run in overlapping pieces and merged."""
    if pieces <= 1:
        return ""
    return (
        f"文本较长，已分 {pieces} 段处理后合并 · "
        f"The text was longer than the model window: run in {pieces} pieces and merged."
    )


def details_line(request_id: str, latency_ms: float, pieces: int = 1) -> str:
    """The small line under each result: request id (to find it in the log) and latency."""
    parts = [f"请求 Request `{request_id}`", f"{latency_ms:.0f} ms"]
    note = split_note(pieces)
    if note:
        parts.append(note)
    return " · ".join(parts)


def output_capped_note(result: Generation, window_tokens: int) -> str:
    """Says when a free prompt's output was cut short by the model window (the prompt itself is never cut:
    one too long for the window is refused)."""
    if not result.truncated:
        return ""
    return (
        f"输出被截断：提示占 {result.prompt_tokens} 个 token，只剩 {window_tokens - result.prompt_tokens} 个可生成 · "
        f"Output capped: the prompt is {result.prompt_tokens} tokens, so only "
        f"{window_tokens - result.prompt_tokens} of the model's {window_tokens}-token window were left for output."
    )
