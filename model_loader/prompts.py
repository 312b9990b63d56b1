"""SeqGPT prompts and input validation: pure functions, no model.

The prompt format is the one SeqGPT-560M was trained on; changing the wording
costs quality, so it is built in exactly one place.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .errors import InvalidInputError

GEN_TOKEN = "[GEN]"
CLASSIFY = "分类"
EXTRACT = "抽取"
LABEL_JOINER = "，"
# ASCII and full-width commas, the ideographic enumeration comma and newlines all separate labels.
_LABEL_SEPARATORS = re.compile(r"[,，、\n\r]+")


def build_prompt(text: str, task: str, labels: Sequence[str]) -> str:
    """The exact SeqGPT prompt: ``输入: {text}\\n{task}: {labels}\\n输出: [GEN]``."""
    if task not in (CLASSIFY, EXTRACT):
        raise ValueError(f"task must be {CLASSIFY!r} or {EXTRACT!r}, not {task!r}")
    joined = LABEL_JOINER.join(label.strip() for label in labels)
    return f"输入: {text.strip()}\n{task}: {joined}\n输出: {GEN_TOKEN}"


def complete_free_prompt(prompt: str) -> str:
    """Append ``[GEN]`` when a free prompt stops at ``输出:`` as the model expects it there."""
    stripped = prompt.rstrip()
    if stripped.endswith(("输出:", "输出：")):
        return f"{stripped} {GEN_TOKEN}"
    return prompt


def check_text(text: object, max_chars: int, what: str = "text") -> str:
    """Return the text if it is usable; raise InvalidInputError saying how to fix it otherwise."""
    if not isinstance(text, str):
        raise InvalidInputError(f"{what} must be a string, got {type(text).__name__}")
    if not text.strip():
        raise InvalidInputError(f"{what} is empty: paste the text to analyse")
    if len(text) > max_chars:
        raise InvalidInputError(
            f"{what} has {len(text):,} characters; at most {max_chars:,} are accepted per request: "
            "send it in several parts, or raise SEQGPT_MAX_TEXT_CHARS"
        )
    return text


def parse_labels(
    labels: object, max_labels: int, max_label_chars: int, what: str = "labels"
) -> list[str]:
    """Labels from ``"财经，体育"`` or ``["财经", "体育"]``: split, stripped, de-duplicated in order."""
    if isinstance(labels, str):
        pieces = _LABEL_SEPARATORS.split(labels)
    elif isinstance(labels, list | tuple):
        pieces = []
        for item in labels:
            if not isinstance(item, str):
                raise InvalidInputError(
                    f"{what} must be strings; got {type(item).__name__} {item!r}: "
                    'send e.g. ["财经", "体育"] or "财经，体育"'
                )
            pieces.extend(_LABEL_SEPARATORS.split(item))
    else:
        raise InvalidInputError(
            f'{what} must be a list of strings or one string such as "财经，体育", '
            f"not {type(labels).__name__}"
        )
    result = list(dict.fromkeys(piece.strip() for piece in pieces if piece.strip()))
    if not result:
        raise InvalidInputError(f"no {what} given: type at least one, separated by commas, e.g. 财经，体育")
    if len(result) > max_labels:
        raise InvalidInputError(
            f"{len(result)} {what} given; at most {max_labels} are allowed per request: "
            "split them over several requests, or raise SEQGPT_MAX_LABELS"
        )
    for label in result:
        if len(label) > max_label_chars:
            raise InvalidInputError(
                f"the {what[:-1] if what.endswith('s') else what} {label[:20]!r}… has {len(label)} characters; "
                f"at most {max_label_chars} are allowed: use a short name such as 公司名称"
            )
    return result
