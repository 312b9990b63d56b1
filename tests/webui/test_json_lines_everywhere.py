"""JSON-lines files are read by one reader everywhere: a line nested too deeply for the parser fails alone,
with its line number and a reason, in the batch tab, jobs and evaluation (the knowledge base refuses the
file, naming the line); the lines around it are read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation.data import parse_gold
from model_loader.errors import InvalidInputError
from model_loader.text.files import JsonLine, json_lines
from webui.batch.files import read_batch_file
from webui.jobs.files import InputReader
from webui.kb.documents import from_file

DEEP = "[" * 200_000 + "]" * 200_000  # far past Python's recursion limit: json.loads raises RecursionError
LINES = [json.dumps({"text": "第一行", "label": "好"}, ensure_ascii=False), DEEP,
         json.dumps({"text": "第三行", "label": "好"}, ensure_ascii=False)]
CONTENT = "\n".join(LINES) + "\n"


def test_the_reader_reports_a_deep_line_and_reads_the_others():
    read = list(json_lines(["", *LINES, "{bad"]))
    assert [r.number for r in read] == [2, 3, 4, 5]
    assert read[0].value == {"text": "第一行", "label": "好"} and read[2].problem == ""
    assert read[1] == JsonLine(3, None, "nested too deeply")
    assert read[3].problem.startswith("Expecting property name")


def test_a_batch_file_keeps_the_deep_line_as_its_own_failed_row(tmp_path: Path):
    path = tmp_path / "texts.jsonl"
    path.write_text(CONTENT, encoding="utf-8")
    items = read_batch_file(path, 10 * len(CONTENT), 100)
    assert [(i.row, i.text) for i in items] == [(1, "第一行"), (2, ""), (3, "第三行")]
    assert "line 2 is not valid JSON (nested too deeply)" in items[1].error and "此行" in items[1].error


def test_a_job_file_keeps_the_deep_line_as_its_own_failed_row(tmp_path: Path):
    path = tmp_path / "job.jsonl"
    path.write_text(CONTENT, encoding="utf-8")
    rows = list(InputReader(path, "job.jsonl"))
    assert [r.text for r in rows] == ["第一行", "", "第三行"]
    assert "line 2 is not valid JSON (nested too deeply)" in rows[1].problem


def test_an_evaluation_file_skips_the_deep_line_naming_it():
    gold = parse_gold(CONTENT.encode(), "gold.jsonl", "classify", {})
    assert [row.text for row in gold.rows] == ["第一行", "第三行"]
    assert [(bad.line, bad.reason) for bad in gold.skipped] == [(2, "not valid JSON (nested too deeply)")]


def test_a_knowledge_base_file_is_refused_naming_the_deep_line():
    with pytest.raises(InvalidInputError, match=r"docs\.jsonl line 2 is not valid JSON \(nested too deeply\)"):
        from_file("docs.jsonl", CONTENT.encode(), 100)
