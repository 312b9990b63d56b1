"""The image's containers on their own: unhealthy without weights, and a stop that lets a request finish."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest
from image_tier import MODEL_DIR, Built, free_port, podman, run_container

pytestmark = pytest.mark.image

CLASSIFY = {"text": "小米集团今天发布了新款手机，售价3999元。", "labels": ["财经", "体育", "科技"]}
GENERATE_PROMPT = "输入: 今天天气很好\n分类: 好，坏\n输出:"
# A request sized to take about this long is caught mid-way by the stop, and still ends well
# inside the app's grace period (6 s) and supervisord's stopwaitsecs (8 s). Generation ignores the
# end token in that container, so every request runs to its length and the sizing holds.
IN_FLIGHT_S = 2.0


def test_healthcheck_reports_unhealthy_without_weights(image: Built):
    container = run_container(image.tag, "--network", "none")
    try:
        deadline = time.monotonic() + 120
        code, body = 0, {}
        while time.monotonic() < deadline and body.get("status") != "error":
            time.sleep(1)
            code, body = container.http("GET", "/health")
        proc = podman("healthcheck", "run", container.name, check=False)
    finally:
        container.remove()

    assert code == 503 and MODEL_DIR in json.dumps(body, ensure_ascii=False), body
    assert proc.returncode != 0
    assert "unhealthy" in proc.stdout + proc.stderr


def test_stop_takes_under_10_s_and_a_request_in_flight_still_gets_its_answer(image: Built, demo_weights: Path):
    port = free_port()
    container = run_container(
        image.tag, "-v", f"{demo_weights}:{MODEL_DIR}:ro", "-e", "SEQGPT_GENERATE_IGNORE_EOS=1", port=port
    )
    base = f"http://127.0.0.1:{port}"
    results: list[tuple[int, float, str]] = []

    def generate(tokens: int) -> httpx.Response:
        return httpx.post(
            f"{base}/api/generate", json={"prompt": GENERATE_PROMPT, "max_new_tokens": tokens}, timeout=60
        )

    def send(tokens: int) -> None:
        try:
            reply = generate(tokens)
            results.append((reply.status_code, time.monotonic(), reply.text[:200]))
        except httpx.HTTPError as exc:
            results.append((0, time.monotonic(), repr(exc)))

    try:
        container.wait_healthy()
        assert httpx.post(f"{base}/api/classify", json=CLASSIFY, timeout=30).status_code == 200
        started = time.monotonic()
        assert generate(64).status_code == 200
        per_token = (time.monotonic() - started) / 64
        tokens = max(8, min(256, round(IN_FLIGHT_S / per_token)))

        sender = threading.Thread(target=send, args=(tokens,))
        sender.start()
        time.sleep(min(0.3, tokens * per_token / 3))
        stop_sent = time.monotonic()
        podman("stop", container.name, timeout=60)
        stop_seconds = time.monotonic() - stop_sent
        sender.join(60)
    finally:
        container.remove()

    assert stop_seconds < 10
    assert results and results[0][1] > stop_sent, f"the request was not in flight when the stop began: {results}"
    code, _, text = results[0]
    # Finished, or, where a loaded machine made it outlast the grace period, told so: never cut off.
    assert code == 200 or (code == 503 and "正在重启" in text), results
