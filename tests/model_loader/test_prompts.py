"""Prompt building and input validation: pure functions, no model."""

from __future__ import annotations

import pytest

from model_loader.errors import InvalidInputError
from model_loader.text.prompts import (
    CLASSIFY,
    EXTRACT,
    build_prompt,
    check_text,
    complete_free_prompt,
    parse_labels,
)

MAX_LABELS = 64
MAX_LABEL_CHARS = 64


# ---- build_prompt -------------------------------------------------------------


def test_build_prompt_is_exactly_the_seqgpt_classification_format():
    prompt = build_prompt("小米集团今天发布了新款手机，售价3999元。", CLASSIFY, ["财经", "体育", "科技"])
    assert prompt == "输入: 小米集团今天发布了新款手机，售价3999元。\n分类: 财经，体育，科技\n输出: [GEN]"


def test_build_prompt_is_exactly_the_seqgpt_extraction_format():
    prompt = build_prompt("阿里巴巴在杭州发布了财报。", EXTRACT, ["公司名称", "地点"])
    assert prompt == "输入: 阿里巴巴在杭州发布了财报。\n抽取: 公司名称，地点\n输出: [GEN]"


def test_build_prompt_strips_the_text_and_each_label():
    prompt = build_prompt("  \n 彭小军认为，国内银行现在走的是台湾的发卡模式。\t\n", EXTRACT, [" 人名 ", "地址\n"])
    assert prompt == "输入: 彭小军认为，国内银行现在走的是台湾的发卡模式。\n抽取: 人名，地址\n输出: [GEN]"


def test_build_prompt_with_one_label_has_no_joiner():
    assert build_prompt("text", CLASSIFY, ["positive"]) == "输入: text\n分类: positive\n输出: [GEN]"


def test_build_prompt_rejects_a_task_seqgpt_was_not_trained_on():
    with pytest.raises(ValueError, match="分类"):
        build_prompt("text", "翻译", ["英文"])


# ---- complete_free_prompt --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("输入: 今天天气很好\n分类: 正面，负面\n输出:", "输入: 今天天气很好\n分类: 正面，负面\n输出: [GEN]"),
        ("输入: 今天天气很好\n分类: 正面，负面\n输出:  \n", "输入: 今天天气很好\n分类: 正面，负面\n输出: [GEN]"),
        ("输入: 今天天气很好\n分类: 正面，负面\n输出：", "输入: 今天天气很好\n分类: 正面，负面\n输出： [GEN]"),
    ],
)
def test_complete_free_prompt_appends_gen_after_the_output_marker(prompt, expected):
    assert complete_free_prompt(prompt) == expected


@pytest.mark.parametrize(
    "prompt",
    [
        "输入: 今天天气很好\n分类: 正面，负面\n输出: [GEN]",
        "输入: 今天天气很好\n分类: 正面，负面\n输出: 正面",
        "Write a haiku about spring",
    ],
)
def test_complete_free_prompt_leaves_other_prompts_unchanged(prompt):
    assert complete_free_prompt(prompt) == prompt


# ---- parse_labels ----------------------------------------------------------------------------


def parse(labels, what="labels"):
    return parse_labels(labels, MAX_LABELS, MAX_LABEL_CHARS, what=what)


def test_parse_labels_from_a_list_keeps_the_given_order():
    assert parse(["体育", "财经", "科技"]) == ["体育", "财经", "科技"]


def test_parse_labels_accepts_a_tuple():
    assert parse(("正面", "负面")) == ["正面", "负面"]


@pytest.mark.parametrize(
    "labels",
    [
        "财经,体育,科技,娱乐",
        "财经，体育，科技，娱乐",
        "财经、体育、科技、娱乐",
        "财经\n体育\n科技\n娱乐",
        "财经\r\n体育\r\n科技\r\n娱乐\n",
        "财经, 体育，科技、\n娱乐",
        "财经；体育；科技；娱乐",
        "财经;体育; 科技；娱乐",
    ],
)
def test_parse_labels_splits_a_string_on_every_separator(labels):
    assert parse(labels) == ["财经", "体育", "科技", "娱乐"]


def test_parse_labels_strips_and_drops_empty_labels():
    assert parse(" 公司名称 ，，, \n\n  金额\t,  ") == ["公司名称", "金额"]
    assert parse(["  人名", "", "   ", "地点  "]) == ["人名", "地点"]


