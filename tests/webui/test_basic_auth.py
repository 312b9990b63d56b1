"""With SEQGPT_AUTH set, the UI, Gradio's routes, the API and /metrics refuse requests without the credentials."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest
from gradio_client import Client
from servers import RunningServer, start_server, stop_server

pytestmark = pytest.mark.service

USER, PASSWORD = "operator", "s3cret:with-colon"
GOOD = {"text": "客户要求退货", "labels": "投诉，咨询"}


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory, demo_model_dir) -> Iterator[RunningServer]:
    server = start_server(tmp_path_factory.mktemp("auth-server"), demo_model_dir,
                          {"SEQGPT_AUTH": f"{USER}:{PASSWORD}"})
    yield server
    stop_server(server)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/"), ("GET", "/config"), ("GET", "/gradio_api/info"), ("GET", "/metrics"),
     ("POST", "/api/classify"), ("POST", "/api/generate")],
)
def test_everything_but_health_refuses_without_credentials(auth_server, method, path):
    with auth_server.client() as http:
        response = http.request(method, path, json=GOOD)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert "SEQGPT_AUTH" in response.json()["error"]


def test_wrong_password_is_refused(auth_server):
    with auth_server.client(auth=(USER, "guess")) as http:
        assert http.post("/api/classify", json=GOOD).status_code == 401


def test_health_stays_open_for_probes(auth_server):
    with auth_server.client() as http:
        assert http.get("/health").status_code == 200


def test_ui_and_api_accept_the_credentials(auth_server):
    with auth_server.client(auth=(USER, PASSWORD)) as http:
        assert http.get("/").status_code == 200
        assert http.get("/metrics").status_code == 200
        response = http.post("/api/classify", json=GOOD)
    assert response.status_code == 200
    assert response.json()["label"] in ("投诉", "咨询")


def test_gradio_client_needs_the_credentials(auth_server, tmp_path):
    with pytest.raises((httpx.HTTPError, ValueError)):
        Client(auth_server.url, verbose=False, analytics_enabled=False, download_files=str(tmp_path))
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    client = Client(auth_server.url, verbose=False, analytics_enabled=False, download_files=str(tmp_path),
                    headers={"Authorization": f"Basic {token}"})
    label, _ = client.predict("客户要求退货", "投诉，咨询", api_name="/classify")
    assert label["label"] in ("投诉", "咨询")


def test_a_refusal_carries_a_request_id_and_a_wrong_password_is_logged(auth_server):
    with auth_server.client(auth=(USER, "guess")) as http:
        response = http.post("/api/classify", json=GOOD)
    assert response.status_code == 401
    request_id = response.json()["request_id"]
    assert request_id == response.headers["X-Request-ID"]
    [line] = [line for line in auth_server.log_text().splitlines() if request_id in line]
    assert "login refused" in line and "guess" not in line


def test_gradio_client_works_with_basic_auth_through_httpx_kwargs_as_the_readme_shows(auth_server, tmp_path):
    client = Client(auth_server.url, verbose=False, analytics_enabled=False, download_files=str(tmp_path),
                    httpx_kwargs={"auth": (USER, PASSWORD)})
    label, _ = client.predict("客户要求退货", "投诉，咨询", api_name="/classify")
    assert label["label"] in ("投诉", "咨询")
