"""The image's HEALTHCHECK asks the port the app listens on: the environment's, else the settings file's.

The script runs here as Docker would run it, against a small real HTTP server; the image is not built."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "healthcheck.sh"


class Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def app_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check(workspace: Path, **env: str) -> int:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SEQGPT_")}
    done = subprocess.run([str(SCRIPT)], env={**base, "SEQGPT_WORKSPACE": str(workspace),
                                              "SEQGPT_PYTHON": sys.executable, **env},
                          capture_output=True, text=True, timeout=60)
    return done.returncode


def test_the_port_comes_from_the_settings_file_when_the_environment_sets_none(tmp_path, app_port):
    (tmp_path / "seqgpt560m.env").write_text(f"# a comment\nSEQGPT_PORT={app_port}\n", encoding="utf-8")
    assert check(tmp_path) == 0
    (tmp_path / "seqgpt560m.env").write_text(f"SEQGPT_PORT={closed_port()}\n", encoding="utf-8")
    assert check(tmp_path) == 1, "Docker reads 1 as unhealthy"


def test_the_environment_wins_over_the_settings_file_as_it_does_for_the_app(tmp_path, app_port):
    (tmp_path / "seqgpt560m.env").write_text(f"SEQGPT_PORT={closed_port()}\n", encoding="utf-8")
    assert check(tmp_path, SEQGPT_PORT=str(app_port)) == 0


def test_the_dockerfile_healthcheck_runs_the_script():
    dockerfile = (ROOT / "Dockerfile").read_text()
    command = re.search(r"^HEALTHCHECK .*\\\n\s+CMD (.+)$", dockerfile, re.M)
    assert command and command.group(1) == '["/opt/seqgpt560m/scripts/healthcheck.sh"]'
    assert "WORKDIR /opt/seqgpt560m" in dockerfile and "COPY scripts/ scripts/" in dockerfile
