"""What a new user met over HTTP and the Gradio API: the docs run as printed, wrong methods get 405,
evaluation reads what the batch tab reads and answers in both languages, clear wording, complete logs."""

from __future__ import annotations

import re

import httpx
import pytest
from gradio_client import Client, handle_file

pytestmark = pytest.mark.service

TICKETS_GB18030 = "text,label\n快递三天没到,投诉\n能开发票吗,咨询\n".encode("gb18030")
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def client(demo_server, tmp_path_factory) -> Client:
    return Client(demo_server.url, verbose=False, analytics_enabled=False,
                  download_files=str(tmp_path_factory.mktemp("client-downloads")))


def log_lines(demo_server, request_id: str) -> list[str]:
    return [line for line in demo_server.log_text().splitlines() if request_id in line]


# ---- 5: /api/docs -------------------------------------------------------------------------------

def test_docs_examples_use_the_address_the_page_was_asked_on(demo_server):
    with demo_server.client() as http:
        page = http.get("/api/docs").text
    port = demo_server.url.rsplit(":", 1)[1]
    assert "localhost:7860" not in page
    assert f"curl -s {demo_server.url}/api/classify -H" in page
    assert f"127.0.0.1:{port}/health" in page


def test_docs_show_evaluate_as_a_multipart_upload_and_openapi_has_its_form(demo_server):
    with demo_server.client() as http:
        page = http.get("/api/docs").text
        spec = http.get("/api/openapi.json").json()
    form = spec["paths"]["/api/evaluate"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert set(form["required"]) == {"file", "task"} and form["properties"]["file"]["format"] == "binary"
    example = re.search(r"<pre>(curl -s -F [^<]*/api/evaluate)</pre>", page)
    assert example, "the evaluate example uploads a file"
    assert "-F file=@" in example.group(1) and "-F task=classify" in example.group(1)


# ---- 6: wrong methods ---------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path", "allow"), [
    ("GET", "/api/evaluate", "POST"),
    ("GET", "/api/classify", "POST"),
    ("POST", "/health", "GET, HEAD"),
    ("POST", "/metrics", "GET, HEAD"),
    ("DELETE", "/api/docs", "GET"),
    ("PATCH", "/api/jobs", "GET, POST"),
    ("POST", "/api/jobs/j-1", "GET, DELETE"),
    ("GET", "/api/kb/search", "POST"),
    ("GET", "/api/kb/documents/a/b", "DELETE"),
    ("PUT", "/api/kb/documents", "GET, POST"),
    ("GET", "/api/summarize", "POST"),
    ("PUT", "/api/requests", "GET, DELETE"),
    ("DELETE", "/api/requests/r-1", "GET"),
    ("GET", "/api/requests/r-1/feedback", "POST"),
    ("POST", "/api/feedback/export", "GET"),
])
def test_a_route_called_with_the_wrong_method_answers_405_in_the_api_shape(demo_server, method, path, allow):
    with demo_server.client() as http:
        reply = http.request(method, path)
    assert reply.status_code == 405, reply.text
    body = reply.json()
    assert set(body) == {"error", "request_id"} and body["request_id"] == reply.headers["X-Request-ID"]
    assert "方法不允许" in body["error"] and path in body["error"]
    assert reply.headers["Allow"] == allow


def test_a_ui_route_called_with_the_wrong_method_says_which_methods_it_takes(demo_server):
    with demo_server.client() as http:
        reply = http.post("/config")
    assert reply.status_code == 405, reply.text
    assert reply.headers["Allow"] == "GET" and "use GET" in reply.json()["error"]


def test_health_and_metrics_answer_head_as_probes_send_it(demo_server):
    with demo_server.client() as http:
        for path in ("/health", "/metrics"):
            reply = http.head(path)
            assert reply.status_code == 200 and reply.content == b"", path


# Every route the docs describe; a room's new route belongs in the 404's list without being added by hand.
DOCUMENTED_ROUTES = (
    "/api/classify", "/api/extract", "/api/generate", "/api/evaluate", "/health", "/metrics", "/api/docs",
    "/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/results", "/api/kb/documents",
    "/api/kb/documents/{doc_id}", "/api/kb/ingestions", "/api/kb/search", "/api/kb/ask", "/api/summarize",
    "/api/requests", "/api/requests/{request_id}", "/api/requests/{request_id}/feedback", "/api/feedback/export",
)


