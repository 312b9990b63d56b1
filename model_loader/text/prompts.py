"""SeqGPT prompts and input validation: pure functions, no model.

The prompt format is the one SeqGPT-560M was trained on; changing the wording
costs quality, so it is built in exactly one place, ``build_prompt`` (the UI's example
prompts are built by it too).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..errors import InvalidInputError

GEN_TOKEN = "[GEN]"
CLASSIFY = "分类"
EXTRACT = "抽取"
LABEL_JOINER = "，"
# ASCII and full-width commas, the ideographic enumeration comma and newlines all separate labels.
# Semicolons too: "财经；体育；科技" was taken as one label, which then won at 100%.
_LABEL_SEPARATORS = re.compile(r"[,，、;；\n\r]+")


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


def check_unicode(value: str, what: str) -> str:
    """Refuse lone UTF-16 surrogates: JSON escapes allow them, but no tokenizer, log or file can hold them."""
    for index, char in enumerate(value):
        if "\ud800" <= char <= "\udfff":
            raise InvalidInputError(
                f"{what} 含有无效的 Unicode 字符 · {what} has an invalid Unicode character (a lone surrogate "
                f"U+{ord(char):04X}) at position {index}: send it as valid UTF-8 text"
            )
    return value


def check_text(text: object, max_chars: int, what: str = "text") -> str:
    """Return the text if it is usable; raise InvalidInputError saying how to fix it otherwise."""
    zh = "提示" if what == "prompt" else "文本"
    if not isinstance(text, str):
        raise InvalidInputError(f"{zh}必须是字符串 · `{what}` must be a string, got {type(text).__name__}")
    if not text.strip():
        hint = "write the prompt for the model to continue" if what == "prompt" else "paste the text to analyse"
        raise InvalidInputError(f"{zh}为空 · `{what}` is empty: {hint}")
    if len(text) > max_chars:
        limit = "SEQGPT_MAX_PROMPT_CHARS" if what == "prompt" else "SEQGPT_MAX_TEXT_CHARS"
        raise InvalidInputError(
            f"{zh}过长 · `{what}` has {len(text):,} characters; at most {max_chars:,} are accepted per request: "
            f"send it in several parts, or raise {limit}"
        )
    return check_unicode(text, what)


def parse_labels(
    labels: object, max_labels: int, max_label_chars: int, what: str = "labels"
) -> list[str]:
    """Labels from ``"财经，体育"`` or ``["财经", "体育"]``, stripped and de-duplicated in order.

    One string is split at the separators; a list is taken as it is, so a list item such as
    ``"A,B"`` stays one label (the only way for a label to hold a comma)."""
    zh = "字段" if what == "fields" else "标签"
    if isinstance(labels, str):
        pieces = _LABEL_SEPARATORS.split(labels)
    elif isinstance(labels, list | tuple):
        for item in labels:
            if not isinstance(item, str):
                raise InvalidInputError(
                    f"{zh}必须是字符串 · {what} must be strings; got {type(item).__name__} {_shown(item)}: "
                    'send e.g. ["财经", "体育"] or "财经，体育"'
                )
        pieces = list(labels)
    else:
        raise InvalidInputError(
            f'{zh}格式不对 · {what} must be a list of strings or one string such as "财经，体育", '
            f"not {type(labels).__name__}"
        )
    result = list(dict.fromkeys(piece.strip() for piece in pieces if piece.strip()))
    if not result:
        example = "公司名称，金额" if what == "fields" else "财经，体育"
        raise InvalidInputError(f"没有{zh} · no {what} given: type at least one, separated by commas, e.g. {example}")
    if len(result) > max_labels:
        raise InvalidInputError(
            f"{zh}过多 · {len(result)} {what} given; at most {max_labels} are allowed per request: "
            f"split them over several requests, or raise SEQGPT_MAX_LABELS"
        )
    for label in result:
        check_unicode(label, what)
        if len(label) > max_label_chars:
            raise InvalidInputError(
                f"{zh}过长 · the {what[:-1]} {_shown(label[:20])}… has {len(label)} characters; "
                f"at most {max_label_chars} are allowed: use a short name such as 公司名称"
            )
    return result


def _shown(value: object) -> str:
    """A user's value quoted in a message, cut short so that a huge value cannot flood the message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "…"
