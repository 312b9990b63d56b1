"""The tasks' plan and result steps: from model answers to results (offsets, dropped mentions, scores,
thresholds, long-text pieces), and the plans' prompts.

The answers are real-looking SeqGPT output lines tokenised with the demo tokenizer, as the
decoder would hand them over, so these tests do not depend on what random weights write.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from model_loader.tasks import classify, extract
from model_loader.tasks.options import ClassifyRequest, ExtractRequest
from model_loader.text.prompts import CLASSIFY, EXTRACT, build_prompt

CONTRACT = (
    "甲方：北京星河科技有限公司，乙方：上海云帆信息技术有限公司，合同金额人民币一百万元整。"
    "北京星河科技有限公司应于2023年12月31日前付款。"
)


def occurrences(text: str, mention: str) -> set[tuple[int, int]]:
    return {(m.start(), m.end()) for m in re.finditer(re.escape(mention), text)}


class Steps:
    """The task modules' plan and result steps, bound to the demo engine's tokens and settings."""

    def __init__(self, engine) -> None:
        self.tokens, self.settings = engine.model.tokens, engine.settings
        self.encode, self.tokenizer = self.tokens.encode, self.tokens.tokenizer
        self.vocabulary, self.stop_ids = self.tokens.vocabulary, self.tokens.stop_ids

    def plan_classification(self, text, labels):
        asked = ClassifyRequest.checked(self.settings, text=text, labels=labels)
        return classify.plan(self.tokens, self.settings, asked)

    def plan_extraction(self, text, fields):
        asked = ExtractRequest.checked(self.settings, text=text, fields=fields)
        return extract.plan(self.tokens, self.settings, asked)

    def extraction_result(self, plan, answers, threshold, exclusive):
        return extract.result(self.tokens, replace(plan, threshold=threshold, exclusive=exclusive), answers)


@pytest.fixture(scope="module")
def steps(engine):
    return Steps(engine)


def spans_of(result, field: str) -> set[tuple[int, int]]:
    return {(m.start, m.end) for m in result.fields[field]}


# ---- one piece -------------------------------------------------------------------------------


def test_extract_mentions_are_found_at_every_occurrence_in_the_original_text(steps, make_answer):
    fields = ["公司名称", "时间"]
    plan = steps.plan_extraction(CONTRACT, fields)
    answers = [
        [make_answer("公司名称: 北京星河科技有限公司\t上海云帆信息技术有限公司"), make_answer("时间: 2023年12月31日")]
    ]
    result = steps.extraction_result(plan, answers, threshold=0.0, exclusive=False)

    assert result.pieces == 1 and not result.split
    assert [m.text for m in result.fields["公司名称"]].count("北京星河科技有限公司") == 2
    assert spans_of(result, "公司名称") == occurrences(CONTRACT, "北京星河科技有限公司") | occurrences(
        CONTRACT, "上海云帆信息技术有限公司"
    )
    assert spans_of(result, "时间") == occurrences(CONTRACT, "2023年12月31日")
    for mentions in result.fields.values():
        for mention in mentions:
            assert CONTRACT[mention.start : mention.end] == mention.text
            assert mention.score == pytest.approx(0.9)
    assert result.dropped == {}


def test_extract_offsets_index_the_original_text_when_it_has_leading_whitespace(steps, make_answer):
    text = "  \n\t 彭小军认为，国内银行现在走的是台湾的发卡模式。"
    plan = steps.plan_extraction(text, ["人名", "地址"])
    result = steps.extraction_result(
        plan, [[make_answer("人名: 彭小军"), make_answer("地址: 台湾")]], threshold=0.0, exclusive=False
    )
    assert [(m.text, text[m.start : m.end]) for m in result.fields["人名"]] == [("彭小军", "彭小军")]
    assert [(m.text, text[m.start : m.end]) for m in result.fields["地址"]] == [("台湾", "台湾")]


def test_extract_mentions_are_listed_in_text_order(steps, make_answer):
    plan = steps.plan_extraction(CONTRACT, ["公司名称"])
    answer = make_answer("公司名称: 上海云帆信息技术有限公司\t北京星河科技有限公司")
    result = steps.extraction_result(plan, [[answer]], threshold=0.0, exclusive=False)
    starts = [m.start for m in result.fields["公司名称"]]
    assert starts == sorted(starts) and len(starts) == 3


def test_extract_returns_only_mentions_found_in_text(steps, make_answer):
    plan = steps.plan_extraction(CONTRACT, ["公司名称"])
    answer = make_answer("公司名称: 北京星河科技有限公司\t腾讯控股有限公司")
    result = steps.extraction_result(plan, [[answer]], threshold=0.0, exclusive=False)
    assert {m.text for m in result.fields["公司名称"]} == {"北京星河科技有限公司"}
    assert result.dropped == {"公司名称": ["腾讯控股有限公司"]}


def test_extract_none_answer_gives_no_mentions_and_drops_nothing(steps, make_answer):
    plan = steps.plan_extraction(CONTRACT, ["人名", "金额"])
    result = steps.extraction_result(
        plan, [[make_answer("人名: None"), make_answer("金额: 人民币一百万元整")]], threshold=0.0, exclusive=False
    )
    assert result.fields["人名"] == []
    assert [m.text for m in result.fields["金额"]] == ["人民币一百万元整"]
    assert result.dropped == {}


def test_extract_ignores_an_answer_written_under_another_label(steps, make_answer):
    plan = steps.plan_extraction(CONTRACT, ["公司名称"])
    result = steps.extraction_result(
        plan, [[make_answer("甲方: 北京星河科技有限公司")]], threshold=0.0, exclusive=False
    )
    assert result.fields == {"公司名称": []}


def test_extract_raw_output_keeps_one_line_per_field_in_field_order(steps, make_answer):
    lines = ["公司名称: 北京星河科技有限公司\t腾讯控股有限公司", "人名: None", "金额: 人民币一百万元整"]
    plan = steps.plan_extraction(CONTRACT, ["公司名称", "人名", "金额"])
    result = steps.extraction_result(plan, [[make_answer(line) for line in lines]], threshold=0.0, exclusive=False)
    assert result.raw == "\n".join(lines)


def test_extract_every_requested_field_is_in_the_result(steps, make_answer):
    fields = ["公司名称", "人名", "金额"]
    plan = steps.plan_extraction(CONTRACT, fields)
    result = steps.extraction_result(plan, [[make_answer("") for _ in fields]], threshold=0.0, exclusive=False)
    assert list(result.fields) == fields and all(v == [] for v in result.fields.values())


# ---- scores and threshold --------------------------------------------------------------------


def test_extract_threshold_filters_mentions_by_their_score(steps, make_answer):
    plan = steps.plan_extraction(CONTRACT, ["公司名称", "金额"])
    answers = [[make_answer("公司名称: 北京星河科技有限公司", 0.9), make_answer("金额: 人民币一百万元整", 0.4)]]
    kept = {
        threshold: {
            name: [m.text for m in ms]
            for name, ms in steps.extraction_result(
                plan, answers, threshold=threshold, exclusive=False
            ).fields.items()
        }
        for threshold in (0.0, 0.4, 0.5, 0.9, 0.95)
    }
    assert kept[0.0] == {"公司名称": ["北京星河科技有限公司"] * 2, "金额": ["人民币一百万元整"]}
    assert kept[0.4] == kept[0.0]
    assert kept[0.5] == {"公司名称": ["北京星河科技有限公司"] * 2, "金额": []}
    assert kept[0.9] == kept[0.5]
    assert kept[0.95] == {"公司名称": [], "金额": []}


def test_extract_score_comes_from_the_mention_s_own_tokens(steps, make_answer):
    line = "公司名称: 北京星河科技有限公司\t上海云帆信息技术有限公司"
    ids = make_answer(line).tokens
    _, starts = steps.vocabulary.decode(ids)
    first = line.index("北京")
    first_end = first + len("北京星河科技有限公司")
    ends = starts[1:] + [len(line)]
    # Tokens inside the first mention are confident; every other token is not.
    probabilities = [0.95 if first <= s and e <= first_end else 0.3 for s, e in zip(starts, ends, strict=True)]
    assert 0.95 in probabilities
    plan = steps.plan_extraction(CONTRACT, ["公司名称"])
    result = steps.extraction_result(plan, [[make_answer(line, probabilities)]], threshold=0.0, exclusive=False)
    score = {m.text: m.score for m in result.fields["公司名称"]}
    assert score["北京星河科技有限公司"] > 0.5 > score["上海云帆信息技术有限公司"]
    assert all(0.0 <= s <= 1.0 for s in score.values())
    filtered = steps.extraction_result(plan, [[make_answer(line, probabilities)]], threshold=0.5, exclusive=False)
    assert {m.text for m in filtered.fields["公司名称"]} == {"北京星河科技有限公司"}


# ---- exclusive fields ------------------------------------------------------------------------


def test_extract_shared_mention_stays_under_both_fields_by_default(steps, make_answer):
    plan = steps.plan_extraction(CONTRACT, ["公司名称", "甲方"])
    answers = [[make_answer("公司名称: 北京星河科技有限公司", 0.9), make_answer("甲方: 北京星河科技有限公司", 0.6)]]
    result = steps.extraction_result(plan, answers, threshold=0.0, exclusive=False)
    expected = occurrences(CONTRACT, "北京星河科技有限公司")
    assert spans_of(result, "公司名称") == expected
    assert spans_of(result, "甲方") == expected


@pytest.mark.parametrize(("company", "party", "winner"), [(0.9, 0.6, "公司名称"), (0.5, 0.8, "甲方")])
def test_extract_exclusive_keeps_a_span_only_under_its_highest_scoring_field(
    steps, make_answer, company, party, winner
):
    plan = steps.plan_extraction(CONTRACT, ["公司名称", "甲方"])
    answers = [
        [
            make_answer("公司名称: 北京星河科技有限公司\t上海云帆信息技术有限公司", company),
            make_answer("甲方: 北京星河科技有限公司", party),
        ]
    ]
    result = steps.extraction_result(plan, answers, threshold=0.0, exclusive=True)
    shared = occurrences(CONTRACT, "北京星河科技有限公司")
    loser = "甲方" if winner == "公司名称" else "公司名称"
    assert shared <= spans_of(result, winner)
    assert not shared & spans_of(result, loser)
    assert occurrences(CONTRACT, "上海云帆信息技术有限公司") <= spans_of(result, "公司名称")


# ---- plans -----------------------------------------------------------------------------------


def test_extraction_plan_prompts_are_exactly_the_single_field_prompts(steps):
    fields = ["公司名称", "金额", "时间"]
    plan = steps.plan_extraction(CONTRACT, fields)
    (request,) = plan.requests
    for field, suffix in zip(fields, request.suffixes, strict=True):
        assert request.prefix + suffix == steps.encode(build_prompt(CONTRACT, EXTRACT, [field]))


def test_classification_plan_prompt_is_the_seqgpt_prompt(steps):
    labels = ["财经", "财经新闻", "科技"]
    plan = steps.plan_classification(CONTRACT, labels)
    (label_set,) = plan.label_sets
    assert label_set.prompt == steps.encode(build_prompt(CONTRACT, CLASSIFY, labels))
    assert label_set.labels == [steps.tokenizer.encode(label, special_tokens=False) for label in labels]


@pytest.mark.parametrize(
    "line",
    [
        "公司名称: 北京星河科技有限公司\t上海云帆信息技术有限公司",
        "公司名称: None",
        "公司名称: 甲方\t合同金额人民币一百万元整",
    ],
    ids=["two-long-mentions", "none", "long-mention"],
)
def test_extraction_plan_allows_every_token_of_a_correct_answer(steps, make_answer, line):
    plan = steps.plan_extraction(CONTRACT, ["公司名称", "金额"])
    allowed = set(plan.requests[0].allowed[0].tolist())
    assert set(make_answer(line).tokens) <= allowed
    assert set(steps.stop_ids) <= allowed


def test_extraction_plan_for_a_field_does_not_depend_on_the_other_fields(steps):
    """Decoding a field must see the same candidates whatever else was asked (SPEC §6, issue 5 point 3)."""
    alone = steps.plan_extraction(CONTRACT, ["人名"]).requests[0].allowed[0].tolist()
    together = steps.plan_extraction(CONTRACT, ["公司名称", "人名", "合同编号"]).requests[0].allowed[1].tolist()
    assert alone == together


def test_long_text_plans_fit_every_piece_in_the_model_window(steps, long_chinese_text):
    window = steps.settings.window_tokens
    classify = steps.plan_classification(long_chinese_text, ["财经", "体育", "科技", "娱乐"])
    assert len(classify.pieces) > 1
    for label_set in classify.label_sets:
        assert len(label_set.prompt) + max(len(label) for label in label_set.labels) + 1 <= window
    extract = steps.plan_extraction(long_chinese_text, ["人名", "地址", "组织机构"])
    assert len(extract.pieces) > 1
    for request in extract.requests:
        longest = len(request.prefix) + max(len(s) for s in request.suffixes)
        assert longest + steps.settings.extract_max_new_tokens <= window


# ---- several pieces ----------------------------------------------------------------------------


def test_extract_over_several_pieces_offsets_into_the_original_and_merges_overlap_duplicates(
    steps, make_answer, entity_rows
):
    rows = entity_rows[:120]
    text = "".join(row["text"] for row in rows)
    names = sorted({name for row in rows for name in row["label"].get("name", {})})
    plan = steps.plan_extraction(text, ["人名"])
    assert len(plan.pieces) > 1

    answers = []
    for piece in plan.pieces:
        chunk = text[piece.start : piece.end]
        found = [name for name in names if name in chunk]
        answers.append([make_answer("人名: " + ("\t".join(found) or "None"))])
    result = steps.extraction_result(plan, answers, threshold=0.0, exclusive=False)

    expected = set().union(*(occurrences(text, name) for name in names))
    in_two_pieces = [span for span in expected if sum(p.start <= span[0] and span[1] <= p.end for p in plan.pieces) > 1]
    assert in_two_pieces, "the pieces overlap, so some mention is seen twice"
    mentions = result.fields["人名"]
    assert {(m.start, m.end) for m in mentions} == expected
    assert len(mentions) == len(expected), "a mention seen in two pieces is returned once"
    assert all(text[m.start : m.end] == m.text for m in mentions)
    assert result.split and result.pieces == len(plan.pieces)
    assert result.raw.startswith(f"[piece 1/{len(plan.pieces)}]\n人名: ")
    assert result.dropped == {}
