"""When the model cannot load, the server stays up: /health says why, the API answers 503, the UI still loads."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from servers import REPO_ROOT, RunningServer, free_port, start_server, stop_server

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


def test_a_bad_device_setting_stops_the_start_before_anything_listens(tmp_path, demo_model_dir):
    """A bad setting is no reason to serve a half-started app: the process exits 2 at once, which
    Supervisor counts as a failed start, with the setting and its choices in the message."""
    port = free_port()
    env = {**os.environ, "SEQGPT_WORKSPACE": str(tmp_path), "SEQGPT_MODEL_DIR": str(demo_model_dir),
           "SEQGPT_HOST": "127.0.0.1", "SEQGPT_PORT": str(port), "SEQGPT_DEVICE": "gpu"}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "webui"], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "SEQGPT_DEVICE='gpu'" in done.stderr and "auto, cpu, cuda" in done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, "one line, once"
    assert time.monotonic() - started < 30, "refused before torch and gradio are imported"


def test_a_missing_model_is_a_permanent_503_that_says_which_python_installs_it(broken_server):
    with broken_server.client() as http:
        reply = http.post("/api/classify", json={"text": "合同", "labels": "合同，新闻"})
    assert reply.status_code == 503
    error = reply.json()["error"]
    assert "稍后再试" not in error and "try again" not in error and "Retry-After" not in reply.headers
    assert ".venv/bin/python scripts/download_model.py" in error and "restart" in error
