"""Split a text that does not fit the model window into sentence-aligned, overlapping pieces.

Every piece is a span of the original text, so results found in a piece map
back to offsets in the original by adding the piece's start.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import InvalidInputError
from ..settings import Settings
from .prompts import EXTRACT, build_prompt

# A sentence ends after one of these marks (and any closing quotes), or at a line break.
_SENTENCE_END = re.compile(r"[。！？!?；;…]+[”’\"')）]*|\n+|(?<=[.])\s+")


@dataclass(frozen=True)
class Piece:
    start: int
    end: int


def sentence_spans(text: str) -> list[Piece]:
    """The text cut after each sentence end; the spans cover the text exactly."""
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        if match.end() > start:
            spans.append(Piece(start, match.end()))
            start = match.end()
    if start < len(text):
        spans.append(Piece(start, len(text)))
    return spans


def _cut_to_budget(text: str, span: Piece, budget: int, count: Callable[[str], int]) -> list[Piece]:
    """Cut one over-long sentence into the longest runs of characters that fit the budget."""
    pieces, start = [], span.start
    while start < span.end:
        low, high = start + 1, span.end
        while low < high:  # the largest end whose slice still fits
            middle = (low + high + 1) // 2
            if count(text[start:middle]) <= budget:
                low = middle
            else:
                high = middle - 1
        pieces.append(Piece(start, low))
        start = low
    return pieces


def split_text(
    text: str, budget_tokens: int, count_tokens: Callable[[str], int], overlap_chars: int
) -> list[Piece]:
    """Pieces of at most ``budget_tokens`` tokens each, repeating up to ``overlap_chars``
    characters of whole sentences from the end of one piece at the start of the next."""
    if count_tokens(text) <= budget_tokens:
        return [Piece(0, len(text))]
    sentences: list[Piece] = []
    for span in sentence_spans(text):
        if count_tokens(text[span.start : span.end]) > budget_tokens:
            sentences.extend(_cut_to_budget(text, span, budget_tokens, count_tokens))
        else:
            sentences.append(span)

    pieces: list[Piece] = []
    first = 0
    while first < len(sentences):
        last = first
        while (
            last + 1 < len(sentences)
            and count_tokens(text[sentences[first].start : sentences[last + 1].end]) <= budget_tokens
        ):
            last += 1
        pieces.append(Piece(sentences[first].start, sentences[last].end))
        if last + 1 >= len(sentences):
            break
        # Step back over whole sentences that fit in the overlap, as long as the next
        # piece can still reach past this one, so that every piece adds new text.
        next_first = last + 1
        while (
            next_first - 1 > first
            and sentences[last].end - sentences[next_first - 1].start <= overlap_chars
            and count_tokens(text[sentences[next_first - 1].start : sentences[last + 1].end]) <= budget_tokens
        ):
            next_first -= 1
        first = next_first
    return pieces


# Room left in the window for tokenisation differences at piece boundaries.
_MARGIN_TOKENS = 8


def window_pieces(
    text: str, task: str, labels: list[str], answer_tokens: int, count_tokens: Callable[[str], int], settings: Settings
) -> list[Piece]:
    """The pieces of ``text`` whose prompts, with these labels and room for the answer, fit the window."""
    overhead = count_tokens(build_prompt("", task, labels))
    budget = settings.window_tokens - overhead - answer_tokens - _MARGIN_TOKENS
    if budget < 32:
        what, zh = ("fields", "字段") if task == EXTRACT else ("labels", "标签")
        raise InvalidInputError(
            f"{zh}太多或太长 · the {what} take {overhead} of the model's {settings.window_tokens} tokens, "
            f"leaving no room for the text: use fewer or shorter {what}"
        )
    return split_text(text, budget, count_tokens, settings.overlap_chars)
