"""Parsers on real SeqGPT output strings (SPEC §2): one line per label, ``label: m1\\tm2`` or ``label: None``."""

from __future__ import annotations

import pytest

from model_loader.text.parsing import find_occurrences, match_label, parse_extraction, parse_extraction_line

# ---- parse_extraction ------------------------------------------------------------------------


def test_extraction_output_with_several_mentions_separated_by_tabs():
    output = "公司名称: 北京星河科技有限公司\t上海云帆信息技术有限公司\n金额: 人民币一百万元整"
    assert parse_extraction(output, ["公司名称", "金额"]) == {
        "公司名称": ["北京星河科技有限公司", "上海云帆信息技术有限公司"],
        "金额": ["人民币一百万元整"],
    }


def test_extraction_output_none_means_no_mentions():
    output = "人名: 彭小军\n地址: None\n组织机构: None"
    assert parse_extraction(output, ["人名", "地址", "组织机构"]) == {"人名": ["彭小军"], "地址": [], "组织机构": []}


def test_extraction_output_with_full_width_colon():
    output = "人名：温格\n组织机构：曼联\t枪手"
    assert parse_extraction(output, ["人名", "组织机构"]) == {"人名": ["温格"], "组织机构": ["曼联", "枪手"]}


@pytest.mark.parametrize(
    "output",
    [
        "公司名称 : 阿里巴巴\t腾讯",
        "  公司名称:阿里巴巴\t腾讯  ",
        "公司名称 ：  阿里巴巴 \t 腾讯 ",
        "公司名称:\t阿里巴巴\t\t腾讯\t",
        " 公司名称 :   阿里巴巴  \t  腾讯\r",
    ],
)
def test_extraction_output_with_stray_spaces_around_label_colon_and_mentions(output):
    assert parse_extraction(output, ["公司名称"]) == {"公司名称": ["阿里巴巴", "腾讯"]}


def test_extraction_output_missing_a_requested_label_gives_it_no_mentions():
    output = "人名: 彭小军"
    assert parse_extraction(output, ["人名", "地址", "时间"]) == {"人名": ["彭小军"], "地址": [], "时间": []}


def test_extraction_output_label_that_was_not_requested_is_ignored():
    output = "地点: 杭州\n公司名称: 阿里巴巴\n时间: 2023年第三季度"
    assert parse_extraction(output, ["公司名称"]) == {"公司名称": ["阿里巴巴"]}


def test_extraction_output_of_several_label_chunks_is_merged():
    fields = ["人名", "地址", "组织机构", "公司", "游戏", "书名", "电影", "职位", "景点"]
    chunk_one = "人名: 彭小军\n地址: 台湾\n组织机构: None\n公司: None\n游戏: None\n书名: None"
    chunk_two = "电影: None\n职位: None\n景点: 福田口岸\t黄冈口岸"
    parsed = parse_extraction(chunk_one + "\n" + chunk_two, fields)
    assert list(parsed) == fields
    assert parsed["人名"] == ["彭小军"]
    assert parsed["地址"] == ["台湾"]
    assert parsed["景点"] == ["福田口岸", "黄冈口岸"]
    assert all(parsed[name] == [] for name in ("组织机构", "公司", "游戏", "书名", "电影", "职位"))


def test_extraction_output_of_chunks_naming_the_same_label_merges_without_duplicates():
    output = "人名: 温格\t彭小军\n\n人名: 彭小军\t阿森纳主帅\n"
    assert parse_extraction(output, ["人名"]) == {"人名": ["温格", "彭小军", "阿森纳主帅"]}


def test_extraction_output_label_containing_a_colon():
    output = "时间:开始: 2023年11月5日\n时间: 三天"
    assert parse_extraction(output, ["时间:开始", "时间"]) == {"时间:开始": ["2023年11月5日"], "时间": ["三天"]}


def test_extraction_output_mention_containing_a_colon():
    assert parse_extraction("时间: 10:30\t下午3：00", ["时间"]) == {"时间": ["10:30", "下午3：00"]}


def test_extraction_output_requested_label_that_prefixes_another_label_is_not_confused_with_it():
    output = "公司名称: 阿里巴巴\n公司: 腾讯"
    assert parse_extraction(output, ["公司"]) == {"公司": ["腾讯"]}


