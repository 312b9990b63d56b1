"""The JSON API, /health and /metrics of a real `python -m webui` on demo weights, over real HTTP."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.service

CONTRACT = "本合同由甲方北京星河科技有限公司与乙方上海云帆信息技术有限公司签订，合同金额人民币一百万元整。"


def counter(metrics_text: str, task: str, source: str, outcome: str) -> float:
    pattern = (rf'^seqgpt_requests_total\{{outcome="{outcome}",source="{source}",task="{task}"\}} '
               r"([0-9.e+]+)$")
    match = re.search(pattern, metrics_text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_health_was_503_loading_before_the_model_was_ready_and_is_200_after(demo_server):
    first_status, first_body = demo_server.health_history[0]
    assert first_status == 503 and first_body["status"] in ("idle", "loading")
    assert "loading" in first_body["reason"]
    with demo_server.client() as http:
        response = http.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["device"] == "cpu" and body["is_demo"] is True


def test_classify_returns_one_of_the_labels_with_scores_for_all(demo_server):
    with demo_server.client() as http:
        response = http.post("/api/classify", json={"text": CONTRACT, "labels": ["合同", "新闻", "工单"]})
    assert response.status_code == 200
    body = response.json()
    assert body["label"] in ("合同", "新闻", "工单")
    assert set(body["scores"]) == {"合同", "新闻", "工单"}
    assert abs(sum(body["scores"].values()) - 1.0) < 1e-3
    assert body["split"] is False and body["pieces"] == 1
    assert re.fullmatch(r"[0-9a-f]{32}", body["request_id"])
    assert response.headers["X-Request-ID"] == body["request_id"]
    assert body["latency_ms"] > 0


def test_labels_may_be_one_comma_separated_string(demo_server):
    with demo_server.client() as http:
        body = http.post("/api/classify", json={"text": CONTRACT, "labels": "合同，新闻,工单"}).json()
    assert set(body["scores"]) == {"合同", "新闻", "工单"}


def test_extract_returns_mentions_found_in_the_text_with_offsets(demo_server):
    with demo_server.client() as http:
        response = http.post("/api/extract", json={"text": CONTRACT, "fields": "甲方，乙方，合同金额"})
    assert response.status_code == 200
    body = response.json()
    assert set(body["fields"]) == {"甲方", "乙方", "合同金额"}
    for mentions in body["fields"].values():
        for mention in mentions:
            assert CONTRACT[mention["start"]:mention["end"]] == mention["text"]
            assert 0.0 <= mention["score"] <= 1.0
    assert isinstance(body["raw"], str)
    assert {"request_id", "latency_ms", "split", "pieces", "dropped"} <= set(body)


def test_generate_returns_the_raw_text(demo_server):
    prompt = "输入: 快递三天没有更新\n分类: 投诉，咨询\n输出: [GEN]"
    with demo_server.client() as http:
        response = http.post("/api/generate", json={"prompt": prompt, "max_new_tokens": 8})
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body["text"], str) and body["new_tokens"] <= 8
    assert {"request_id", "latency_ms"} <= set(body)


BAD_REQUESTS = [
    ("/api/classify", {"text": "", "labels": ["a"]}, "empty"),
    ("/api/classify", {"text": "合同", "labels": []}, "no labels"),
    ("/api/classify", {"text": "合同"}, "`labels` is missing"),
    ("/api/classify", {"text": "合同", "labels": [1, 2]}, "labels must be strings"),
    ("/api/classify", {"text": 42, "labels": "a"}, "`text` must be a string"),
    ("/api/classify", {"text": "长" * 20_001, "labels": "a"}, "SEQGPT_MAX_TEXT_CHARS"),
    ("/api/classify", {"text": "合同", "labels": [f"l{i}" for i in range(65)]}, "at most 64"),
    ("/api/classify", {"text": "合同", "labels": ["x" * 65]}, "at most 64"),
    ("/api/extract", {"text": "合同", "fields": "甲方", "threshold": 2}, "`threshold`"),
    ("/api/generate", {"prompt": "p", "max_new_tokens": 100_000}, "max_new_tokens"),
    ("/api/generate", {"prompt": ["p"]}, "`prompt` must be a string"),
    ("/api/classify", "not an object", "JSON object"),
]


@pytest.mark.parametrize(("route", "body", "message"), BAD_REQUESTS)
def test_bad_input_gets_422_with_a_message_and_the_next_request_succeeds(demo_server, route, body, message):
    with demo_server.client() as http:
        response = http.post(route, json=body)
        assert response.status_code == 422
        assert message in response.json()["error"]
        assert response.json()["request_id"] == response.headers["X-Request-ID"]
        good = http.post("/api/classify", json={"text": CONTRACT, "labels": "合同，新闻"})
    assert good.status_code == 200


def test_a_body_that_is_not_json_gets_422(demo_server):
    with demo_server.client() as http:
        response = http.post("/api/extract", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert "not valid JSON" in response.json()["error"]


def test_script_label_comes_back_as_literal_text(demo_server):
    label = "<script>alert(1)</script>"
    with demo_server.client() as http:
        response = http.post("/api/classify", json={"text": CONTRACT, "labels": [label, "合同"]})
    assert response.headers["content-type"].startswith("application/json")
    assert label in response.json()["scores"]
    assert label in response.text


def test_metrics_count_the_requests_just_made(demo_server):
    with demo_server.client() as http:
        before = http.get("/metrics").text
        for _ in range(3):
            http.post("/api/classify", json={"text": CONTRACT, "labels": "合同，新闻"})
        http.post("/api/classify", json={"text": "", "labels": "合同"})
        after = http.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    text = after.text
    assert counter(text, "classify", "api", "ok") - counter(before, "classify", "api", "ok") == 3
    assert counter(text, "classify", "api", "invalid") - counter(before, "classify", "api", "invalid") == 1
    for name in ("seqgpt_request_latency_seconds_bucket", "seqgpt_queue_depth", "seqgpt_model_load_seconds",
                 "seqgpt_gpu_memory_used_bytes"):
        assert name in text
    assert float(re.search(r"^seqgpt_model_load_seconds (\S+)$", text, re.MULTILINE).group(1)) > 0


def test_every_log_line_of_a_request_carries_the_request_id_it_returned(demo_server):
    with demo_server.client() as http:
        ok = http.post("/api/classify", json={"text": "第一行\n第二行", "labels": "合同，新闻"}).json()
        bad = http.post("/api/extract", json={"text": "合同", "fields": []}).json()
    log = demo_server.log_text()
    ok_lines = [line for line in log.splitlines() if ok["request_id"] in line]
    assert len(ok_lines) == 1
    line = ok_lines[0]
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", line)
    for part in ("task=classify", "chars=7", 'prefix="第一行\\n第二行"', "labels=2", "latency_ms=", "device=cpu",
                 "gpu_mem=-", "outcome=ok"):
        assert part in line
    bad_line = next(line for line in log.splitlines() if bad["request_id"] in line)
    assert "outcome=invalid" in bad_line and "no fields given" in bad_line


def test_unknown_api_route_is_404_not_the_ui(demo_server):
    with demo_server.client() as http:
        assert http.get("/api/nothing").status_code in (404, 405)


def test_api_docs_describe_the_request_bodies(demo_server):
    with demo_server.client() as http:
        spec = http.get("/api/openapi.json").json()
    body = spec["paths"]["/api/classify"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"text", "labels"} <= set(body["properties"])
