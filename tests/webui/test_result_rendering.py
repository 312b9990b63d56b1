"""Pure conversions of engine results into what the UI shows, and the one-line request log."""

from __future__ import annotations

from model_loader.results import Extraction, Mention
from webui.service.request import RequestInfo, request_log_line
from webui.ui.render import extraction_markdown, extraction_rows, highlight_spans

TEXT = "小米集团在北京发布新手机"
RESULT = Extraction(
    fields={
        "公司名称": [Mention("小米集团", 0, 4, 0.9)],
        "地点": [Mention("北京", 5, 7, 0.8)],
        "产品": [],
    },
    raw="公司名称: 小米集团\n地点: 北京\n产品: None",
)


def test_highlight_covers_the_whole_text_in_order():
    pieces = highlight_spans(TEXT, RESULT)
    assert "".join(piece for piece, _ in pieces) == TEXT
    assert pieces[0] == ("小米集团", "公司名称")
    assert ("北京", "地点") in pieces


def test_overlapping_mentions_keep_the_higher_score():
    overlapping = Extraction(
        fields={"公司": [Mention("小米集团", 0, 4, 0.5)], "品牌": [Mention("小米", 0, 2, 0.9)]}, raw=""
    )
    pieces = highlight_spans(TEXT, overlapping)
    assert pieces[0] == ("小米", "品牌")
    assert "".join(piece for piece, _ in pieces) == TEXT


def test_table_has_a_row_per_mention_and_says_when_a_field_is_empty():
    rows = extraction_rows(RESULT)
    assert rows[0] == ["公司名称", "小米集团", 0, 4, 0.9]
    assert rows[2][0] == "产品" and "none" in rows[2][1]


def test_markdown_escapes_pipes_and_newlines_in_mentions():
    tricky = Extraction(fields={"名称": [Mention("a|b\nc", 0, 5, 1.0)]}, raw="")
    table = extraction_markdown(tricky)
    assert "a\\|b c" in table
    assert len(table.splitlines()) == 3


def test_request_log_line_has_every_field_and_escapes_newlines():
    info = RequestInfo("classify", "api", "第一行\n第二行" + "很长" * 30, label_count=3)
    line = request_log_line(info, 12.34, "cpu", "-", "ok")
    assert "\n" not in line
    assert 'prefix="第一行\\n第二行' in line
    for part in ("task=classify", "source=api", "chars=67", "labels=3", "latency_ms=12.3", "device=cpu",
                 "gpu_mem=-", "outcome=ok"):
        assert part in line
