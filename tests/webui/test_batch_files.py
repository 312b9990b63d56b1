"""Batch files: CSV / JSONL / TXT are read within limits, errors say how to fix them, results round-trip."""

from __future__ import annotations

import csv
import json
import os

import pytest

from webui.batch.files import (
    BatchFileError,
    BatchItem,
    flat_record,
    parse_batch,
    prune_results,
    read_batch_file,
    result_record,
    write_results,
)


def test_csv_reads_the_text_column_and_keeps_row_numbers_and_the_id_column():
    data = "id,text\nA-1,合同已签订\nA-2,\n\nA-3,快递没有更新\n".encode()
    items = parse_batch(data, "tickets.csv", 10)
    assert items[0] == BatchItem(1, "合同已签订", "A-1") and items[2] == BatchItem(4, "快递没有更新", "A-3")
    # A row without a text fails on its own, listed like the job's; a blank line is no row.
    assert (items[1].row, items[1].id, items[1].text) == (2, "A-2", "") and "row 2 has no text" in items[1].error
    assert len(items) == 3


def test_csv_with_chinese_header_and_quoted_newlines():
    data = '编号,文本\n7,"第一行\n第二行"\n'.encode()
    assert parse_batch(data, "a.csv", 10) == [BatchItem(1, "第一行\n第二行", "7")]


def test_csv_with_an_unterminated_quote_is_an_error_not_a_merge():
    data = 'text\n"第一条，引号没有结束\n第二条\n第三条\n'.encode()
    with pytest.raises(BatchFileError, match="malformed.*quot"):
        parse_batch(data, "a.csv", 10)


def test_single_column_csv_needs_no_text_header():
    assert parse_batch("内容摘要\n甲方付款\n".encode(), "a.csv", 10) == [BatchItem(1, "甲方付款")]


def test_csv_without_a_text_column_names_the_columns_it_found():
    with pytest.raises(BatchFileError, match="id, body.*`text`"):
        parse_batch(b"id,body\n1,x\n", "a.csv", 10)


def test_gb18030_csv_from_excel_is_decoded():
    data = "text\n订单投诉\n".encode("gb18030")
    assert parse_batch(data, "excel.csv", 10) == [BatchItem(1, "订单投诉")]


def test_utf8_bom_is_ignored():
    assert parse_batch("\ufefftext\n你好\n".encode(), "a.csv", 10) == [BatchItem(1, "你好")]


def test_jsonl_takes_objects_with_text_or_plain_strings():
    data = '{"text": "工单一"}\n\n"工单二"\n{"text": "  "}\n'.encode()
    items = parse_batch(data, "a.jsonl", 10)
    assert items[:2] == [BatchItem(1, "工单一"), BatchItem(3, "工单二")]
    assert items[2].row == 4 and "line 4 has no text" in items[2].error


def test_a_bad_jsonl_line_fails_as_its_own_row_naming_the_line():
    items = parse_batch(b'{"text": "a", "id": 9}\n{oops\n{"body": "a"}\n', "a.jsonl", 10)
    assert items[0] == BatchItem(1, "a", "9")
    assert items[1].row == 2 and "line 2 is not valid JSON" in items[1].error
    assert items[2].row == 3 and "line 3 has no text" in items[2].error


def test_formula_cells_are_neutralised_in_the_csv(tmp_path):
    texts = ["=cmd|' /C calc'!A0", "+1", "-2", "@SUM(A1)", "\tx", "\rx", "普通文本"]
    records = [result_record(BatchItem(n, text), {"label": "=HYPERLINK(1)", "scores": {}}, None)
               for n, text in enumerate(texts, 1)]
    flat = [flat_record("classify", record, []) for record in records]
    csv_path, jsonl_path = write_results(records, flat, tmp_path / "out")
    with csv_path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["text"] for row in rows] == ["'" + text for text in texts[:-1]] + ["普通文本"]
    assert {row["label"] for row in rows} == {"'=HYPERLINK(1)"}
    assert json.loads(jsonl_path.read_text(encoding="utf-8").splitlines()[0])["text"] == texts[0]


def test_a_lone_surrogate_in_a_row_is_written_as_an_escape(tmp_path):
    record = result_record(BatchItem(1, "坏\ud800字"), None, "invalid Unicode")
    csv_path, jsonl_path = write_results([record], [flat_record("classify", record, [])], tmp_path / "out")
    assert json.loads(jsonl_path.read_text(encoding="utf-8"))["text"] == "坏\\ud800字"
    assert "坏\\ud800字" in csv_path.read_text(encoding="utf-8-sig")


