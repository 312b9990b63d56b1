"""Summaries, read top to bottom: plan (pieces, one prompt each) → run (greedy generation) → result.

The prompt template is the setting SEQGPT_SUMMARY_PROMPT (default in settings.py, from the GTE + SeqGPT
write-ups). A text longer than the window is split as the other tasks split it, each piece summarised
in its share of ``max_chars``, and the pieces' summaries joined in order. The result carries the
compression ratio and the GTE similarity to the source, flagged against the thresholds in the settings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from ..results import Generation, Summary
from ..settings import Settings
from ..text.splitting import Piece, split_text
from ..text.tokens import Tokens
from .generate import GeneratePlan
from .options import SummarizeRequest

# Room left in the window for tokenisation differences at piece boundaries.
_MARGIN_TOKENS = 8
DRIFTED, TOO_TERSE, TOO_LONG = "drifted", "too_terse", "too_long"


@dataclass
class SummarizePlan:
    """One summary request: a free-prompt generation per piece of the text."""

    text: str
    max_chars: int
    pieces: list[Piece]
    generations: list[GeneratePlan]


def build_summary_prompt(template: str, text: str, max_chars: int) -> str:
    """The template filled in; plain replacement, so braces in the text or the template stay as they are."""
    return template.replace("{max_chars}", str(max_chars)).replace("{text}", text)


def plan(tokens: Tokens, settings: Settings, request: SummarizeRequest) -> SummarizePlan:
    """Split a checked request's text to fit the window with room for the answer, build each piece's prompt."""
    text, max_chars = request.text, request.max_chars
    answer_tokens = min(settings.max_new_tokens, max_chars)  # a token writes at least one character, mostly more
    template = settings.summary_prompt
    overhead = tokens.count_tokens(build_summary_prompt(template, "", max_chars))
    budget = settings.window_tokens - overhead - answer_tokens - _MARGIN_TOKENS
    if budget < 32:
        raise InvalidInputError(
            f"摘要提示过长 · the summary prompt and answer take {overhead + answer_tokens} of the model's "
            f"{settings.window_tokens} tokens: ask for a shorter max_chars or shorten SEQGPT_SUMMARY_PROMPT"
        )
    pieces = split_text(text, budget, tokens.count_tokens, settings.overlap_chars)
    share = max(1, max_chars // len(pieces))
    share_tokens = max(1, answer_tokens // len(pieces))
    generations = [
        GeneratePlan(tokens.encode(build_summary_prompt(template, text[p.start : p.end], share)), share_tokens, False)
        for p in pieces
    ]
    return SummarizePlan(text, max_chars, pieces, generations)


def flags_for(settings: Settings, ratio: float, similarity: float) -> list[str]:
    """Pure: which health figures are outside their thresholds."""
    flags = []
    if similarity < settings.summary_min_similarity:
        flags.append(DRIFTED)
    if ratio < settings.summary_min_ratio:
        flags.append(TOO_TERSE)
    elif ratio > settings.summary_max_ratio:
        flags.append(TOO_LONG)
    return flags


def result(
    settings: Settings,
    plan: SummarizePlan,
    generations: list[Generation],
    embed: Callable[[Sequence[str]], np.ndarray],
) -> Summary:
    """Join the pieces' answers (cut to max_chars) and measure them against the source."""
    summary = "".join(g.text.strip() for g in generations)[: plan.max_chars]
    ratio = len(summary) / len(plan.text)
    if summary.strip():
        source, written = embed([plan.text, summary])
        similarity = float(np.clip(np.dot(source, written), -1.0, 1.0))
    else:
        similarity = 0.0  # nothing written keeps nothing of the source
    return Summary(
        summary=summary,
        compression_ratio=round(ratio, 4),
        similarity=round(similarity, 4),
        flags=flags_for(settings, ratio, similarity),
        pieces=len(plan.pieces),
    )