def test_extraction_output_ignores_blank_lines_and_lines_without_a_label():
    output = "\n\n人名: 温格\n这一行没有冒号\n\n"
    assert parse_extraction(output, ["人名"]) == {"人名": ["温格"]}


def test_extraction_of_empty_output_gives_every_label_no_mentions():
    assert parse_extraction("", ["人名", "地址"]) == {"人名": [], "地址": []}


def test_extraction_output_english_labels_and_mentions():
    output = "company: Apple\tGoogle\nplace: California\nperson: None"
    assert parse_extraction(output, ["company", "place", "person"]) == {
        "company": ["Apple", "Google"],
        "place": ["California"],
        "person": [],
    }


# ---- parse_extraction_line -------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "公司名称: 北京星河科技有限公司\t上海云帆信息技术有限公司",
        "   公司名称 ：  北京星河科技有限公司 \t  上海云帆信息技术有限公司  ",
        "公司名称:北京星河科技有限公司\t\t上海云帆信息技术有限公司\t",
    ],
)
def test_extraction_line_mention_spans_index_the_line(line):
    label, mentions = parse_extraction_line(line, ["公司名称"])
    assert label == "公司名称"
    assert [m.text for m in mentions] == ["北京星河科技有限公司", "上海云帆信息技术有限公司"]
    for mention in mentions:
        assert line[mention.start : mention.end] == mention.text


def test_extraction_line_without_a_colon_is_not_a_label_line():
    assert parse_extraction_line("北京星河科技有限公司", ["公司名称"]) is None


def test_extraction_line_names_an_unrequested_label_as_written():
    label, mentions = parse_extraction_line("地点 : 杭州", ["公司名称"])
    assert label == "地点"
    assert [m.text for m in mentions] == ["杭州"]


def test_extraction_line_with_none_has_no_mentions():
    assert parse_extraction_line("金额: None", ["金额"]) == ("金额", [])


# ---- match_label -----------------------------------------------------------------------------


def test_match_label_exact_answer():
    assert match_label("体育", ["财经", "体育", "科技"]) == "体育"


def test_match_label_ignores_surrounding_whitespace():
    assert match_label("  科技 \n", ["财经", "体育", "科技"]) == "科技"


@pytest.mark.parametrize(("output", "expected"), [("财经", "财经"), ("财经新闻", "财经新闻")])
def test_match_label_tells_a_label_from_one_it_prefixes(output, expected):
    assert match_label(output, ["财经", "财经新闻"]) == expected
    assert match_label(output, ["财经新闻", "财经"]) == expected


def test_match_label_picks_the_longest_label_contained_in_a_wordy_answer():
    assert match_label("这是一条财经新闻。", ["财经", "财经新闻", "体育"]) == "财经新闻"


def test_match_label_reads_only_the_first_line():
    assert match_label("体育\n财经", ["财经", "体育"]) == "体育"


@pytest.mark.parametrize("output", ["", "   \n", "娱乐", "sports"])
def test_match_label_answers_none_when_no_label_is_named(output):
    assert match_label(output, ["财经", "体育"]) is None


# ---- find_occurrences ------------------------------------------------------------------------


def test_find_occurrences_returns_every_occurrence_with_exact_offsets():
    text = "北京星河科技有限公司与上海公司签约，北京星河科技有限公司将付款。"
    spans = find_occurrences(text, "北京星河科技有限公司")
    assert spans == [(0, 10), (18, 28)]
    assert all(text[start:end] == "北京星河科技有限公司" for start, end in spans)


def test_find_occurrences_does_not_overlap():
    assert find_occurrences("哈哈哈哈哈", "哈哈") == [(0, 2), (2, 4)]


def test_find_occurrences_of_an_absent_mention_is_empty():
    assert find_occurrences("温格的球队终于又踢了一场经典的比赛", "曼联") == []


def test_find_occurrences_of_an_empty_mention_is_empty():
    assert find_occurrences("温格的球队", "") == []


def test_find_occurrences_is_case_sensitive():
    assert find_occurrences("Apple and apple", "apple") == [(10, 15)]
