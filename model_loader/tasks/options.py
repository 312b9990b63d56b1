"""One checked request type per task, built by ``checked`` and then trusted by every step after it.

In the style of vLLM's ``SamplingParams``: whoever receives a request (the JSON API, a UI handler, the
batch tab, a job, an evaluation, a replica) builds one of these with ``checked(settings, ...)``, which
applies every limit of the settings and raises ``InvalidInputError`` with the one bilingual message
for each mistake. A task's ``plan`` takes the checked value and checks nothing again, and ``checked``
given a value it returned returns an equal one, so building it twice never words a mistake twice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import InvalidInputError
from ..settings import Settings
from ..text.prompts import check_text, parse_labels


@dataclass(frozen=True)
class ClassifyRequest:
    """Pick one of the labels for a text."""

    text: str  # the text to classify: not blank, at most SEQGPT_MAX_TEXT_CHARS characters
    labels: tuple[str, ...]  # the candidate labels, stripped, de-duplicated, in the order given

    @classmethod
    def checked(cls, settings: Settings, *, text: object, labels: object) -> ClassifyRequest:
        """``labels`` may be a list or one string split at commas; InvalidInputError says what to fix."""
        text = check_text(text, settings.max_text_chars)
        return cls(text, tuple(parse_labels(labels, settings.max_labels, settings.max_label_chars)))


@dataclass(frozen=True)
class ExtractRequest:
    """Find the mentions of each field in a text."""

    text: str  # the text to read: not blank, at most SEQGPT_MAX_TEXT_CHARS characters
    fields: tuple[str, ...]  # the field names, stripped, de-duplicated, in the order given
    threshold: float = 0.0  # mentions scoring below it (0 to 1) are left out
    exclusive: bool = False  # a span found under several fields stays under its best one only

    @classmethod
    def checked(
        cls, settings: Settings, *, text: object, fields: object, threshold: object = 0.0, exclusive: object = False
    ) -> ExtractRequest:
        """``fields`` may be a list or one string split at commas; InvalidInputError says what to fix."""
        text = check_text(text, settings.max_text_chars)
        names = parse_labels(fields, settings.max_labels, settings.max_label_chars, what="fields")
        return cls(text, tuple(names), check_threshold(threshold), check_exclusive(exclusive))


@dataclass(frozen=True)
class GenerateRequest:
    """Continue a free prompt in SeqGPT's own format."""

    prompt: str  # not blank, at most SEQGPT_MAX_PROMPT_CHARS characters
    max_new_tokens: int  # the most tokens to write, 1 to SEQGPT_MAX_NEW_TOKENS (that limit when not given)

    @classmethod
    def checked(cls, settings: Settings, *, prompt: object, max_new_tokens: object = None) -> GenerateRequest:
        """InvalidInputError says what to fix; a bad length is named before a bad prompt."""
        length = check_length(settings, max_new_tokens)
        return cls(check_text(prompt, settings.max_prompt_chars, what="prompt"), length)


@dataclass(frozen=True)
class SummarizeRequest:
    """Summarise a text in at most ``max_chars`` characters."""

    text: str  # the text to summarise: not blank, at most SEQGPT_MAX_TEXT_CHARS characters
    max_chars: int  # the longest summary, 1 to SEQGPT_SUMMARY_MAX_CHARS (100, or that limit, when not given)

    @classmethod
    def checked(cls, settings: Settings, *, text: object, max_chars: object = None) -> SummarizeRequest:
        """InvalidInputError says what to fix; a bad length is named before a bad text."""
        length = check_max_chars(settings, max_chars)
        return cls(check_text(text, settings.max_text_chars), length)


TaskRequest = ClassifyRequest | ExtractRequest | GenerateRequest | SummarizeRequest
# Stands for the texts of a batch or job while its labels and options are checked, once for the whole file.
ANY_TEXT = "-"


def checked_names(
    settings: Settings, task: str, names: object, options: Mapping[str, object], text: object = ANY_TEXT
) -> ClassifyRequest | ExtractRequest:
    """A classification (``task == "classify"``) or extraction request, as one row of a batch or job asks
    for it: the file's labels or fields and options, with the row's text."""
    if task == "classify":
        return ClassifyRequest.checked(settings, text=text, labels=names, **options)
    return ExtractRequest.checked(settings, text=text, fields=names, **options)


def count_names(names: object) -> int:
    """How many labels or fields a request named, whatever the limits (0 if none can be read): for a log
    line, even of a refused request."""
    try:
        return len(parse_labels(names, max_labels=10**9, max_label_chars=10**9))
    except InvalidInputError:
        return 0


def check_threshold(threshold: object) -> float:
    """A number from 0 to 1 (an int is taken as a float); NaN, infinities, booleans and strings are refused."""
    number = threshold if isinstance(threshold, int | float) and not isinstance(threshold, bool) else None
    if number is None or not math.isfinite(number) or not 0.0 <= number <= 1.0:
        shown = repr(threshold) if number is None or math.isfinite(number) else "NaN or infinity"
        raise InvalidInputError(
            f"阈值有误 · `threshold` must be a number from 0 to 1, got {shown}: "
            'send e.g. "threshold": 0.5, or leave it out'
        )
    return float(number)


def check_exclusive(exclusive: object) -> bool:
    """True or false; 1, 0 and strings are refused."""
    if not isinstance(exclusive, bool):
        raise InvalidInputError(
            f"互斥选项类型不对 · `exclusive` must be true or false, got {exclusive!r}: "
            "send true or false, or leave it out"
        )
    return exclusive


def check_length(settings: Settings, max_new_tokens: object) -> int:
    """The number of tokens to write: the setting's limit when not given."""
    limit = settings.max_new_tokens
    if max_new_tokens is None:
        return limit
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or not 1 <= max_new_tokens <= limit:
        raise InvalidInputError(
            f"最多生成长度有误 · `max_new_tokens` must be a whole number from 1 to {limit}, "
            f"got {max_new_tokens!r}: send one in that range, or leave it out (the limit is SEQGPT_MAX_NEW_TOKENS)"
        )
    return max_new_tokens


def check_max_chars(settings: Settings, max_chars: object) -> int:
    """The longest summary: 100 (or the setting's limit, if lower) when not given."""
    limit = settings.summary_max_chars
    if max_chars is None:
        return min(100, limit)
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or not 1 <= max_chars <= limit:
        raise InvalidInputError(
            f"摘要长度有误 · `max_chars` must be a whole number from 1 to {limit}, got {max_chars!r}: "
            'send e.g. "max_chars": 100 (the limit is SEQGPT_SUMMARY_MAX_CHARS)'
        )
    return max_chars
