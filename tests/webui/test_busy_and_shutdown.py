"""Concurrency limits and shutdown: a full queue answers 503 busy at once; SIGTERM lets in-flight requests finish."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from servers import RunningServer, start_server, stop_server

pytestmark = pytest.mark.service

# About a second on demo weights: long enough to still be running when the next requests arrive.
SLOW = {"prompt": "输入: 快递三天没有更新\n分类: 投诉，咨询\n输出: [GEN]", "max_new_tokens": 1000}


@pytest.fixture(scope="module")
def single_slot_server(tmp_path_factory: pytest.TempPathFactory, demo_model_dir) -> Iterator[RunningServer]:
    server = start_server(tmp_path_factory.mktemp("single-slot"), demo_model_dir,
                          {"SEQGPT_CONCURRENCY": "1", "SEQGPT_QUEUE_SIZE": "0", "SEQGPT_MAX_NEW_TOKENS": "1000"})
    yield server
    stop_server(server)


def post(server: RunningServer, body: dict) -> tuple[int, float, dict]:
    started = time.perf_counter()
    response = httpx.post(f"{server.url}/api/generate", json=body, timeout=120)
    return response.status_code, time.perf_counter() - started, response.json()


def test_full_queue_answers_503_busy_quickly_and_the_service_recovers(single_slot_server):
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(post, single_slot_server, SLOW)
        time.sleep(0.1)
        rejected = [pool.submit(post, single_slot_server, SLOW) for _ in range(3)]
        busy = [future.result() for future in rejected]
        assert first.result()[0] == 200
    for status, seconds, body in busy:
        assert status == 503
        assert "服务繁忙" in body["error"] and "busy:" in body["error"] and "try again" in body["error"]
        assert seconds < 2.0
    with single_slot_server.client() as http:
        metrics = http.get("/metrics").text
        assert 'outcome="busy"' in metrics
        assert http.post("/api/generate", json={**SLOW, "max_new_tokens": 2}).status_code == 200


def test_sigterm_lets_the_request_in_flight_finish(single_slot_server):
    results: list[tuple[int, float, dict]] = []
    request = threading.Thread(target=lambda: results.append(post(single_slot_server, SLOW)))
    request.start()
    time.sleep(0.5)
    single_slot_server.process.send_signal(signal.SIGTERM)
    request.join(timeout=60)
    assert results and results[0][0] == 200
    assert single_slot_server.process.wait(timeout=30) in (0, -signal.SIGTERM)
    assert "Shutting down" in single_slot_server.log_text()
