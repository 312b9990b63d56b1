"""Pure: a feedback body checked against its stored request, and stored requests as evaluation rows (JSONL)."""

from __future__ import annotations

import json
from typing import Any

from model_loader.errors import InvalidInputError

from .store import VERDICTS, Record, Stored

EXPORT_TASKS = ("classify", "extract")
USAGE = ('send {"verdict": "correct"} or {"verdict": "wrong", "expected": {"label": "体育"}} '
         '(extraction: {"expected": {"fields": {"公司名称": [{"text": "星河科技"}]}}})')


def check_feedback(body: Any, record: Record, max_label_chars: int) -> tuple[str, dict[str, Any] | None]:
    """(verdict, expected in its stored shape); InvalidInputError says what is wrong and how to fix it."""
    if not isinstance(body, dict):
        raise InvalidInputError(f"反馈应为 JSON 对象 · the feedback must be a JSON object: {USAGE}")
    unknown = sorted(set(body) - {"verdict", "expected"})
    if unknown:
        raise InvalidInputError(f"反馈里有未知的键 · unknown keys {unknown}: {USAGE}")
    verdict = body.get("verdict")
    if verdict not in VERDICTS:
        raise InvalidInputError(f"verdict 取值不对 · `verdict` is {verdict!r}: send \"correct\" or \"wrong\"")
    expected = body.get("expected")
    if expected is None:
        return verdict, None
    if verdict == "correct":
        raise InvalidInputError(
            "答案正确时不需要 expected · `expected` goes with \"wrong\" only: a correct answer is its own gold; "
            "send {\"verdict\": \"correct\"}, or mark it wrong and give the right answer"
        )
    if not isinstance(expected, dict):
        raise InvalidInputError(f"expected 应为 JSON 对象 · `expected` must be a JSON object: {USAGE}")
    if record.task == "classify":
        label = _label(expected, max_label_chars)
        _offered("label", [label], _asked(record, "labels", "scores"))
        if isinstance(record.answer, dict) and label == record.answer.get("label"):
            raise InvalidInputError(_SAME.format(what=f"label {label!r}"))
        return verdict, {"label": label}
    if record.task == "extract":
        fields = _fields(expected, record, max_label_chars)
        answered = record.answer.get("fields") if isinstance(record.answer, dict) else None
        _offered("field", list(fields), _asked(record, "fields", "fields"))
        if isinstance(answered, dict) and all(_spans(mentions) == _spans(answered.get(name, []))
                                              for name, mentions in fields.items()):
            raise InvalidInputError(_SAME.format(what="mentions"))
        return verdict, {"fields": fields}
    text = expected.get("text")
    if set(expected) != {"text"} or not isinstance(text, str):
        raise InvalidInputError(
            f"expected 应为 {{\"text\": …}} · for a {record.task} request `expected` is "
            '{"text": "the right answer"}'
        )
    return verdict, {"text": text}


_SAME = ("更正与模型的答案相同 · the right answer sent gives the same {what} as the model's own answer: change it "
         "to the right one, or mark the answer {{\"verdict\": \"correct\"}}")


def _offered(kind: str, names: list[str], asked: Any) -> None:
    """Corrections name what the request asked about: a label it offered, a field it asked for. ``asked``
    is a dict by those names (see ``_asked``); anything else is not checked."""
    if not isinstance(asked, dict):
        return
    unknown = [name for name in names if name not in asked]
    if unknown:
        raise InvalidInputError(
            f"不是这个请求的{'标签' if kind == 'label' else '字段'} · {kind} {unknown[0]!r} is not among the "
            f"request's {kind}s ({'，'.join(asked)}): a correction picks from those; to try another {kind}, send "
            "the text again with it"
        )


def _asked(record: Record, input_key: str, answer_key: str) -> Any:
    """What the request asked about: its input's list of labels or fields, else its answer's keys."""
    asked = record.input.get(input_key)
    if isinstance(asked, list) and all(isinstance(name, str) for name in asked):
        return {name.strip(): None for name in asked}
    return record.answer.get(answer_key) if isinstance(record.answer, dict) else None


def _spans(mentions: Any) -> set[tuple[Any, Any, Any]]:
    return {(m.get("text"), m.get("start"), m.get("end")) for m in mentions if isinstance(m, dict)}


def _label(expected: dict[str, Any], max_chars: int) -> str:
    label = expected.get("label")
    if set(expected) != {"label"} or not isinstance(label, str) or not label.strip():
        raise InvalidInputError(
            f"正确标签应为文字 · `expected` is {json.dumps(expected, ensure_ascii=False)[:80]}: "
            'send {"label": "the right label"}, a non-empty string'
        )
    if len(label.strip()) > max_chars:
        raise InvalidInputError(f"标签过长 · the label is {len(label.strip())} characters, over the limit of "
                                f"{max_chars}: send a shorter label (SEQGPT_MAX_LABEL_CHARS)")
    return label.strip()


