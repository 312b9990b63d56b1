"""Reading labelled files: the public formats, maps, CLUENER's inclusive ends, bad rows, predictions files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation import (
    EvaluationDataError,
    GoldRow,
    Span,
    build_report,
    parse_gold,
    parse_map,
    read_gold,
    read_map,
    read_predictions,
    run_predictions,
)

DATA = Path(__file__).resolve().parents[1] / "data"


def jsonl(*rows: object) -> bytes:
    return "\n".join(row if isinstance(row, str) else json.dumps(row, ensure_ascii=False) for row in rows).encode()


def test_cluener_inclusive_end_becomes_exclusive_exactly_once():
    row = {"text": "彭小军认为，国内银行", "label": {"name": {"彭小军": [[0, 2]]}, "company": {"银行": [[8, 9]]}}}
    gold = parse_gold(jsonl(row), "dev.jsonl", "extract", {})
    assert gold.rows[0].spans == (Span("name", 0, 3, "彭小军"), Span("company", 8, 10, "银行"))
    # A prediction with the engine's exclusive end matches it: no second conversion on the way.
    record = {"fields": {"name": [{"text": "彭小军", "start": 0, "end": 3, "score": 1.0}],
                         "company": [{"text": "银行", "start": 8, "end": 10, "score": 1.0}]}}
    assert build_report(gold, [record])["micro"]["f1"] == 1.0


def test_a_cluener_row_written_with_exclusive_ends_is_reported_not_shifted():
    row = {"text": "彭小军认为", "label": {"name": {"彭小军": [[0, 3]]}}}
    gold = parse_gold(jsonl({"text": "张三", "label": {"name": {"张三": [[0, 1]]}}}, row), "x.jsonl", "extract", {})
    assert [bad.line for bad in gold.skipped] == [2]
    assert "reads '彭小军认', not '彭小军'" in gold.skipped[0].reason


def test_entities_format_uses_exclusive_ends_and_the_field_map():
    row = {"text": "小米集团发布新机", "entities": [{"field": "company", "start": 0, "end": 4}]}
    gold = parse_gold(jsonl(row), "x.jsonl", "extract", {"company": "公司名称"})
    assert gold.rows[0].spans == (Span("公司名称", 0, 4, "小米集团"),)
    assert gold.names == ["公司名称"]


def test_duplicate_gold_spans_count_once():
    same = {"field": "人名", "start": 0, "end": 2}
    row = {"text": "张三", "entities": [same, dict(same)]}
    assert len(parse_gold(jsonl(row), "x.jsonl", "extract", {}).rows[0].spans) == 1


def test_bad_rows_are_skipped_with_their_line_numbers_and_reasons():
    content = jsonl(
        {"text": "好", "label": "正面"},
        "{not json",
        {"text": "没有标签"},
        "",
        {"text": "", "label": "负面"},
        ["a list"],
        {"text": "差", "label": "负面"},
    )
    gold = parse_gold(content, "x.jsonl", "classify", {})
    assert [row.line for row in gold.rows] == [1, 7]
    assert [(bad.line, bad.reason.split(" ")[0]) for bad in gold.skipped] == [
        (2, "not"), (3, "no"), (5, "no"), (6, "not")]
    assert "label" in gold.skipped[1].reason and "text" in gold.skipped[2].reason


def test_csv_rows_count_lines_from_the_header():
    content = "text,label\n好看,正面\n,负面\n难看,负面\n".encode()
    gold = parse_gold(content, "x.csv", "classify", {})
    assert [(row.line, row.text, row.label) for row in gold.rows] == [(2, "好看", "正面"), (4, "难看", "负面")]
    assert [bad.line for bad in gold.skipped] == [3]


def test_a_file_with_no_usable_rows_is_refused_with_the_first_reason():
    with pytest.raises(EvaluationDataError, match="line 1"):
        parse_gold(jsonl({"sentence": "只有文本"}), "x.jsonl", "classify", {})
    with pytest.raises(EvaluationDataError, match="not JSONL or CSV"):
        parse_gold(b"text", "x.txt", "classify", {})


def test_tnews_sample_reads_label_desc_through_the_map_and_offers_every_mapped_label():
    mapping = read_map(str(DATA / "eval_tnews_map.txt"))
    gold = read_gold(DATA / "eval_tnews_sample.jsonl", "classify", mapping)
    assert len(gold.rows) == 45 and not gold.skipped
    assert gold.rows[0].label == "国际"  # news_world
    assert gold.names == list(mapping.values()) and len(gold.names) == 15


def test_cluener_sample_reads_every_row():
    gold = read_gold(DATA / "eval_cluener_sample.jsonl", "extract", read_map(str(DATA / "eval_cluener_map.txt")))
    assert len(gold.rows) == 40 and not gold.skipped
    for row in gold.rows:
        assert all(row.text[s.start:s.end] == s.text for s in row.spans)


def _map_keys(name: str) -> set[str]:
    lines = (DATA / name).read_text("utf-8").splitlines()
    return {line.split("=")[0] for line in lines if line and not line.startswith("#")}


def test_every_cluener_span_in_the_sample_reads_its_mention_with_the_inclusive_end():
    # Read straight from the file, not through the harness, so a wrong offset cannot hide behind the code under test.
    types = _map_keys("eval_cluener_map.txt")
    lines = (DATA / "eval_cluener_sample.jsonl").read_text("utf-8").splitlines()
    spans = 0
    for number, line in enumerate(lines, 1):
        row = json.loads(line)
        assert set(row["label"]) <= types, f"line {number}: type not in eval_cluener_map.txt"
        for mentions in row["label"].values():
            for mention, places in mentions.items():
                for start, end in places:
                    assert row["text"][start:end + 1] == mention, f"line {number}: [{start}, {end}] is not {mention!r}"
                    spans += 1
    assert spans >= len(lines)
    assert {kind for line in lines for kind in json.loads(line)["label"]} == types  # all ten types are exercised


def test_tnews_sample_has_three_rows_of_every_mapped_slug():
    rows = [json.loads(line) for line in (DATA / "eval_tnews_sample.jsonl").read_text("utf-8").splitlines()]
    slugs = [row["label_desc"] for row in rows]
    assert {slug: slugs.count(slug) for slug in slugs} == dict.fromkeys(_map_keys("eval_tnews_map.txt"), 3)
    assert len({row["label"] for row in rows}) == 15 and all(len(row["label"]) == 3 for row in rows)


def test_maps_inline_and_bad_entries():
    assert parse_map("news_finance=财经, news_sports = 体育，a=b") == {"news_finance": "财经", "news_sports": "体育",
                                                                        "a": "b"}
    with pytest.raises(EvaluationDataError, match="KEY=VALUE"):
        parse_map("news_finance")
    with pytest.raises(EvaluationDataError, match="neither a file"):
        read_map("no-such-map.txt")


def _gold(n: int):
    return parse_gold(jsonl(*({"text": f"文本{i}", "label": "甲" if i % 2 else "乙"} for i in range(n))),
                      "x.jsonl", "classify", {})


def test_run_predictions_writes_rows_in_order_and_the_file_scores_the_same(tmp_path):
    gold = _gold(9)

    def predict(row: GoldRow) -> dict:
        return {"label": "甲", "scores": {"甲": 0.6, "乙": 0.4}, "latency_ms": 5.0}

    out = tmp_path / "pred.jsonl"
    records = run_predictions(gold.rows, predict, out, concurrency=3)
    saved = read_predictions(out, gold)
    assert [r["line"] for r in saved] == [row.line for row in gold.rows]
    assert build_report(gold, saved) == build_report(gold, records)


def test_predictions_from_another_file_are_refused(tmp_path):
    gold = _gold(3)
    path = tmp_path / "pred.jsonl"
    path.write_text(jsonl(*({"line": n + 1, "text": "别的", "label": "甲"} for n in range(3))).decode() + "\n")
    with pytest.raises(EvaluationDataError, match="another labelled file"):
        read_predictions(path, gold)
    path.write_text(jsonl({"line": 1, "text": "文本0", "label": "乙"}).decode() + "\n")
    with pytest.raises(EvaluationDataError, match="1 predictions for 3 labelled rows"):
        read_predictions(path, gold)
    assert len(read_predictions(path, gold, partial=True)) == 1