def test_only_the_newest_result_folders_are_kept(tmp_path):
    for n in range(5):
        folder = tmp_path / f"batch{n}"
        folder.mkdir()
        os.utime(folder, (1000 + n, 1000 + n))
    prune_results(tmp_path, keep=2)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["batch3", "batch4"]


def test_txt_is_one_text_per_non_empty_line():
    assert parse_batch("甲\n\n乙\n".encode(), "a.txt", 10) == [BatchItem(1, "甲"), BatchItem(3, "乙")]


def test_too_many_rows_is_refused_with_the_limit_and_the_way_out():
    with pytest.raises(BatchFileError, match="3 texts, more than the limit of 2.*SEQGPT_BATCH_MAX_ROWS"):
        parse_batch(b"a\nb\nc\n", "a.txt", 2)


def test_too_big_file_is_refused_before_parsing(tmp_path):
    path = tmp_path / "big.txt"
    path.write_bytes(b"x" * 2048)
    with pytest.raises(BatchFileError, match="SEQGPT_BATCH_MAX_BYTES"):
        read_batch_file(path, max_bytes=1024, max_rows=10)


def test_unknown_format_and_empty_file_are_refused():
    with pytest.raises(BatchFileError, match="not a CSV, JSONL or TXT"):
        parse_batch(b"x", "a.xlsx", 10)
    with pytest.raises(BatchFileError, match="no texts"):
        parse_batch(b"text\n", "a.csv", 10)


def test_results_are_written_as_csv_and_jsonl(tmp_path):
    item = BatchItem(1, "甲方付款")
    classified = result_record(item, {"label": "合同", "scores": {"合同": 0.75, "新闻": 0.25}}, None)
    failed = result_record(BatchItem(2, "x"), None, "text is empty")
    records = [classified, failed]
    flat = [flat_record("classify", record, ["合同", "新闻"]) for record in records]
    csv_path, jsonl_path = write_results(records, flat, tmp_path / "out")

    with csv_path.open(encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0] == {"row": "1", "text": "甲方付款", "label": "合同", "score": "0.75", "error": ""}
    assert rows[1]["error"] == "text is empty"
    lines = [json.loads(line) for line in jsonl_path.read_text(encoding="utf-8").splitlines()]
    assert lines[0]["scores"] == {"合同": 0.75, "新闻": 0.25}


def test_extraction_rows_get_one_column_per_field():
    record = result_record(
        BatchItem(1, "小米在北京"),
        {"fields": {"公司": [{"text": "小米", "start": 0, "end": 2, "score": 0.9}], "地点": []}},
        None,
    )
    assert flat_record("extract", record, ["公司", "地点"]) == {
        "row": 1, "text": "小米在北京", "公司": "小米", "地点": "", "error": "",
    }


def test_a_field_named_like_a_tables_column_keeps_both_columns():
    record = result_record(
        BatchItem(2, "小米在北京", "A7"),
        {"fields": {"text": [{"text": "小米", "start": 0, "end": 2, "score": 0.9}], "id": [], "error": []}},
        None,
    )
    assert flat_record("extract", record, ["text", "id", "error"], with_id=True) == {
        "row": 2, "id": "A7", "text": "小米在北京",
        "field_text": "小米", "field_id": "", "field_error": "", "error": "",
    }


def test_a_jsonl_line_that_is_no_object_fails_with_its_kind():
    items = parse_batch(b'[1, 2]\n{"text": "a"}\n', "a.jsonl", 10)
    assert "line 1 is a JSON array, not an object" in items[0].error and items[1] == BatchItem(2, "a")


def test_a_csv_row_with_more_cells_than_the_header_fails_instead_of_running_part_of_its_text():
    items = parse_batch("text\nHello, world\n正常一行\n".encode(), "a.csv", 10)
    assert "row 1 has 2 cells but the header names 1" in items[0].error and not items[1].error


def test_a_file_in_which_no_row_can_run_is_refused_with_its_first_rows_reason_as_a_job_is():
    with pytest.raises(BatchFileError, match="none of the file's 2 rows can run; the first: .*row 1 has no text"):
        parse_batch(b"id,text\n1,\n2, \n", "a.csv", 10)