def _fields(expected: dict[str, Any], record: Record, max_chars: int) -> dict[str, list[dict[str, Any]]]:
    fields = expected.get("fields")
    if set(expected) != {"fields"} or not isinstance(fields, dict):
        raise InvalidInputError(
            '正确答案应为 {"fields": {字段: [提及]}} · `expected` must be '
            '{"fields": {field: [{"text", "start", "end"}]}}: ' + USAGE
        )
    text = record.text
    checked: dict[str, list[dict[str, Any]]] = {}
    for name, mentions in fields.items():
        if not name.strip() or len(name.strip()) > max_chars:
            raise InvalidInputError(f"字段名不对 · field name {name!r} must be 1 to {max_chars} characters")
        if not isinstance(mentions, list):
            raise InvalidInputError(f"字段 {name} 的提及应为列表 · `{name}` must be a list of mentions, [] for none")
        if name.strip() in checked:
            raise InvalidInputError(f"字段重复 · field {name.strip()!r} is given twice: give each field once, with "
                                    "all its mentions in one list")
        checked[name.strip()] = [_mention(name, mention, text) for mention in mentions]
    return checked


def _mention(name: str, mention: Any, text: str) -> dict[str, Any]:
    """A mention with its offsets: given and checked against the input, or found (first occurrence)."""
    if isinstance(mention, str):
        mention = {"text": mention}
    if not isinstance(mention, dict) or not isinstance(mention.get("text"), str) or not mention["text"]:
        raise InvalidInputError(
            f"提及格式不对 · a mention of `{name}` is {json.dumps(mention, ensure_ascii=False)[:80]}: send "
            '{"text": "…", "start": 0, "end": 4} (end exclusive), or just {"text": "…"} to have it found in the input'
        )
    words, start, end = mention["text"], mention.get("start"), mention.get("end")
    if start is None and end is None:
        start = text.find(words)
        if start < 0:
            raise InvalidInputError(
                f"原文里没有这个提及 · `{name}` mention {words!r} is not in the request's text: copy it exactly from "
                "the input, or give its start and end"
            )
        return {"text": words, "start": start, "end": start + len(words)}
    if not (isinstance(start, int) and isinstance(end, int) and _whole(start) and _whole(end)
            and 0 <= start < end <= len(text)):
        raise InvalidInputError(
            f"位置不对 · `{name}` mention {words!r} has start {start!r} and end {end!r}: give whole numbers with "
            f"0 ≤ start < end ≤ {len(text)} (the text's length; end exclusive), or leave both out"
        )
    if text[start:end] != words:
        raise InvalidInputError(
            f"位置与文字不符 · `{name}` [{start}, {end}) reads {text[start:end]!r}, not {words!r}: fix the offsets "
            "(end exclusive), or leave them out to have the mention found"
        )
    return {"text": words, "start": start, "end": end}


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def gold_row(stored: Stored) -> dict[str, Any] | None:
    """The request as one labelled row of the evaluation harness, or None when it gives no gold: no
    feedback, "wrong" with no right answer, or a text stored cut (its gold would not be the text's)."""
    record, feedback = stored.record, stored.feedback
    if feedback is None or record.truncated:
        return None
    expected = feedback.expected
    if feedback.verdict == "wrong" and expected is None:
        return None
    if record.task == "classify":
        wrong = expected is not None and feedback.verdict == "wrong"
        label = expected["label"] if wrong and expected is not None else record.answer.get("label")
        return {"text": record.text, "label": label, "request_id": record.id} if label else None
    if record.task == "extract":
        fields = (expected["fields"] if expected is not None and feedback.verdict == "wrong"
                  else record.answer.get("fields", {}))
        entities = [{"field": name, "start": m["start"], "end": m["end"], "text": m["text"]}
                    for name, mentions in fields.items() for m in mentions]
        # The harness asks the model for the fields named in the gold; an empty row still counts.
        return {"text": record.text, "entities": entities, "request_id": record.id}
    return None


def export_lines(rows: Any) -> Any:
    """JSONL lines of the gold rows among ``rows`` (stored requests)."""
    for stored in rows:
        row = gold_row(stored)
        if row is not None:
            yield json.dumps(row, ensure_ascii=False) + "\n"


def expected_from_text(task: str, answer: str) -> dict[str, Any]:
    """The History tab's "right answer" box as an ``expected`` body: a label, or one line per field in
    SeqGPT's own output format, ``字段: 提及1|提及2`` (also tab- or ；-separated; ``None`` or nothing for none)."""
    answer = (answer or "").strip()
    if task == "classify":
        return {"label": answer}
    if task != "extract":
        return {"text": answer}
    fields: dict[str, list[str]] = {}
    for number, line in enumerate(answer.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, rest = line.replace("：", ":").partition(":")
        if not sep or not name.strip():
            raise InvalidInputError(
                f"第 {number} 行不是“字段: 提及” · line {number} ({line.strip()[:40]!r}) is not `field: mention`: "
                "write one line per field, e.g. 公司名称: 星河科技|蓝海公司 (None for no mention)"
            )
        pieces = [part.strip() for part in rest.replace("\t", "|").replace("；", "|").replace(";", "|").split("|")]
        fields[name.strip()] = [part for part in pieces if part and part != "None"]
    return {"fields": fields}
