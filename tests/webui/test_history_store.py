"""The request history's store, recorder and feedback rules on a real SQLite file, without a server."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from model_loader.errors import InvalidInputError
from webui.history.feedback import check_feedback, expected_from_text, gold_row
from webui.history.recorder import HistoryRecorder
from webui.history.store import HistoryStore, Record, Stored
from webui.store import db

DAY = 86400.0


def record(request_id: str, stamp: float, text: str = "快递没到", task: str = "classify", answer: object = None,
           truncated: bool = False) -> Record:
    answer = answer if answer is not None else {"label": "投诉", "scores": {"投诉": 0.7, "咨询": 0.3}}
    return Record(request_id, stamp, task, "api", text, {"text": text, "labels": ["投诉", "咨询"]}, answer, 12.5,
                  "/models/demo", "float32 fast demo", truncated)


@pytest.fixture
def store(tmp_path: Path) -> HistoryStore:
    return HistoryStore(tmp_path / "seqgpt560m.db")


def test_the_history_tables_come_as_the_migration_after_the_jobs(tmp_path: Path):
    conn = db.open_database(tmp_path / "x.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(db.MIGRATIONS) >= 2
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"jobs", "job_rows", "requests", "feedback"} <= tables


def test_requests_are_found_by_id_and_by_text_newest_first_and_paged_with_before(store: HistoryStore):
    now = time.time()
    store.add([record(f"r{i}", now - 10 + i, text=f"第{i}条 合同金额 {i}") for i in range(5)])
    store.add([record("other", now, text="今天天气很好")])
    assert store.get("r3").record.text == "第3条 合同金额 3"
    assert store.get("nope") is None
    found = store.search(q="合同")
    assert [s.record.id for s in found] == ["r4", "r3", "r2", "r1", "r0"]
    page = store.search(q="合同", limit=2)
    assert [s.record.id for s in page] == ["r4", "r3"]
    rest = store.search(q="合同", limit=10, before=page[-1].record.time)
    assert [s.record.id for s in rest] == ["r2", "r1", "r0"]
    assert [s.record.id for s in store.search(q="100%_")] == []  # LIKE's own wildcards are literal here


def test_paging_by_time_and_id_misses_no_request_of_a_shared_time(store: HistoryStore):
    store.add([record(f"same{i}", 5.0) for i in range(3)] + [record("older", 4.0)])
    seen, mark = [], None
    for _ in range(4):
        [found] = store.search(limit=1, before=mark[0] if mark else None, before_id=mark[1] if mark else None)
        seen.append(found.record.id)
        mark = (found.record.time, found.record.id)
    assert seen == ["same2", "same1", "same0", "older"]
    assert [s.record.id for s in store.search(before=5.0)] == ["older"], "a time alone keeps what came before it"


def test_rows_that_share_a_request_id_are_all_kept(store: HistoryStore):
    assert store.add([record("batch1", 1.0), record("batch1", 2.0), record("batch1", 3.0)]) == [
        "batch1", "batch1.2", "batch1.3"]


def test_feedback_round_trips_is_replaced_and_filters_the_list(store: HistoryStore):
    now = time.time()
    store.add([record("a", now - 2), record("b", now - 1), record("c", now)])
    assert store.set_feedback("a", "wrong", {"label": "咨询"}, "alice")
    assert store.set_feedback("b", "correct", None, None)
    assert not store.set_feedback("missing", "correct", None, None)
    got = store.get("a").feedback
    assert (got.verdict, got.expected, got.user) == ("wrong", {"label": "咨询"}, "alice")
    assert store.set_feedback("a", "correct", None, "bob")
    assert store.get("a").feedback.verdict == "correct" and store.get("a").feedback.expected is None
    assert [s.record.id for s in store.search(feedback="none")] == ["c"]
    assert [s.record.id for s in store.search(feedback="any")] == ["b", "a"]
    assert store.counts() == {"requests": 3, "correct": 2, "wrong": 0}
    assert store.feedback_by_task() == {"classify": {"correct": 2, "wrong": 0}}


def test_retention_purges_by_age_then_the_oldest_past_the_size_limit(store: HistoryStore):
    now = time.time()
    store.add([record("old", now - 40 * DAY), record("older", now - 50 * DAY)])
    store.add([record(f"n{i}", now - 100 + i, text="x" * 1000) for i in range(10)])
    store.set_feedback("old", "correct", None, None)
    by_age, by_size = store.purge(30 * DAY, 10**9, now=now)
    assert (by_age, by_size) == (2, 0)
    one = store.total_bytes() / 10  # the ten new rows are all the same size
    assert store.get("old") is None and store.counts()["correct"] == 0  # its feedback went with it
    by_age, by_size = store.purge(30 * DAY, store.total_bytes() - 1, now=now)
    assert (by_age, by_size) == (0, 1) and store.get("n0") is None and store.get("n1") is not None
    by_age, by_size = store.purge(30 * DAY, int(one * 3.5), now=now)
    assert by_size == 6
    assert [s.record.id for s in store.search()] == ["n9", "n8", "n7"]


def test_erase_before_a_time_removes_only_what_is_older(store: HistoryStore):
    store.add([record("a", 100.0), record("b", 200.0), record("c", 300.0)])
    assert store.delete_before(250.0) == 2
    assert [s.record.id for s in store.search()] == ["c"]


def test_the_recorder_stores_inputs_by_name_and_cuts_long_texts(store: HistoryStore):
    recorder = HistoryRecorder(store, 30, 512, max_text_chars=100)
    recorder.start()

    def classify(text: str, labels: list[str]) -> None: ...

    recorder.record("classify", "api", "long1", 5.0, classify, ("长" * 250, ["a", "b"]), {"label": "a"}, "m", "w")
    recorder.record("classify", "evaluate", "eval1", 5.0, classify, ("x", ["a"]), {"label": "a"}, "m", "w")
    recorder.flush()
    recorder.stop()
    stored = store.get("long1").record
    assert stored.truncated and stored.text == "长" * 100
    assert stored.input == {"text": "长" * 100, "labels": ["a", "b"],
                            "truncated": {"text": {"chars": 250, "kept": 100}}}
    assert store.get("eval1") is None  # evaluation rows are the user's own labelled file, not requests


def test_a_full_queue_drops_and_counts_instead_of_waiting(store: HistoryStore):
    recorder = HistoryRecorder(store, 30, 512, 1000, queue_size=2)  # writer not started: nothing drains
    started = time.perf_counter()
    for i in range(5):
        recorder.record("generate", "api", f"g{i}", 1.0, None, ({"prompt": "p"},), {"text": "t"}, "m", "w")
    assert recorder.dropped == 3 and time.perf_counter() - started < 0.5


class ReadOnlyStore(HistoryStore):
    """SQLite itself refuses every write (query_only): what a read-only workspace does to the writer."""

    def _conn(self) -> sqlite3.Connection:
        conn = super()._conn()
        conn.execute("PRAGMA query_only=1")
        return conn


def test_a_store_that_cannot_write_logs_one_warning_and_drops(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    recorder = HistoryRecorder(ReadOnlyStore(tmp_path / "ro.db"), 30, 512, 1000)
    recorder.start()
    for i in range(3):
        recorder.record("generate", "api", f"g{i}", 1.0, None, ({"prompt": "p"},), {"text": "t"}, "m", "w")
        recorder.flush()
    recorder.stop()
    warnings = [r for r in caplog.records if "history not written" in r.getMessage()]
    assert len(warnings) == 1 and "readonly" in warnings[0].getMessage()
    assert recorder.dropped == 3


def extract_record(text: str) -> Record:
    answer = {"fields": {"公司": [{"text": "星河科技", "start": 2, "end": 6, "score": 0.9}]}}
    return Record("e1", 1.0, "extract", "api", text, {"text": text, "fields": ["公司", "金额"]}, answer, 1.0, "m", "w")


def test_a_mention_given_as_text_is_located_at_its_first_occurrence():
    rec = extract_record("甲方星河科技，乙方蓝海公司，金额100万元，星河科技付款")
    verdict, expected = check_feedback(
        {"verdict": "wrong", "expected": {"fields": {"公司": ["星河科技", {"text": "蓝海公司"}], "金额": []}}}, rec, 64)
    assert verdict == "wrong"
    assert expected == {"fields": {"公司": [{"text": "星河科技", "start": 2, "end": 6},
                                          {"text": "蓝海公司", "start": 9, "end": 13}], "金额": []}}


@pytest.mark.parametrize(("body", "words"), [
    ({"verdict": "maybe"}, "send \"correct\" or \"wrong\""),
    ({"verdict": "wrong", "expected": {"fields": {"公司": ["不存在"]}}}, "not in the request's text"),
    ({"verdict": "wrong", "expected": {"fields": {"公司": [{"text": "星河", "start": 0, "end": 2}]}}}, "reads '甲方'"),
    ({"verdict": "wrong", "expected": {"fields": {"公司": [{"text": "星河", "start": 2, "end": 99}]}}}, "0 ≤ start"),
    ({"verdict": "wrong", "expected": {"label": "x"}}, "must be {\"fields\""),
    ({"verdict": "correct", "expected": {"fields": {}}}, "goes with \"wrong\" only"),
    ([1, 2], "must be a JSON object"),
])
def test_bad_feedback_says_what_is_wrong_in_both_languages(body: object, words: str):
    with pytest.raises(InvalidInputError, match=".*") as caught:
        check_feedback(body, extract_record("甲方星河科技，乙方蓝海公司"), 64)
    assert words in str(caught.value) and " · " in str(caught.value)


@pytest.mark.parametrize("label", [7, "", "  ", None, ["体育"]])
def test_a_label_must_be_a_non_empty_string(label: object):
    with pytest.raises(InvalidInputError, match="正确标签应为文字"):
        check_feedback({"verdict": "wrong", "expected": {"label": label}}, record("c", 1.0), 64)


def test_the_right_answer_box_reads_one_line_per_field():
    assert expected_from_text("extract", "公司: 星河科技|蓝海公司\n金额：None\n") == {
        "fields": {"公司": ["星河科技", "蓝海公司"], "金额": []}}
    assert expected_from_text("classify", " 体育 ") == {"label": "体育"}
    with pytest.raises(InvalidInputError, match="line 1"):
        expected_from_text("extract", "没有冒号")


def test_gold_rows_use_the_correction_or_the_models_own_answer_and_skip_cut_texts():
    from webui.history.store import Feedback

    wrong = Stored(record("a", 1.0), Feedback("wrong", {"label": "咨询"}, None, 2.0))
    right = Stored(record("b", 1.0), Feedback("correct", None, None, 2.0))
    bare = Stored(record("c", 1.0), Feedback("wrong", None, None, 2.0))
    cut = Stored(record("d", 1.0, truncated=True), Feedback("correct", None, None, 2.0))
    assert gold_row(wrong)["label"] == "咨询" and gold_row(right)["label"] == "投诉"
    assert gold_row(bare) is None and gold_row(cut) is None
    extract = Stored(extract_record("甲方星河科技"), Feedback("correct", None, None, 2.0))
    assert json.loads(json.dumps(gold_row(extract)))["entities"] == [
        {"field": "公司", "start": 2, "end": 6, "text": "星河科技"}]
