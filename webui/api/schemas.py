"""JSON request models (validated against the engine's limits) and the JSON shapes of the results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field, StrictBool, StrictStr, ValidationInfo, field_validator

from model_loader.results import Classification, Extraction, Generation
from model_loader.settings import Settings
from model_loader.text.prompts import check_unicode, parse_labels

# How to send each field right; appended to type and missing-field errors.
HINTS = {
    "text": 'send the text as a JSON string, e.g. "text": "小米集团今天发布了新款手机"',
    "labels": 'send a list of strings or one comma-separated string, e.g. "labels": ["财经", "科技"]',
    "fields": 'send a list of strings or one comma-separated string, e.g. "fields": ["公司名称", "金额"]',
    "prompt": 'send the prompt as a JSON string, e.g. "prompt": "输入: ...\\n分类: 财经，科技\\n输出: [GEN]"',
    "max_new_tokens": 'send a whole number, e.g. "max_new_tokens": 64, or leave it out',
    "threshold": 'send a number from 0 to 1, e.g. "threshold": 0.5, or leave it out',
    "exclusive": 'send true or false, or leave it out',
}

# Each field's name in the Chinese half of a message.
ZH_NAMES = {
    "text": "文本", "labels": "标签", "fields": "字段", "prompt": "提示", "max_new_tokens": "最多生成长度",
    "threshold": "阈值", "exclusive": "互斥选项",
}


def _limits(info: ValidationInfo) -> Settings:
    context = info.context or {}
    return context.get("limits") or Settings()


def _check_text(name: str, value: str, limit: int) -> str:
    if not value.strip():
        what = "the prompt for the model to continue" if name == "prompt" else "the text you want analysed"
        raise ValueError(f"{ZH_NAMES[name]}为空 · `{name}` is empty: send {what}")
    if len(value) > limit:
        raise ValueError(
            f"{ZH_NAMES[name]}过长 · `{name}` is {len(value)} characters, more than the limit of {limit}: "
            f"send a shorter text, or raise SEQGPT_MAX_{'PROMPT' if name == 'prompt' else 'TEXT'}_CHARS"
        )
    return check_unicode(value, name)


class _TextRequest(BaseModel):
    """A request about one text, limited to SEQGPT_MAX_TEXT_CHARS."""

    text: StrictStr = Field(examples=["小米集团今天发布了新款手机，售价3999元。"])

    @field_validator("text")
    @classmethod
    def _text(cls, value: str, info: ValidationInfo) -> str:
        return _check_text("text", value, _limits(info).max_text_chars)


class ClassifyRequest(_TextRequest):
    labels: StrictStr | list[StrictStr] = Field(examples=[["财经", "体育", "科技"]])

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: str | list[str], info: ValidationInfo) -> list[str]:
        limits = _limits(info)
        return parse_labels(value, limits.max_labels, limits.max_label_chars)


class ExtractRequest(_TextRequest):
    fields: StrictStr | list[StrictStr] = Field(examples=[["公司名称", "金额"]])
    # Strict like max_new_tokens: a number must come as a JSON number, never as a string.
    threshold: float = Field(0.0, ge=0.0, le=1.0, strict=True, allow_inf_nan=False)
    exclusive: StrictBool = False

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: str | list[str], info: ValidationInfo) -> list[str]:
        limits = _limits(info)
        return parse_labels(value, limits.max_labels, limits.max_label_chars, what="fields")


class GenerateRequest(BaseModel):
    prompt: StrictStr = Field(examples=["输入: 小米集团今天发布了新款手机\n分类: 财经，科技\n输出: [GEN]"])
    max_new_tokens: int | None = Field(None, ge=1, strict=True)

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str, info: ValidationInfo) -> str:
        return _check_text("prompt", value, _limits(info).max_prompt_chars)

    @field_validator("max_new_tokens")
    @classmethod
    def _max_new_tokens(cls, value: int | None, info: ValidationInfo) -> int | None:
        limit = _limits(info).max_new_tokens
        if value is not None and value > limit:
            raise ValueError(
                f"最多生成长度过大 · `max_new_tokens` is {value}, more than the limit of {limit}: ask for fewer"
            )
        return value


def describe_errors(errors: Sequence[Mapping[str, Any]]) -> str:
    """One message for people from pydantic's error list: what is wrong with each field, how to send it."""
    messages: list[str] = []
    seen: set[str] = set()
    for error in errors:
        loc = error.get("loc", ())
        field = str(loc[0]) if loc else ""
        if field in seen:
            continue  # a union type reports each alternative; one message per field is enough
        seen.add(field)
        kind = error.get("type", "")
        hint = HINTS.get(field, "")
        zh = ZH_NAMES.get(field, "")
        if not field:
            messages.append(
                "请求体必须是 JSON 对象 · the request body must be a JSON object, "
                'e.g. {"text": "...", "labels": ["..."]}'
            )
        elif kind == "missing":
            messages.append(f"缺少{zh or '字段'} · `{field}` is missing: {hint or 'add it to the JSON body'}")
        elif kind == "value_error":
            messages.append(str(error.get("msg", "")).removeprefix("Value error, "))
        elif kind == "finite_number":
            messages.append(f"{zh}不是数字 · `{field}` is not a number (NaN or infinity): {hint}")
        elif kind in ("less_than_equal", "greater_than_equal", "less_than", "greater_than"):
            messages.append(f"{zh}超出范围 · `{field}` is out of range ({error.get('msg', '')}): {hint}")
        elif kind.endswith(("_type", "_parsing")):
            messages.append(f"{zh}类型不对 · `{field}` has the wrong type: {hint or error.get('msg', '')}")
        else:
            message = f"{zh}取值不对 · `{field}`: {error.get('msg', 'is not valid')}"
            messages.append(f"{message}; {hint}" if hint else message)
    return "; ".join(messages) or "请求无效 · the request is not valid"


def classification_json(result: Classification) -> dict[str, Any]:
    return {"label": result.label, "scores": result.scores, "split": result.split, "pieces": result.pieces}


def extraction_json(result: Extraction) -> dict[str, Any]:
    return {
        "fields": {
            name: [
                {"text": m.text, "start": m.start, "end": m.end, "score": m.score} for m in mentions
            ]
            for name, mentions in result.fields.items()
        },
        "raw": result.raw,
        "split": result.split,
        "pieces": result.pieces,
        "dropped": result.dropped,
    }


def generation_json(result: Generation) -> dict[str, Any]:
    return {
        "text": result.text,
        "prompt_tokens": result.prompt_tokens,
        "new_tokens": result.new_tokens,
        "truncated": result.truncated,
    }
