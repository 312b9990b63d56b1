"""Request models: the engine's limits are enforced at the edge and every error says how to fix it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from model_loader.settings import Settings
from webui.api.schemas import ClassifyRequest, ExtractRequest, GenerateRequest, describe_errors

LIMITS = Settings(max_text_chars=50, max_labels=3, max_label_chars=8, max_prompt_chars=60, max_new_tokens=32)


def error_of(model, data) -> str:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data, context={"limits": LIMITS})
    return describe_errors(info.value.errors())


def test_labels_may_be_a_list_or_a_comma_separated_string():
    a = ClassifyRequest.model_validate({"text": "t", "labels": "财经，体育, 科技"}, context={"limits": LIMITS})
    b = ClassifyRequest.model_validate({"text": "t", "labels": ["财经", "体育", "科技"]}, context={"limits": LIMITS})
    assert a.labels == b.labels == ["财经", "体育", "科技"]


def test_empty_text_says_to_send_text():
    assert "`text` is empty" in error_of(ClassifyRequest, {"text": "  ", "labels": "a"})


def test_missing_field_names_it_with_an_example():
    message = error_of(ClassifyRequest, {"text": "t"})
    assert "`labels` is missing" in message and '"labels": [' in message


def test_wrong_types_are_named_once_per_field():
    message = error_of(ClassifyRequest, {"text": 5, "labels": [1, 2]})
    assert message.count("`text`") == 1 and message.count("`labels`") == 1
    assert "wrong type" in message


def test_too_long_text_gives_the_limit_and_the_setting():
    message = error_of(ClassifyRequest, {"text": "长" * 51, "labels": "a"})
    assert "51 characters" in message and "50" in message and "SEQGPT_MAX_TEXT_CHARS" in message


def test_too_many_and_too_long_labels_are_refused():
    assert "at most 3" in error_of(ClassifyRequest, {"text": "t", "labels": "a,b,c,d"})
    assert "at most 8" in error_of(ExtractRequest, {"text": "t", "fields": ["一个非常非常长的字段名称"]})


def test_no_labels_after_splitting_is_refused():
    assert "no labels given" in error_of(ClassifyRequest, {"text": "t", "labels": " ，, "})


def test_extract_threshold_is_bounded():
    assert "`threshold`" in error_of(ExtractRequest, {"text": "t", "fields": "a", "threshold": 1.5})


def test_generate_max_new_tokens_is_bounded_and_must_be_whole():
    assert "more than the limit of 32" in error_of(GenerateRequest, {"prompt": "p", "max_new_tokens": 33})
    assert "`max_new_tokens`" in error_of(GenerateRequest, {"prompt": "p", "max_new_tokens": "many"})
    assert GenerateRequest.model_validate({"prompt": "p"}, context={"limits": LIMITS}).max_new_tokens is None


def test_body_that_is_not_an_object_is_explained():
    assert "must be a JSON object" in error_of(ClassifyRequest, ["text"])


def test_markup_in_labels_stays_plain_text():
    req = ClassifyRequest.model_validate(
        {"text": "t", "labels": ["<b>x</b>"]}, context={"limits": Settings()}
    )
    assert req.labels == ["<b>x</b>"]
