"""When the model cannot load, the server stays up: /health says why, the API answers 503, the UI still loads."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from servers import RunningServer, start_server, stop_server

pytestmark = pytest.mark.service


@pytest.fixture(scope="module")
def broken_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("broken-server")
    server = start_server(tmp, tmp / "no-model-here", wait_for=503)
    yield server
    stop_server(server)


def test_health_is_503_with_the_load_error(broken_server):
    with broken_server.client() as http:
        response = http.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert "no-model-here" in body["reason"]


def test_api_answers_503_with_the_reason_and_keeps_validating(broken_server):
    with broken_server.client() as http:
        not_ready = http.post("/api/classify", json={"text": "合同", "labels": "合同，新闻"})
        invalid = http.post("/api/classify", json={"text": "", "labels": "合同"})
    assert not_ready.status_code == 503
    assert "no-model-here" in not_ready.json()["error"]
    assert invalid.status_code == 422


def test_ui_page_still_loads(broken_server):
    with broken_server.client() as http:
        response = http.get("/")
    assert response.status_code == 200
    assert "<html" in response.text.lower()


@pytest.fixture(scope="module")
def misconfigured_server(tmp_path_factory: pytest.TempPathFactory, demo_model_dir) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("misconfigured-server")
    server = start_server(tmp, demo_model_dir, extra_env={"SEQGPT_DEVICE": "gpu"}, wait_for=503)
    yield server
    stop_server(server)


def test_a_bad_device_setting_is_a_settings_error_on_health_and_503_on_the_api(misconfigured_server):
    with misconfigured_server.client() as http:
        health = http.get("/health")
        answer = http.post("/api/classify", json={"text": "合同", "labels": "合同，新闻"})
    assert health.status_code == 503
    assert health.json()["status"] == "error"
    assert "SEQGPT_DEVICE='gpu'" in health.json()["reason"] and "auto, cpu, cuda" in health.json()["reason"]
    assert answer.status_code == 503, "the request is fine; the setting is what is wrong"
    assert "SEQGPT_DEVICE" in answer.json()["error"] and answer.json()["request_id"]
    assert "SEQGPT_DEVICE" in misconfigured_server.log_text()
