"""POST /api/evaluate through real HTTP on demo weights, and scripts/evaluate.py --url against the same server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from evaluation.rouge import rouge_scores

pytestmark = pytest.mark.service

ROOT = Path(__file__).resolve().parents[2]
TICKETS = "text,label\n快递三天没到,投诉\n能开发票吗,咨询\n服务很好,表扬\n东西坏了要退,投诉\n".encode()
NER = "\n".join(json.dumps(row, ensure_ascii=False) for row in [
    {"text": "小米集团在北京发布新机", "entities": [{"field": "公司", "start": 0, "end": 4},
                                                   {"field": "地点", "start": 5, "end": 7}]},
    {"text": "张三去了上海", "entities": [{"field": "人名", "start": 0, "end": 2}]},
]).encode()


def test_evaluate_returns_the_report_and_one_prediction_per_row(demo_server):
    with httpx.Client(base_url=demo_server.url, timeout=300.0) as client:
        response = client.post("/api/evaluate", files={"file": ("tickets.csv", TICKETS)}, data={"task": "classify"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["task"] == "classify" and body["rows"] == 4 and body["request_id"]
    assert set(body["per_label"]) == {"投诉", "咨询", "表扬"}
    assert [p["line"] for p in body["predictions"]] == [2, 3, 4, 5]
    gold = ["投诉", "咨询", "表扬", "投诉"]
    right = sum(p["label"] == want for p, want in zip(body["predictions"], gold, strict=True))
    assert body["accuracy"] == round(right / 4, 4)


def test_evaluate_extraction_maps_fields_from_a_map_file_and_scores_spans(demo_server):
    with httpx.Client(base_url=demo_server.url, timeout=300.0) as client:
        # The map as a file part, as `curl -F map=@map.txt` sends it, saved as GB18030 (read like every upload).
        field_map = ("map.txt", "公司=公司名称\n地点=地名".encode("gb18030"))
        response = client.post("/api/evaluate", data={"task": "extract"},
                               files={"file": ("ner.jsonl", NER), "map": field_map})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["names"] == ["公司名称", "地名", "人名"]
    assert body["micro"]["support"] == 3
    for prediction in body["predictions"]:
        assert set(prediction["fields"]) == {"公司名称", "地名", "人名"}


def test_evaluate_summaries_scores_rouge_over_the_returned_summaries(demo_server):
    rows = [{"content": "合同金额超过一百万元的须经法务部审核，审核时间一般为三个工作日。",
             "summary": "大额合同须法务审核"},
            {"text": "员工提交发票和审批单，财务部门在五个工作日内完成付款。", "summary": "报销五日内付款"}]
    lcsts = "\n".join(json.dumps(row, ensure_ascii=False) for row in rows).encode()
    with httpx.Client(base_url=demo_server.url, timeout=300.0) as client:
        response = client.post("/api/evaluate", files={"file": ("lcsts.jsonl", lcsts)},
                               data={"task": "summarize", "max_chars": "12"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["task"] == "summarize" and body["rows"] == 2
    summaries = [p["summary"] for p in body["predictions"]]
    assert all(isinstance(s, str) for s in summaries)
    scores = [rouge_scores(got, row["summary"]) for got, row in zip(summaries, rows, strict=True)]
    for key in ("rouge1", "rouge2", "rougeL"):
        assert body[key]["f1"] == pytest.approx(sum(s[key]["f1"] for s in scores) / 2, abs=1e-4)


@pytest.mark.parametrize(("files", "data", "expected"), [
    (None, {"task": "classify"}, "`file` is missing"),
    ({"file": (None, "text,label")}, {"task": "classify"}, "`file` came as a text field"),
    ({"file": ("t.csv", TICKETS)}, {"task": "summarise"}, "task 'summarise' is unknown"),
    ({"file": ("t.txt", TICKETS)}, {"task": "classify"}, "is not JSONL or CSV"),
    ({"file": ("t.csv", b"text,label\n,x\n")}, {"task": "classify"}, "line 2: no text"),
    ({"file": ("t.csv", TICKETS)}, {"task": "classify", "map": "oops"}, "is not KEY=VALUE"),
    ({"file": ("s.jsonl", b'{"text": "x", "summary": "y"}')}, {"task": "summarize", "max_chars": "0"},
     "`max_chars` must be a whole number"),
])
def test_bad_uploads_get_422_with_what_to_fix_and_a_request_id(demo_server, files, data, expected):
    with demo_server.client() as client:
        if files is None:
            response = client.post("/api/evaluate", data=data, files={"other": ("x", b"")})
        else:
            response = client.post("/api/evaluate", files=files, data=data)
    assert response.status_code == 422, response.text
    assert expected in response.json()["error"] and response.json()["request_id"]


def test_a_json_body_gets_422_saying_how_to_send_the_file(demo_server):
    with demo_server.client() as client:
        response = client.post("/api/evaluate", json={"task": "classify"})
    assert response.status_code == 422
    assert "multipart/form-data" in response.json()["error"]


def test_the_command_evaluates_a_running_appliance_over_http(demo_server, tmp_path):
    data = tmp_path / "tickets.csv"
    data.write_bytes(TICKETS)
    saved = tmp_path / "predictions.jsonl"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--task", "classify", "--data", str(data),
         "--url", demo_server.url, "--save-predictions", str(saved), "--json", str(tmp_path / "report.json"),
         "--no-progress"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "loading the model" not in done.stderr
    predictions = [json.loads(line) for line in saved.read_text("utf-8").splitlines()]
    assert len(predictions) == 4
    assert all(p["request_id"] and p["label"] in ("投诉", "咨询", "表扬") for p in predictions)
    assert json.loads((tmp_path / "report.json").read_text("utf-8"))["rows"] == 4
    assert demo_server.log_text().count("task=classify source=api") >= 4
