"""Cut a document into passages of whole sentences, each a span of the document (``text[start:end]``)."""

from __future__ import annotations

from dataclasses import dataclass

from model_loader.text.splitting import sentence_spans


@dataclass(frozen=True)
class Passage:
    chunk_id: int
    start: int
    end: int  # exclusive
    text: str


def split_passages(text: str, max_chars: int) -> list[Passage]:
    """Consecutive sentences joined up to ``max_chars``; a longer sentence is cut every ``max_chars``.
    Blank space at a passage's edges is left out, so every passage starts and ends on a character."""
    spans: list[tuple[int, int]] = []
    for sentence in sentence_spans(text):
        for start in range(sentence.start, sentence.end, max_chars):
            spans.append((start, min(start + max_chars, sentence.end)))
    passages: list[Passage] = []
    first = None
    last_end = 0
    for start, end in spans + [(len(text), len(text) + max_chars + 1)]:  # a sentinel closes the last passage
        if first is not None and end - first > max_chars:
            _append(passages, text, first, last_end)
            first = None
        if first is None:
            first = start
        last_end = end
    return passages


def _append(passages: list[Passage], text: str, start: int, end: int) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        passages.append(Passage(len(passages), start, end, text[start:end]))
