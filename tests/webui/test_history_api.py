"""Request history through real HTTP on demo weights: stored, found, corrected, exported and scored again."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from servers import REPO_ROOT, RunningServer, start_server, stop_server

pytestmark = pytest.mark.service

AUTH = ("alice", "s3cret")
LABELS = ["投诉", "咨询"]
TICKETS = [
    "快递三天没有更新物流信息，希望尽快处理。",
    "请问企业版是否支持私有化部署？",
    "客服电话打了五次都没人接。",
    "发票可以开成增值税专用发票吗？",
    "收到的耳机左边没有声音。",
]
CONTRACT = "甲方北京星河科技有限公司与乙方签订合同，金额为120万元，签订日期2024年3月1日。"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, demo_model_dir: Path) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("history-server"), demo_model_dir, {
        "SEQGPT_HISTORY": "on", "SEQGPT_AUTH": ":".join(AUTH), "SEQGPT_EXTRACT_MAX_NEW_TOKENS": "8",
    })
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with server.client(auth=AUTH) as http:
        yield http


def post(client: httpx.Client, path: str, body: dict) -> dict:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def stored(client: httpx.Client, request_id: str) -> dict:
    response = client.get(f"/api/requests/{request_id}")
    assert response.status_code == 200, response.text
    return response.json()


def test_every_task_is_found_by_its_id_and_by_its_text(client: httpx.Client):
    classified = post(client, "/api/classify", {"text": "独一无二的分类文本：球队夺冠", "labels": ["体育", "财经"]})
    extracted = post(client, "/api/extract",
                     {"text": "独一无二的抽取文本：" + CONTRACT, "fields": ["公司名称", "金额"]})
    generated = post(client, "/api/generate", {"prompt": "输入: 独一无二的提示\n分类: 是，否\n输出: [GEN]",
                                               "max_new_tokens": 4})
    job = client.post("/api/jobs", files={"file": ("t.csv", "text\n独一无二的任务行甲\n独一无二的任务行乙\n")},
                      data={"task": "classify", "labels": "投诉，咨询"})
    assert job.status_code == 202, job.text
    job_id = job.json()["job_id"]
    deadline = time.monotonic() + 120
    while client.get(f"/api/jobs/{job_id}").json()["state"] != "done":
        assert time.monotonic() < deadline
        time.sleep(0.2)

    one = stored(client, classified["request_id"])
    assert one["task"] == "classify"
    assert one["input"] == {"text": "独一无二的分类文本：球队夺冠", "labels": ["体育", "财经"]}
    assert one["answer"]["label"] == classified["label"] and one["latency_ms"] > 0 and one["feedback"] is None
    two = stored(client, extracted["request_id"])
    assert two["input"]["fields"] == ["公司名称", "金额"] and two["input"]["threshold"] == 0.0
    assert two["answer"]["fields"] == extracted["fields"]
    three = stored(client, generated["request_id"])
    assert three["task"] == "generate" and three["answer"]["text"] == generated["text"]
    row = stored(client, f"job-{job_id}-2")
    assert row["source"] == "job" and row["input"]["text"] == "独一无二的任务行乙" and row["answer"]["label"] in LABELS

    found = client.get("/api/requests", params={"q": "独一无二的"}).json()["requests"]
    ids = [item["request_id"] for item in found]
    assert set(ids) >= {classified["request_id"], extracted["request_id"], generated["request_id"],
                        f"job-{job_id}-1", f"job-{job_id}-2"}
    assert [item["epoch"] for item in found] == sorted((item["epoch"] for item in found), reverse=True)
    only = client.get("/api/requests", params={"q": "独一无二的", "task": "extract"}).json()["requests"]
    assert [item["request_id"] for item in only] == [extracted["request_id"]]


def test_feedback_round_trips_with_who_gave_it_and_can_be_changed(client: httpx.Client):
    answer = post(client, "/api/extract", {"text": CONTRACT, "fields": ["公司名称", "金额"]})
    rid = answer["request_id"]
    body = {"verdict": "wrong", "expected": {"fields": {"公司名称": [{"text": "北京星河科技有限公司"}],
                                                        "金额": [{"text": "120万元", "start": 23, "end": 28}]}}}
    given = client.post(f"/api/requests/{rid}/feedback", json=body)
    assert given.status_code == 200, given.text
    back = stored(client, rid)["feedback"]
    assert back["verdict"] == "wrong" and back["user"] == "alice"
    assert back["expected"] == {"fields": {"公司名称": [{"text": "北京星河科技有限公司", "start": 2, "end": 12}],
                                           "金额": [{"text": "120万元", "start": 23, "end": 28}]}}
    assert CONTRACT[23:28] == "120万元"
    client.post(f"/api/requests/{rid}/feedback", json={"verdict": "correct"})
    assert stored(client, rid)["feedback"]["verdict"] == "correct"
    assert stored(client, rid)["feedback"]["expected"] is None
    marked = client.get("/api/requests", params={"feedback": "correct", "task": "extract"}).json()["requests"]
    assert rid in [item["request_id"] for item in marked]


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"verdict": "wrong", "expected": {"label": 5}}, 422, "正确标签应为文字"),
    ({"verdict": "so-so"}, 422, "send \"correct\" or \"wrong\""),
    ("not an object", 422, "must be a JSON object"),
])
def test_bad_feedback_gets_the_api_error_shape(client: httpx.Client, body: object, status: int, words: str):
    rid = post(client, "/api/classify", {"text": "快递没到", "labels": LABELS})["request_id"]
    response = client.post(f"/api/requests/{rid}/feedback", json=body)
    assert response.status_code == status
    answer = response.json()
    assert set(answer) == {"error", "request_id"} and words in answer["error"]
    assert answer["request_id"] == response.headers["x-request-id"]


def test_a_mention_not_in_the_text_and_an_unknown_id_are_refused_clearly(client: httpx.Client):
    rid = post(client, "/api/extract", {"text": CONTRACT, "fields": ["公司名称"]})["request_id"]
    missing = client.post(f"/api/requests/{rid}/feedback",
                          json={"verdict": "wrong", "expected": {"fields": {"公司名称": ["南海公司"]}}})
    assert missing.status_code == 422 and "原文里没有这个提及" in missing.json()["error"]
    unknown = client.get("/api/requests/no-such-id")
    assert unknown.status_code == 404 and "没有这个请求" in unknown.json()["error"]
    assert client.post("/api/requests/no-such-id/feedback", json={"verdict": "correct"}).status_code == 404
    assert client.get("/api/requests", params={"feedback": "maybe"}).status_code == 422
    assert client.get("/api/feedback/export", params={"task": "generate"}).status_code == 422


def test_a_correction_names_what_the_request_asked_and_differs_from_the_answer(client: httpx.Client):
    def refused(rid: str, expected: dict) -> str:
        response = client.post(f"/api/requests/{rid}/feedback", json={"verdict": "wrong", "expected": expected})
        assert response.status_code == 422, response.text
        return response.json()["error"]

    answer = post(client, "/api/classify", {"text": "快递三天没到", "labels": LABELS})
    assert "not among the request's labels (投诉，咨询)" in refused(answer["request_id"], {"label": "天气"})
    assert "same label" in refused(answer["request_id"], {"label": answer["label"]})

    answer = post(client, "/api/extract", {"text": CONTRACT, "fields": ["公司名称"]})
    rid = answer["request_id"]
    assert "not among the request's fields" in refused(rid, {"fields": {"金额": ["120万元"]}})
    assert "given twice" in refused(rid, {"fields": {"公司名称": ["北京星河科技有限公司"], " 公司名称 ": []}})
    own = {name: [{key: m[key] for key in ("text", "start", "end")} for m in mentions]
           for name, mentions in answer["fields"].items()}
    assert "same mentions" in refused(rid, {"fields": own})
    assert stored(client, rid)["feedback"] is None, "nothing refused was stored"


def test_export_then_evaluate_gives_the_hand_counted_accuracy(client: httpx.Client, server: RunningServer,
                                                                demo_model_dir: Path, tmp_path: Path):
    client.delete("/api/requests", params={"before": str(time.time() + 1)})  # only this test's feedback
    answers = [post(client, "/api/classify", {"text": text, "labels": LABELS}) for text in TICKETS]
    other = {"投诉": "咨询", "咨询": "投诉"}
    # Gold for each row, chosen so that the harness, which offers the model the gold labels in the order
    # first seen, offers them as the requests did: 投诉 first, then 咨询.
    verdicts = []
    for answer, gold in zip(answers, ["投诉", "咨询", None, "wrong", None], strict=True):
        if gold is None or gold == answer["label"]:
            verdicts.append(("correct", answer["label"]))
        else:
            verdicts.append(("wrong", other[answer["label"]] if gold == "wrong" else gold))
    for answer, (verdict, label) in zip(answers, verdicts, strict=True):
        body = {"verdict": verdict, **({"expected": {"label": label}} if verdict == "wrong" else {})}
        assert client.post(f"/api/requests/{answer['request_id']}/feedback", json=body).status_code == 200

    exported = client.get("/api/feedback/export", params={"task": "classify"})
    assert exported.status_code == 200
    rows = [json.loads(line) for line in exported.text.splitlines()]
    assert [(row["text"], row["label"]) for row in rows] == [
        (text, label) for text, (_, label) in zip(TICKETS, verdicts, strict=True)]
    data = tmp_path / "corrections.jsonl"
    data.write_text(exported.text, encoding="utf-8")

    # Demo weights answer the same text the same way every time: the model is right exactly where
    # the user said "correct", and wrong on every correction.
    correct = sum(verdict == "correct" for verdict, _ in verdicts)
    assert 0 < correct < 5
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "evaluate.py"), "--task", "classify", "--data", str(data),
         "--json", str(tmp_path / "report.json"), "--concurrency", "1", "--no-progress"],
        capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
        env={**os.environ, "SEQGPT_MODEL_DIR": str(demo_model_dir), "SEQGPT_DEVICE": "cpu", "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["rows"] == 5 and report["names"] == LABELS
    assert report["accuracy"] == round(correct / 5, 4)


def test_extraction_feedback_exports_spans_the_harness_reads(client: httpx.Client):
    from evaluation import parse_gold

    body = {"text": "乙方：南海重工，金额：300万元", "fields": ["公司名称", "金额"]}
    rid = post(client, "/api/extract", body)["request_id"]
    body = {"verdict": "wrong", "expected": {"fields": {"公司名称": ["南海重工"], "金额": ["300万元"]}}}
    assert client.post(f"/api/requests/{rid}/feedback", json=body).status_code == 200
    exported = client.get("/api/feedback/export", params={"task": "extract"}).text
    gold = parse_gold(exported.encode(), "corrections.jsonl", "extract", {})
    row = next(row for row in gold.rows if row.text == "乙方：南海重工，金额：300万元")
    assert [(s.field, s.start, s.end) for s in row.spans] == [("公司名称", 3, 7), ("金额", 11, 16)]
    assert not gold.skipped


def test_metrics_count_stored_requests_and_feedback_by_verdict(client: httpx.Client):
    rid = post(client, "/api/classify", {"text": "度量用的文本", "labels": LABELS})["request_id"]
    client.post(f"/api/requests/{rid}/feedback", json={"verdict": "wrong", "expected": {"label": "咨询"}})
    text = client.get("/metrics").text
    lines = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
             if line.startswith("seqgpt_history")}
    assert lines["seqgpt_history_requests"] >= 1 and lines['seqgpt_history_feedback{verdict="wrong"}'] >= 1
    assert lines["seqgpt_history_dropped_total"] == 0


def test_erasing_before_a_time_removes_those_requests(client: httpx.Client):
    rid = post(client, "/api/classify", {"text": "要被删除的文本", "labels": LABELS})["request_id"]
    stored(client, rid)
    assert client.delete("/api/requests").status_code == 422  # no date: nothing erased by accident
    erased = client.delete("/api/requests", params={"before": "2999-01-01"})
    assert erased.status_code == 200 and erased.json()["erased"] >= 1
    assert client.get(f"/api/requests/{rid}").status_code == 404
    assert client.get("/api/requests").json()["requests"] == []


def test_with_history_off_nothing_is_stored_and_the_routes_say_how_to_turn_it_on(demo_server: RunningServer):
    db = demo_server.workspace / "seqgpt560m.db"
    with demo_server.client() as http:
        http.post("/api/classify", json={"text": "热身", "labels": LABELS})
        sizes = {path.name: path.stat().st_size for path in db.parent.glob("seqgpt560m.db*")}
        for text in TICKETS:
            assert http.post("/api/classify", json={"text": text, "labels": LABELS}).status_code == 200
        answer = http.get("/api/requests")
        assert answer.status_code == 404 and "SEQGPT_HISTORY=on" in answer.json()["error"]
        assert http.get("/api/requests/abc").status_code == 404
    assert {path.name: path.stat().st_size for path in db.parent.glob("seqgpt560m.db*")} == sizes
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM requests").fetchone()[0] == 0


def test_every_recorded_task_can_be_filtered_and_a_misspelt_one_is_refused(client: httpx.Client):
    summary = post(client, "/api/summarize", {"text": "独一无二的摘要文本：" + CONTRACT, "max_chars": 20})
    assert stored(client, summary["request_id"])["task"] == "summarize"  # written, not just queued
    found = client.get("/api/requests", params={"task": "summarize"}).json()["requests"]
    assert summary["request_id"] in {item["request_id"] for item in found}
    assert {item["task"] for item in found} == {"summarize"}

    wrong = client.get("/api/requests", params={"task": "clasify"})
    assert wrong.status_code == 422, wrong.text
    assert "'clasify'" in wrong.json()["error"] and "classify, extract" in wrong.json()["error"]


def test_a_knowledge_base_question_is_kept_as_asked_with_its_sources(client: httpx.Client):
    passage = "独一无二的知识库段落：报销需在三十天内提交发票原件。"
    added = client.post("/api/kb/documents", json={"documents": [{"id": "reimburse", "text": passage}]})
    assert added.status_code == 200, added.text
    asked = post(client, "/api/kb/ask", {"query": "独一无二的问题：报销期限", "top_k": 1, "max_chars": 20})
    assert asked["summary"] is not None and asked["hits"][0]["doc_id"] == "reimburse"
    kept = stored(client, asked["request_id"])
    assert kept["task"] == "kb_ask"
    assert kept["input"] == {"query": "独一无二的问题：报销期限", "top_k": 1, "max_chars": 20,
                             "sources": [{"doc_id": "reimburse", "chunk_id": 0}], "passages": passage}
    found = client.get("/api/requests", params={"q": "独一无二的问题"}).json()["requests"]
    assert [item["request_id"] for item in found] == [asked["request_id"]], "found by the question asked"


def test_paging_through_the_history_ends_with_a_null_next_before(client: httpx.Client):
    ids = {post(client, "/api/classify", {"text": f"翻页测试第{n}条", "labels": LABELS})["request_id"]
           for n in range(3)}
    for request_id in ids:
        stored(client, request_id)  # written, not just queued
    whole = client.get("/api/requests", params={"q": "翻页测试"}).json()
    assert {item["request_id"] for item in whole["requests"]} == ids and whole["next_before"] is None
    seen, before = [], None
    for _ in range(3):
        page = client.get("/api/requests", params={"q": "翻页测试", "limit": 1,
                                                   **({"before": before} if before else {})}).json()
        seen += [item["request_id"] for item in page["requests"]]
        before = page["next_before"]
    assert set(seen) == ids and len(seen) == 3 and before is None, "the third page of one is the last"
