"""Real servers for the webui tests: ``python -m webui`` in a subprocess on a free port, logs to a file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120.0


@dataclass
class RunningServer:
    """A ``python -m webui`` process and what the tests need to talk to it."""

    url: str
    process: subprocess.Popen
    log_path: Path
    workspace: Path
    # The /health answers seen while waiting for start-up, in order.
    health_history: list[tuple[int, dict]] = field(default_factory=list)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60.0, **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(tmp: Path, model_dir: Path, extra_env: dict[str, str] | None = None,
                 wait_for: int = 200) -> RunningServer:
    """Start the server and poll /health until it answers ``wait_for`` (200 ready, 503 failed)."""
    port = free_port()
    workspace = tmp / "workspace"
    env = {
        **os.environ,
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "GRADIO_TEMP_DIR": str(tmp / "gradio"),
        "SEQGPT_HOST": "127.0.0.1",
        "SEQGPT_PORT": str(port),
        "SEQGPT_WORKSPACE": str(workspace),
        "SEQGPT_MODEL_DIR": str(model_dir),
        "SEQGPT_DEVICE": "cpu",
        "SEQGPT_STATUS_REFRESH_S": "1",
        **(extra_env or {}),
    }
    log_path = tmp / "server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "webui"], cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    server = RunningServer(f"http://127.0.0.1:{port}", process, log_path, workspace)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log_text()}")
        try:
            response = httpx.get(f"{server.url}/health", timeout=10.0)
        except httpx.TransportError:
            # Not listening yet. Poll closely: the demo model loads in about 50 ms once the server
            # listens, and the first answer must come before that to see /health say "loading".
            time.sleep(0.005)
            continue
        server.health_history.append((response.status_code, response.json()))
        if response.status_code == wait_for and (wait_for == 200 or response.json().get("status") == "error"):
            return server
        time.sleep(0.1)
    stop_server(server)
    raise RuntimeError(f"server not {wait_for} within {START_TIMEOUT_S} s:\n{server.log_text()}")


def stop_server(server: RunningServer) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
