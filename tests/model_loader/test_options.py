"""The checked request types: every limit applied by one constructor, with one message per mistake, and a
checked request taken back as it is."""

from __future__ import annotations

import dataclasses

import pytest

from model_loader.errors import InvalidInputError
from model_loader.settings import Settings
from model_loader.tasks.options import (
    ClassifyRequest,
    ExtractRequest,
    GenerateRequest,
    SummarizeRequest,
    checked_names,
    count_names,
)

LIMITS = Settings(max_text_chars=50, max_labels=3, max_label_chars=8, max_prompt_chars=60, max_new_tokens=32,
                  summary_max_chars=200)


def message(build, **raw) -> str:
    with pytest.raises(InvalidInputError) as caught:
        build(LIMITS, **raw)
    return str(caught.value)


def test_labels_from_a_string_or_a_list_give_the_same_request():
    a = ClassifyRequest.checked(LIMITS, text="t", labels="财经，体育, 财经")
    b = ClassifyRequest.checked(LIMITS, text="t", labels=["财经", "体育"])
    assert a == b == ClassifyRequest("t", ("财经", "体育"))


@pytest.mark.parametrize(
    "request_",
    [
        ClassifyRequest.checked(LIMITS, text=" 文本 ", labels="a,b"),
        ExtractRequest.checked(LIMITS, text="文本", fields=["甲", "乙"], threshold=1, exclusive=True),
        GenerateRequest.checked(LIMITS, prompt="p"),
        SummarizeRequest.checked(LIMITS, text="文本"),
    ],
)
def test_a_checked_request_checked_again_is_the_same_request(request_):
    raw = {f.name: getattr(request_, f.name) for f in dataclasses.fields(request_)}
    assert type(request_).checked(LIMITS, **raw) == request_


def test_defaults_are_the_settings_limits():
    assert GenerateRequest.checked(LIMITS, prompt="p").max_new_tokens == 32
    assert SummarizeRequest.checked(LIMITS, text="t").max_chars == 100
    assert SummarizeRequest.checked(Settings(summary_max_chars=40), text="t").max_chars == 40
    assert ExtractRequest.checked(LIMITS, text="t", fields="a") == ExtractRequest("t", ("a",), 0.0, False)


@pytest.mark.parametrize(
    ("build", "raw", "words"),
    [
        (ClassifyRequest.checked, {"text": "", "labels": "a"}, "文本为空 · `text` is empty"),
        (ClassifyRequest.checked, {"text": 5, "labels": "a"}, "`text` must be a string, got int"),
        (ClassifyRequest.checked, {"text": "t", "labels": "a,b,c,d"}, "4 labels given; at most 3"),
        (ExtractRequest.checked, {"text": "t", "fields": "a", "threshold": 2}, "from 0 to 1, got 2"),
        (ExtractRequest.checked, {"text": "t", "fields": "a", "threshold": True}, "from 0 to 1, got True"),
        (ExtractRequest.checked, {"text": "t", "fields": "a", "threshold": float("nan")}, "got NaN or infinity"),
        (ExtractRequest.checked, {"text": "t", "fields": "a", "exclusive": 1}, "`exclusive` must be true or false"),
        (ExtractRequest.checked, {"text": "t", "fields": ""}, "没有字段 · no fields given"),
        (GenerateRequest.checked, {"prompt": "p", "max_new_tokens": 0}, "from 1 to 32, got 0"),
        (GenerateRequest.checked, {"prompt": "p", "max_new_tokens": 2.0}, "from 1 to 32, got 2.0"),
        (GenerateRequest.checked, {"prompt": "p" * 61}, "SEQGPT_MAX_PROMPT_CHARS"),
        (SummarizeRequest.checked, {"text": "t", "max_chars": 201}, "from 1 to 200, got 201"),
        (SummarizeRequest.checked, {"text": "  ", "max_chars": 20}, "`text` is empty"),
    ],
)
def test_each_mistake_has_one_bilingual_message_saying_how_to_fix_it(build, raw, words):
    text = message(build, **raw)
    assert words in text and " · " in text


def test_a_batch_s_names_and_options_are_checked_with_a_stand_in_text_then_with_each_row():
    whole = checked_names(LIMITS, "extract", "甲，乙", {"threshold": 0.5})
    assert isinstance(whole, ExtractRequest) and whole.fields == ("甲", "乙") and whole.threshold == 0.5
    row = checked_names(LIMITS, "classify", ["甲"], {}, text="行")
    assert row == ClassifyRequest("行", ("甲",))
    with pytest.raises(InvalidInputError, match="`text` is empty"):
        checked_names(LIMITS, "classify", ["甲"], {}, text="")


def test_count_names_counts_what_was_named_even_beyond_the_limits():
    assert count_names(",".join("abcdefgh")) == 8 and count_names("") == 0 and count_names(5) == 0
