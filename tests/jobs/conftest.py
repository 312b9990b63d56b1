"""The jobs tier's appliance: real supervisord with the project's config, demo weights, a workspace of its own."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "supervisor" / "supervisord.conf"
PROGRAM = "seqgpt560m"
HEALTHY_WITHIN_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Appliance:
    workspace: Path
    port: int
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60.0)

    def ctl(self, *args: str) -> str:
        return subprocess.run([sys.executable, "-m", "supervisor.supervisorctl", "-c", str(CONF), *args],
                              env=self.env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              timeout=60).stdout

    def pid(self) -> int | None:
        match = re.search(rf"^{PROGRAM}\s+RUNNING\s+pid (\d+)", self.ctl("status", PROGRAM), re.M)
        return int(match.group(1)) if match else None

    def log(self) -> str:
        path = self.workspace / f"{PROGRAM}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_healthy(self, within: float = HEALTHY_WITHIN_S) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return
            time.sleep(0.3)
        pytest.fail(f"not healthy within {within} s:\n{self.log()[-3000:]}")


@pytest.fixture(scope="module")
def appliance(tmp_path_factory: pytest.TempPathFactory, demo_model_dir: Path) -> Iterator[Appliance]:
    workspace = tmp_path_factory.mktemp("jobs-ws")  # short: the control socket's path must fit
    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("SEQGPT_")}
    env = {
        **inherited,
        "SEQGPT_WORKSPACE": str(workspace), "SEQGPT_HOME": str(ROOT), "SEQGPT_PYTHON": sys.executable,
        "SEQGPT_MODEL_DIR": str(demo_model_dir), "SEQGPT_HOST": "127.0.0.1", "SEQGPT_PORT": str(port),
        "SEQGPT_DEVICE": "cpu", "SEQGPT_JOBS_MAX_QUEUED": "3",
        # One torch thread: the demo model's ops are tiny, and two OpenMP threads on a shared 2-core
        # machine wait on each other at every op (measured: 8 rows/s against 147 with one, at load 10).
        "SEQGPT_TORCH_THREADS": "1",
        # Random demo weights never end a field by themselves; a short cap keeps extraction rows quick.
        "SEQGPT_EXTRACT_MAX_NEW_TOKENS": "16",
        "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
    }
    out = (workspace / "supervisord.out").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "supervisor.supervisord", "-c", str(CONF)], env=env,
                            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    app = Appliance(workspace, port, env)
    try:
        app.wait_healthy()
        yield app
    finally:
        pid = app.pid()
        app.ctl("shutdown")
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        out.close()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
