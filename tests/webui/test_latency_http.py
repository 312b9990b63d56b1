"""Latency under load through real HTTP: too long a wait is a 503 with Retry-After at once; a client that
disconnects has its queued work dropped."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from servers import RunningServer, start_server, stop_server

pytestmark = pytest.mark.service

# A 5,000-character text of 6 fields, each answer exactly 32 tokens: several pieces of seconds each
# on demo weights, so that the requests behind it wait.
LONG = {"text": "甲方北京星河科技有限公司与乙方上海云帆贸易有限公司于2024年3月5日签订采购合同。" * 120,
        "fields": ["甲方", "乙方", "金额", "日期", "合同编号", "地址"]}


@pytest.fixture(scope="module")
def busy_server(tmp_path_factory: pytest.TempPathFactory, demo_model_dir) -> Iterator[RunningServer]:
    server = start_server(tmp_path_factory.mktemp("latency"), demo_model_dir,
                          {"SEQGPT_MAX_WAIT_S": "1", "SEQGPT_EXTRACT_EXACT_TOKENS": "32"})
    yield server
    stop_server(server)


def send(server: RunningServer, out: list, timeout: float = 300) -> None:
    out.append(httpx.post(f"{server.url}/api/extract", json=LONG, timeout=timeout))


def test_a_request_over_the_wait_limit_gets_503_with_retry_after_at_once_without_running(busy_server):
    warm: list = []
    send(busy_server, warm)  # alone: admitted, and teaches the engine how long such work takes
    assert warm[0].status_code == 200 and warm[0].json()["pieces"] > 1
    first: list = []
    running = threading.Thread(target=send, args=(busy_server, first))
    running.start()
    time.sleep(0.5)
    started = time.perf_counter()
    refused = httpx.post(f"{busy_server.url}/api/extract", json=LONG, timeout=60)
    seconds = time.perf_counter() - started
    running.join(timeout=300)
    assert first and first[0].status_code == 200
    assert refused.status_code == 503, refused.text
    assert seconds < 2.0, "refused at once, not after waiting"
    assert int(refused.headers["Retry-After"]) >= 1
    body = refused.json()
    assert body["request_id"] and body["request_id"] in body["error"]
    assert "服务繁忙" in body["error"] and "try again in" in body["error"]
    with busy_server.client() as http:
        metrics = http.get("/metrics").text
    assert re.search(r'seqgpt_requests_total\{outcome="shed",source="api",task="extract"\} 1\.0', metrics)
    lines = [line for line in busy_server.log_text().splitlines() if "outcome=shed" in line]
    assert len(lines) == 1 and body["request_id"] in lines[0]


def test_a_client_that_disconnects_has_its_work_dropped(tmp_path, demo_model_dir):
    # No wait limit: the second request is queued behind the first's pieces, not refused.
    server = start_server(tmp_path, demo_model_dir, {"SEQGPT_MAX_WAIT_S": "0", "SEQGPT_EXTRACT_EXACT_TOKENS": "32"})
    try:
        first: list = []
        running = threading.Thread(target=send, args=(server, first))
        running.start()
        time.sleep(0.5)
        with pytest.raises(httpx.ReadTimeout):  # a long request queued behind the first, then its client goes
            httpx.post(f"{server.url}/api/extract", json=LONG, timeout=1.5)
        running.join(timeout=300)
        assert first and first[0].status_code == 200
        log = server.log_text()
        # Dropped from the queue by the worker, or, where preparing the request outlasted the client,
        # never queued at all: either way none of its work ran.
        dropped = re.search(r"dropped (\d+) queued jobs whose requests were abandoned", log)
        never_queued = "the client went away before the request reached the model; nothing was run" in log
        assert (dropped and int(dropped.group(1)) >= 1) or never_queued, log[-3000:]
        assert re.search(r"task=extract source=api .* outcome=abandoned", log)
        with server.client() as http:
            assert 'outcome="abandoned"' in http.get("/metrics").text
    finally:
        stop_server(server)
