"""Two Ray Serve replicas behind the web app, over real HTTP: same answers, spread load, survive a kill -9."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections import Counter

import httpx
import pytest
from servers import RunningServer

pytestmark = [pytest.mark.cluster, pytest.mark.service]

# A fixed set of requests, good and bad, whose answers must not depend on where the engine runs.
REQUESTS = [
    ("/api/classify", {"text": "央行宣布下调存款准备金率0.5个百分点", "labels": ["财经", "体育", "科技"]}),
    ("/api/classify", {"text": "The striker scored twice in the final minutes.", "labels": "sports, finance"}),
    ("/api/extract", {"text": "小米集团于2024年3月在北京发布了新款手机", "fields": ["公司名称", "时间", "地点"]}),
    ("/api/extract", {"text": "阿里巴巴的营收达到2000亿元", "fields": "公司名称，金额", "threshold": 0.2}),
    ("/api/generate", {"prompt": "输入: 今天天气很好\n分类: 正面，负面\n输出:", "max_new_tokens": 8}),
    ("/api/classify", {"text": "", "labels": ["财经"]}),
    ("/api/extract", {"text": "一段文字", "fields": []}),
    ("/api/generate", {"prompt": "输入: x\n输出:", "max_new_tokens": 100000}),
]
EXTRACT = ("/api/extract", {"text": "华为技术有限公司在深圳发布了新产品，售价5999元", "fields": "公司名称，地点，金额"})


def answer(server: RunningServer, path: str, body: dict) -> tuple[int, dict]:
    response = httpx.post(server.url + path, json=body, timeout=60.0)
    data = response.json()
    data.pop("request_id", None)
    data.pop("latency_ms", None)
    return response.status_code, data


def replicas(server: RunningServer) -> dict:
    return httpx.get(server.url + "/health", timeout=60.0).json().get("replicas", {})


def test_replicas_answer_exactly_as_the_single_process_engine(
    replicas_server: RunningServer, single_server: RunningServer
) -> None:
    for path, body in REQUESTS:
        expected = answer(single_server, path, body)
        assert answer(replicas_server, path, body) == expected, (path, body)
    statuses = [answer(replicas_server, path, body)[0] for path, body in REQUESTS]
    assert statuses == [200] * 5 + [422] * 3  # bad input keeps its 422 across the boundary


def test_health_reports_both_replicas_and_their_devices(replicas_server: RunningServer) -> None:
    health = httpx.get(replicas_server.url + "/health", timeout=60.0).json()
    assert health["status"] == "ok"
    assert health["replicas"]["running"] == 2
    assert health["replicas"]["target"] == 2
    assert health["replicas"]["states"] == {"RUNNING": 2}
    assert all(seen["device"] == "cpu" and seen["pid"] > 0 for seen in health["replicas"]["seen"])


def at_once(server: RunningServer, count: int) -> list[int]:
    """Send ``count`` extraction requests at the same time; their status codes."""
    codes: list[int] = []
    threads = [threading.Thread(target=lambda: codes.append(answer(server, *EXTRACT)[0])) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return codes


def test_concurrent_requests_are_spread_over_both_replicas(replicas_server: RunningServer) -> None:
    before = replica_answers(replicas_server)
    assert at_once(replicas_server, 16) == [200] * 16
    after = replica_answers(replicas_server)
    served = {replica: after[replica] - before.get(replica, 0) for replica in after}
    assert len([n for n in served.values() if n > 0]) == 2, served
    assert sum(served.values()) == 16
    # The request log names the replica that answered each call.
    assert len(set(re.findall(r"engine call=extract replica=(\w+)", replicas_server.log_text()))) >= 2


def replica_answers(server: RunningServer) -> dict[str, float]:
    text = httpx.get(server.url + "/metrics", timeout=60.0).text
    return {m[0]: float(m[1]) for m in re.findall(r'seqgpt_replica_answers_total\{replica="(\w+)"\} (\S+)', text)}


def test_killing_a_replica_mid_request_gives_200_or_503_and_it_comes_back(replicas_server: RunningServer) -> None:
    at_once(replicas_server, 4)  # both replicas answer, so both are in the list /health gives
    victim = replicas(replicas_server)["seen"][0]["pid"]
    known = set(replica_answers(replicas_server))
    outcomes: Counter[tuple[int, str | None]] = Counter()
    problems: list[str] = []
    stop = time.monotonic() + 12.0

    def client() -> None:
        with httpx.Client(base_url=replicas_server.url, timeout=60.0) as http:  # a hang fails the test
            while time.monotonic() < stop:
                response = http.post(EXTRACT[0], json=EXTRACT[1])
                outcomes[response.status_code, response.headers.get("retry-after")] += 1
                if response.status_code == 503:
                    body = response.json()
                    if not body.get("error") or not body.get("request_id") or not response.headers.get("retry-after"):
                        problems.append(response.text)
                elif response.status_code != 200:
                    problems.append(f"{response.status_code} {response.text}")

    clients = [threading.Thread(target=client) for _ in range(8)]
    for thread in clients:
        thread.start()
    time.sleep(3.0)
    os.kill(victim, signal.SIGKILL)
    for thread in clients:
        thread.join()
    assert not problems, problems
    assert sum(outcomes.values()) > 8 and outcomes[200, None] > 0, outcomes

    # Ray Serve notices the death and starts a new replica, which loads the weights.
    deadline = time.monotonic() + 120.0
    while time.monotonic() < deadline and replicas(replicas_server).get("states") != {"RUNNING": 2}:
        time.sleep(1.0)
    assert replicas(replicas_server).get("states") == {"RUNNING": 2}
    assert at_once(replicas_server, 12) == [200] * 12
    assert set(replica_answers(replicas_server)) - known, "the new replica answered none of the requests"
