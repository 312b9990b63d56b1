"""Request bodies: their shape is checked by pydantic, their values by the engine's request types, and
every error says how to fix it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from model_loader.errors import InvalidInputError
from model_loader.settings import Settings
from model_loader.tasks.options import ClassifyRequest
from webui.api.schemas import ClassifyBody, ExtractBody, GenerateBody, describe_errors

LIMITS = Settings(max_text_chars=50, max_labels=3, max_label_chars=8, max_prompt_chars=60, max_new_tokens=32)


def error_of(model, data) -> str:
    with pytest.raises((ValidationError, InvalidInputError)) as info:
        model.model_validate(data).checked(LIMITS)
    error = info.value
    return describe_errors(error.errors()) if isinstance(error, ValidationError) else str(error)


def test_labels_may_be_a_list_or_a_comma_separated_string():
    a = ClassifyBody.model_validate({"text": "t", "labels": "财经，体育, 科技"}).checked(LIMITS)
    b = ClassifyBody.model_validate({"text": "t", "labels": ["财经", "体育", "科技"]}).checked(LIMITS)
    assert a == b == ClassifyRequest("t", ("财经", "体育", "科技"))


def test_empty_text_says_to_send_text():
    assert "`text` is empty" in error_of(ClassifyBody, {"text": "  ", "labels": "a"})


def test_missing_field_names_it_with_an_example():
    message = error_of(ClassifyBody, {"text": "t"})
    assert "`labels` is missing" in message and '"labels": [' in message


def test_wrong_types_are_named_with_what_to_send():
    assert "`text` must be a string, got int" in error_of(ClassifyBody, {"text": 5, "labels": ["a"]})
    message = error_of(ClassifyBody, {"text": "t", "labels": [1, 2]})
    assert "labels must be strings" in message and '["财经", "体育"]' in message


def test_too_long_text_gives_the_limit_and_the_setting():
    message = error_of(ClassifyBody, {"text": "长" * 51, "labels": "a"})
    assert "51 characters" in message and "50" in message and "SEQGPT_MAX_TEXT_CHARS" in message


def test_too_many_and_too_long_labels_are_refused():
    assert "at most 3" in error_of(ClassifyBody, {"text": "t", "labels": "a,b,c,d"})
    assert "at most 8" in error_of(ExtractBody, {"text": "t", "fields": ["一个非常非常长的字段名称"]})


def test_no_labels_after_splitting_is_refused():
    assert "no labels given" in error_of(ClassifyBody, {"text": "t", "labels": " ，, "})


@pytest.mark.parametrize("threshold", [1.5, -0.1, "0.5", True, float("nan"), float("inf")])
def test_extract_threshold_is_a_number_from_0_to_1(threshold):
    message = error_of(ExtractBody, {"text": "t", "fields": "a", "threshold": threshold})
    assert "`threshold` must be a number from 0 to 1" in message and "阈值" in message


def test_extract_threshold_may_be_a_whole_number():
    assert ExtractBody.model_validate({"text": "t", "fields": "a", "threshold": 1}).checked(LIMITS).threshold == 1.0


def test_generate_max_new_tokens_is_bounded_and_must_be_whole():
    assert "from 1 to 32, got 33" in error_of(GenerateBody, {"prompt": "p", "max_new_tokens": 33})
    assert "`max_new_tokens`" in error_of(GenerateBody, {"prompt": "p", "max_new_tokens": "many"})
    assert "`max_new_tokens`" in error_of(GenerateBody, {"prompt": "p", "max_new_tokens": 2.5})
    assert GenerateBody.model_validate({"prompt": "p"}).checked(LIMITS).max_new_tokens == 32


def test_body_that_is_not_an_object_is_explained():
    assert "must be a JSON object" in error_of(ClassifyBody, ["text"])


def test_markup_in_labels_stays_plain_text():
    body = ClassifyBody.model_validate({"text": "t", "labels": ["<b>x</b>"]})
    assert body.checked(Settings()).labels == ("<b>x</b>",)


def test_the_api_docs_still_show_each_field_s_type():
    properties = ExtractBody.model_json_schema()["properties"]
    assert properties["text"]["type"] == "string" and properties["threshold"]["maximum"] == 1
    assert set(ClassifyBody.model_json_schema()["required"]) == {"text", "labels"}
