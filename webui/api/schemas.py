"""The JSON bodies of the task routes (their shape; the values are checked by the engine's request types)
and the JSON shapes of the results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field
from pydantic.json_schema import JsonDict

from model_loader.results import Classification, Extraction, Generation
from model_loader.settings import Settings
from model_loader.tasks.options import ClassifyRequest, ExtractRequest, GenerateRequest, TaskRequest

# How to send each field right; appended to missing-field errors.
HINTS = {
    "text": 'send the text as a JSON string, e.g. "text": "小米集团今天发布了新款手机"',
    "labels": 'send a list of strings or one comma-separated string, e.g. "labels": ["财经", "科技"]',
    "fields": 'send a list of strings or one comma-separated string, e.g. "fields": ["公司名称", "金额"]',
    "prompt": 'send the prompt as a JSON string, e.g. "prompt": "输入: ...\\n分类: 财经，科技\\n输出: [GEN]"',
}

# Each field's name in the Chinese half of a message.
ZH_NAMES = {"text": "文本", "labels": "标签", "fields": "字段", "prompt": "提示"}

# What /api/docs shows of each field; the fields themselves take any JSON value, so that every value,
# whatever its type, is judged by the engine's request type in the same words as in the UI.
_STRING: JsonDict = {"type": "string"}
_NAMES: JsonDict = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}


class TaskBody(BaseModel):
    """A task route's JSON body: its fields as sent, turned into the engine's checked request by ``checked``."""

    def checked(self, limits: Settings) -> TaskRequest:
        raise NotImplementedError


class ClassifyBody(TaskBody):
    """The body of POST /api/classify: see ``model_loader.tasks.options.ClassifyRequest`` for each field."""

    text: Any = Field(json_schema_extra=_STRING, examples=["小米集团今天发布了新款手机，售价3999元。"])
    labels: Any = Field(json_schema_extra=_NAMES, examples=[["财经", "体育", "科技"]])

    def checked(self, limits: Settings) -> ClassifyRequest:
        return ClassifyRequest.checked(limits, text=self.text, labels=self.labels)


class ExtractBody(TaskBody):
    """The body of POST /api/extract: see ``model_loader.tasks.options.ExtractRequest`` for each field."""

    text: Any = Field(json_schema_extra=_STRING, examples=["小米集团今天发布了新款手机，售价3999元。"])
    fields: Any = Field(json_schema_extra=_NAMES, examples=[["公司名称", "金额"]])
    threshold: Any = Field(0.0, json_schema_extra={"type": "number", "minimum": 0, "maximum": 1})
    exclusive: Any = Field(False, json_schema_extra={"type": "boolean"})

    def checked(self, limits: Settings) -> ExtractRequest:
        return ExtractRequest.checked(
            limits, text=self.text, fields=self.fields, threshold=self.threshold, exclusive=self.exclusive
        )


class GenerateBody(TaskBody):
    """The body of POST /api/generate: see ``model_loader.tasks.options.GenerateRequest`` for each field."""

    prompt: Any = Field(
        json_schema_extra=_STRING, examples=["输入: 小米集团今天发布了新款手机\n分类: 财经，科技\n输出: [GEN]"]
    )
    max_new_tokens: Any = Field(None, json_schema_extra={"type": "integer", "minimum": 1})

    def checked(self, limits: Settings) -> GenerateRequest:
        return GenerateRequest.checked(limits, prompt=self.prompt, max_new_tokens=self.max_new_tokens)


def describe_errors(errors: Sequence[Mapping[str, Any]]) -> str:
    """One message for people from pydantic's error list. Only the body's shape can fail there (not an
    object, a field missing); its values are judged by the engine's request types."""
    messages: list[str] = []
    for error in errors:
        loc = error.get("loc", ())
        field = str(loc[0]) if loc else ""
        if not field:
            messages.append(
                "请求体必须是 JSON 对象 · the request body must be a JSON object, "
                'e.g. {"text": "...", "labels": ["..."]}'
            )
        elif error.get("type") == "missing":
            hint = HINTS.get(field, "add it to the JSON body")
            messages.append(f"缺少{ZH_NAMES.get(field, '字段')} · `{field}` is missing: {hint}")
        else:
            messages.append(f"取值不对 · `{field}`: {error.get('msg', 'is not valid')}")
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
