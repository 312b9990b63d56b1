"""Concurrency limits and shutdown: a full queue answers 503 busy at once; SIGTERM lets in-flight requests
finish, and one that cannot finish in the grace period is answered 503, not cut off."""

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
    # A grace period long enough for SLOW on a loaded machine: this server tests finishing, not cutting short.
    server = start_server(tmp_path_factory.mktemp("single-slot"), demo_model_dir,
                          {"SEQGPT_CONCURRENCY": "1", "SEQGPT_QUEUE_SIZE": "0", "SEQGPT_MAX_NEW_TOKENS": "1000",
                           "SEQGPT_GRACEFUL_SHUTDOWN_S": "120"})
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
    request = threading.Thread(target=lambda: results.append((*post(single_slot_server, SLOW), time.monotonic())))
    request.start()
    time.sleep(0.3)
    signalled = time.monotonic()
    single_slot_server.process.send_signal(signal.SIGTERM)
    request.join(timeout=150)
    assert results and results[0][0] == 200
    assert results[0][3] > signalled, "the request was not in flight when the stop began"
    assert single_slot_server.process.wait(timeout=30) in (0, -signal.SIGTERM)
    assert "Shutting down" in single_slot_server.log_text()


def test_requests_that_cannot_finish_in_the_grace_period_are_answered_503_not_cut_off(tmp_path, demo_model_dir):
    # One second of grace, one model slot, and six requests that each run to the window's end
    # (generation ignores the end token): the last of them cannot finish before the server stops.
    # Admission is off (SEQGPT_MAX_WAIT_S=0): its prior estimate, sized for the real model, would refuse
    # the later ones at once with its own Retry-After, and this test is about the stop's answer.
    server = start_server(tmp_path, demo_model_dir, {
        "SEQGPT_GRACEFUL_SHUTDOWN_S": "1", "SEQGPT_CONCURRENCY": "1", "SEQGPT_GENERATE_IGNORE_EOS": "1",
        "SEQGPT_MAX_NEW_TOKENS": "1000", "SEQGPT_MAX_WAIT_S": "0"})
    long_request = SLOW  # about a second each on a quiet machine: six take six seconds one after another
    try:
        replies: list[httpx.Response | BaseException] = []

        def send() -> None:
            try:
                replies.append(httpx.post(f"{server.url}/api/generate", json=long_request, timeout=120))
            except httpx.HTTPError as exc:
                replies.append(exc)

        senders = [threading.Thread(target=send) for _ in range(6)]
        for sender in senders:
            sender.start()
        time.sleep(0.5)
        assert len(replies) < 6, "the requests should still be running when the stop begins"
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        for sender in senders:
            sender.join(timeout=60)
        answered_after = time.monotonic() - signalled
        assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        stop_server(server)
    cut = [reply for reply in replies if not isinstance(reply, httpx.Response)]
    assert not cut, f"clients got no answer: {cut!r}"
    assert len(replies) == 6 and {reply.status_code for reply in replies} <= {200, 503}
    stopped = [reply for reply in replies if reply.status_code == 503]
    assert stopped, "with one slot and six long requests, some could not finish in one second"
    for reply in stopped:
        assert reply.headers["Retry-After"] == "10"
        body = reply.json()
        assert "正在重启" in body["error"] and "send it again" in body["error"]
        assert body["request_id"] == reply.headers["X-Request-ID"]
    assert answered_after < 5
    assert "outcome=stopping" in server.log_text()


def test_a_knowledge_base_addition_cut_by_a_stop_is_answered_503_and_gone_after_the_restart(tmp_path, demo_model_dir):
    # Thousands of passages: the embedding is still running when the stop's one second of grace ends.
    env = {"SEQGPT_GRACEFUL_SHUTDOWN_S": "1", "SEQGPT_KB_PASSAGE_CHARS": "40"}
    manual = "".join(f"第{n}条：电脑蓝屏时先检查内存条，再进入安全模式卸载最近安装的驱动。" for n in range(4000))
    server = start_server(tmp_path, demo_model_dir, env)
    replies: list[httpx.Response | BaseException] = []
    try:
        def send() -> None:
            try:
                replies.append(httpx.post(f"{server.url}/api/kb/documents",
                                          json={"documents": [{"id": "manual", "text": manual}]}, timeout=120))
            except httpx.HTTPError as exc:
                replies.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        deadline = time.monotonic() + 60
        while not any(i["passages_done"] for i in httpx.get(f"{server.url}/api/kb/ingestions").json()["ingestions"]):
            assert time.monotonic() < deadline and not replies, replies
            time.sleep(0.05)
        server.process.send_signal(signal.SIGTERM)
        sender.join(timeout=60)
        assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        stop_server(server)
    [reply] = replies
    assert isinstance(reply, httpx.Response), f"the client got no answer: {reply!r}"
    assert reply.status_code == 503 and reply.headers["Retry-After"] == "10", reply.text
    assert "正在重启" in reply.json()["error"] and reply.json()["request_id"] == reply.headers["X-Request-ID"]
    again = start_server(tmp_path, demo_model_dir, env)
    try:
        assert httpx.get(f"{again.url}/api/kb/documents").json()["documents"] == [], "nothing half-added is kept"
    finally:
        stop_server(again)