def test_the_404_message_lists_every_route(demo_server):
    with demo_server.client() as http:
        reply = http.get("/api/nothing-here")
    assert reply.status_code == 404
    listing = reply.json()["error"]
    for route in DOCUMENTED_ROUTES:
        assert re.search(re.escape(route) + r"(,|;|$)", listing), route
    assert "/api/{path:path}" not in listing


# ---- 7: evaluation reads GB18030 and speaks both languages --------------------------------------

def test_evaluation_accepts_a_gb18030_csv_as_the_batch_tab_does(demo_server):
    with httpx.Client(base_url=demo_server.url, timeout=300.0) as http:
        reply = http.post("/api/evaluate", files={"file": ("tickets.csv", TICKETS_GB18030)},
                          data={"task": "classify"})
    assert reply.status_code == 200, reply.text
    assert [p["text"] for p in reply.json()["predictions"]] == ["快递三天没到", "能开发票吗"]


@pytest.mark.parametrize(("files", "data"), [
    ({"file": ("bin.csv", bytes(range(256)) * 4)}, {"task": "classify"}),
    ({"file": ("t.txt", b"text,label\n")}, {"task": "classify"}),
    ({"file": ("t.csv", b"text,label\n,x\n")}, {"task": "classify"}),
    (None, {"task": "classify"}),
    ({"file": ("t.csv", TICKETS_GB18030)}, {"task": "summarise"}),
])
def test_evaluation_errors_are_bilingual_with_a_request_id(demo_server, files, data):
    with demo_server.client() as http:
        reply = (http.post("/api/evaluate", files=files, data=data) if files
                 else http.post("/api/evaluate", data=data, files={"map": ("m.txt", b"")}))
    assert reply.status_code == 422, reply.text
    body = reply.json()
    assert CJK.search(body["error"]) and re.search(r"[a-z]{4,} [a-z]{2,}", body["error"]), body["error"]
    assert body["request_id"] == reply.headers["X-Request-ID"]


def test_the_evaluate_tab_refuses_a_binary_file_in_both_languages(client, tmp_path):
    binary = tmp_path / "binary.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    summary, *outputs = client.predict(handle_file(str(binary)), "classify", "", api_name="/evaluate")
    assert "文件编码无法识别 · the file is neither UTF-8 nor GB18030" in summary and "Request" in summary


# ---- 11: wording --------------------------------------------------------------------------------

def test_empty_prompt_and_empty_fields_are_worded_for_what_is_missing(demo_server):
    with demo_server.client() as http:
        prompt = http.post("/api/generate", json={"prompt": " "}).json()["error"]
        fields = http.post("/api/extract", json={"text": "合同", "fields": " "}).json()["error"]
    assert "prompt" in prompt and "analysed" not in prompt
    assert "财经" not in fields and "公司名称" in fields


# ---- 13: logs -----------------------------------------------------------------------------------

def test_a_refused_ui_request_logs_the_labels_it_named(client, demo_server):
    with pytest.raises(Exception, match="过长"):
        client.predict("长" * 200_000, "财经，体育", api_name="/classify")
    line = next(line for line in reversed(demo_server.log_text().splitlines())
                if "task=classify source=ui chars=200000" in line)
    assert "labels=2" in line and "outcome=invalid" in line


def test_ui_batch_and_ui_evaluation_each_log_one_summary_line(client, demo_server, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("快递没到\n发票怎么开\n服务很好\n", encoding="utf-8")
    _table, _files, summary = client.predict(handle_file(str(texts)), "classify", "投诉，咨询，表扬", 0.0, False,
                                             api_name="/batch")
    request_id = re.search(r"`([0-9a-f]{32})`", summary).group(1)
    summaries = [line for line in log_lines(demo_server, request_id) if "task=batch" in line]
    assert len(summaries) == 1 and "source=ui" in summaries[0] and "rows=3" in summaries[0], summaries
    assert "labels=3" in summaries[0] and "outcome=ok" in summaries[0]

    gold = tmp_path / "gold.csv"
    gold.write_text("text,label\n快递没到,投诉\n发票怎么开,咨询\n", encoding="utf-8")
    details, *_ = client.predict(handle_file(str(gold)), "classify", "", api_name="/evaluate")
    request_id = re.search(r"`([0-9a-f]{32})`", details).group(1)
    summaries = [line for line in log_lines(demo_server, request_id) if "task=evaluate source=ui" in line]
    assert len(summaries) == 1 and "rows=2" in summaries[0] and "labels=2" in summaries[0], summaries