def test_parse_labels_removes_duplicates_keeping_the_first_position():
    assert parse("体育，财经，体育，科技， 财经 ") == ["体育", "财经", "科技"]
    assert parse(["b", "a", "b", "c", "a"]) == ["b", "a", "c"]


def test_parse_labels_keeps_each_list_item_one_label_even_with_a_comma():
    assert parse(["财经，体育", "科技,娱乐"]) == ["财经，体育", "科技,娱乐"]
    assert parse("科技,娱乐") == ["科技", "娱乐"]


def test_parse_labels_keeps_english_labels_with_inner_spaces():
    assert parse("sports news, finance , technology") == ["sports news", "finance", "technology"]


def test_parse_labels_accepts_exactly_the_limits():
    labels = [f"标签{i}" for i in range(MAX_LABELS)]
    assert parse(labels) == labels
    longest = "长" * MAX_LABEL_CHARS
    assert parse([longest]) == [longest]


@pytest.mark.parametrize(
    ("labels", "hint"),
    [
        ("", "at least one"),
        ("  ，, \n 、", "at least one"),
        ([], "at least one"),
        (["", "  "], "at least one"),
        ([f"标签{i}" for i in range(500)], "SEQGPT_MAX_LABELS"),
        (",".join(f"label{i}" for i in range(500)), "SEQGPT_MAX_LABELS"),
        (["财经", "长" * 1_000], "short name"),
        (42, "财经，体育"),
        (None, "财经，体育"),
        ({"财经": 1}, "财经，体育"),
        (["财经", 3], '["财经", "体育"]'),
        (["财经", None], '["财经", "体育"]'),
        (["财经", ["体育"]], '["财经", "体育"]'),
    ],
    ids=[
        "empty-string",
        "only-separators",
        "empty-list",
        "only-blank-items",
        "500-labels-list",
        "500-labels-string",
        "1000-char-label",
        "int",
        "none",
        "dict",
        "list-with-int",
        "list-with-none",
        "nested-list",
    ],
)
def test_parse_labels_rejects_bad_input_saying_how_to_fix_it(labels, hint):
    with pytest.raises(InvalidInputError) as caught:
        parse(labels)
    assert hint in str(caught.value)


def test_parse_labels_error_names_the_too_long_label_and_its_length():
    with pytest.raises(InvalidInputError) as caught:
        parse(["财经", "长" * 1_000])
    message = str(caught.value)
    assert "1000" in message and "64" in message
    assert len(message) < 300, "the message quotes a prefix of the label, not all of it"


def test_parse_labels_error_counts_the_labels_given_and_allowed():
    with pytest.raises(InvalidInputError) as caught:
        parse([f"标签{i}" for i in range(500)])
    assert "500" in str(caught.value) and str(MAX_LABELS) in str(caught.value)


def test_parse_labels_error_speaks_of_fields_when_parsing_fields():
    with pytest.raises(InvalidInputError, match="fields"):
        parse("", what="fields")


def test_invalid_input_error_is_also_a_value_error():
    with pytest.raises(ValueError):
        parse(None)


# ---- check_text ------------------------------------------------------------------------------


def test_check_text_returns_the_text_unchanged():
    text = "  从深圳福田口岸或者黄冈口岸过香港，一日游怎么玩呢？\n"
    assert check_text(text, 100) is text


def test_check_text_accepts_exactly_the_limit():
    assert check_text("字" * 100, 100) == "字" * 100


def test_check_text_rejects_a_too_long_text_saying_how_to_fix_it():
    with pytest.raises(InvalidInputError) as caught:
        check_text("字" * 101, 100)
    message = str(caught.value)
    assert "101" in message and "100" in message
    assert "SEQGPT_MAX_TEXT_CHARS" in message and "several parts" in message


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_check_text_rejects_empty_text(text):
    with pytest.raises(InvalidInputError, match="empty"):
        check_text(text, 100)


@pytest.mark.parametrize("text", [None, 42, b"bytes", ["a list"]])
def test_check_text_rejects_a_non_string(text):
    with pytest.raises(InvalidInputError, match="must be a string"):
        check_text(text, 100)


def test_check_text_names_what_it_checked():
    with pytest.raises(InvalidInputError, match="prompt"):
        check_text("", 100, what="prompt")
