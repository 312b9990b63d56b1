"""Real supervisord with the project's config keeps the app up, restarts it, and stops it gracefully.

One supervisord serves the module (starting the app takes a while); every test begins by
waiting for a healthy app and leaves one behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.service

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "supervisor" / "supervisord.conf"
PROGRAM = "seqgpt560m"
# From process start to /health 200 on demo weights on a 2-core machine, where importing torch
# and gradio dominates (about 15 s when warm); the first start of a session may read cold caches.
HEALTHY_WITHIN_S = 120
# What an operator is promised after a crash: Supervisor restarts the app at once, and it serves again.
RESTARTED_WITHIN_S = 60
# How long each request caught by the SIGTERM test should take.
IN_FLIGHT_S = 1.5
GENERATE_PROMPT = "输入: 小米集团今天发布了新款手机，售价3999元。\n分类: 财经，体育，科技\n输出: "


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Appliance:
    workspace: Path
    port: int
    env: dict[str, str]
    supervisord: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.workspace / f"{PROGRAM}.log"

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(CONF), *args],
            env=self.env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
        )

    def state(self) -> tuple[str, int | None]:
        """The program's Supervisor state and, while it runs, its pid."""
        out = self.ctl("status", PROGRAM).stdout
        match = re.search(rf"^{PROGRAM}\s+(\w+)(?:\s+pid (\d+))?", out, re.M)
        assert match, f"unexpected supervisorctl output: {out!r}"
        return match.group(1), int(match.group(2)) if match.group(2) else None

    def health(self) -> httpx.Response | None:
        try:
            return httpx.get(f"{self.base_url}/health", timeout=5)
        except httpx.TransportError:
            return None

    def wait_healthy(self, within: float = HEALTHY_WITHIN_S) -> float:
        """Wait for RUNNING and /health 200; return the seconds it took, fail past ``within``."""
        started = time.monotonic()
        last = None
        while time.monotonic() - started < within:
            state, _ = self.state()
            assert state not in ("FATAL", "BACKOFF"), f"{PROGRAM} is {state}:\n{self.tail()}"
            last = self.health()
            if state == "RUNNING" and last is not None and last.status_code == 200:
                return time.monotonic() - started
            time.sleep(0.5)
        body = None if last is None else (last.status_code, last.text[:300])
        pytest.fail(f"not healthy within {within}s (last /health: {body}):\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        if not self.log_file.exists():
            return "(no log file yet)"
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def supervisord_log(self) -> str:
        return (self.workspace / "supervisord.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def appliance(tmp_path_factory: pytest.TempPathFactory, demo_model_dir: Path) -> Iterator[Appliance]:
    # Short folder names: the control socket's path must fit in a unix socket address.
    workspace = tmp_path_factory.mktemp("ws")
    port = free_port()
    # Only the settings below: a SEQGPT_AUTH or SEQGPT_DEVICE from the caller's shell must not leak in.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("SEQGPT_")}
    env = {
        **inherited,
        # The three variables the config expands, exactly as scripts/start.sh and the image set them.
        "SEQGPT_WORKSPACE": str(workspace),
        "SEQGPT_HOME": str(ROOT),
        "SEQGPT_PYTHON": sys.executable,
        "SEQGPT_MODEL_DIR": str(demo_model_dir),
        "SEQGPT_HOST": "127.0.0.1",
        "SEQGPT_PORT": str(port),
        "SEQGPT_DEVICE": "cpu",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
    }
    out = (workspace / "supervisord.out").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "supervisor.supervisord", "-c", str(CONF)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    app = Appliance(workspace, port, env, proc)
    try:
        deadline = time.monotonic() + 30
        while app.ctl("pid").returncode != 0:
            assert proc.poll() is None, (workspace / "supervisord.out").read_text()
            assert time.monotonic() < deadline, "supervisord did not open its control socket"
            time.sleep(0.2)
        yield app
    finally:
        app_pid = None
        if proc.poll() is None:
            pid_reply = app.ctl("pid", PROGRAM).stdout.strip()
            app_pid = int(pid_reply) if pid_reply.isdigit() and pid_reply != "0" else None
            app.ctl("shutdown")
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        out.close()
        if app_pid is not None:
            # supervisord stops its child before it exits; this only guards against a leak.
            with contextlib.suppress(ProcessLookupError):
                os.kill(app_pid, signal.SIGKILL)


def test_program_reaches_running_and_health_answers_200(appliance: Appliance) -> None:
    appliance.wait_healthy()

    state, pid = appliance.state()
    reply = appliance.health()
    assert state == "RUNNING" and pid is not None
    assert reply is not None and reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/json")
    # Control is only through the owner-only unix socket.
    sock = appliance.workspace / "supervisor.sock"
    assert sock.is_socket()
    assert sock.stat().st_mode & 0o777 == 0o700


def test_supervisorctl_restart_gives_a_new_pid_and_health_returns(appliance: Appliance) -> None:
    appliance.wait_healthy()
    _, old_pid = appliance.state()

    result = appliance.ctl("restart", PROGRAM)

    assert result.returncode == 0, result.stdout + result.stderr
    appliance.wait_healthy()
    state, new_pid = appliance.state()
    assert state == "RUNNING"
    assert new_pid is not None and new_pid != old_pid


def test_killed_app_is_restarted_and_healthy_again_within_the_bound(appliance: Appliance) -> None:
    appliance.wait_healthy()
    _, old_pid = appliance.state()
    assert old_pid is not None

    os.kill(old_pid, signal.SIGKILL)
    started = time.monotonic()
    while appliance.state()[1] in (old_pid, None) and time.monotonic() - started < 30:
        time.sleep(0.2)
    took = time.monotonic() - started + appliance.wait_healthy(within=RESTARTED_WITHIN_S)
    print(f"healthy again {took:.1f} s after kill -9")

    _, new_pid = appliance.state()
    assert new_pid not in (None, old_pid)
    assert took < RESTARTED_WITHIN_S
    assert f"exited: {PROGRAM} (terminated by SIGKILL" in appliance.supervisord_log()


def post_generate(appliance: Appliance, max_new_tokens: int) -> httpx.Response:
    return httpx.post(
        f"{appliance.base_url}/api/generate",
        json={"prompt": GENERATE_PROMPT, "max_new_tokens": max_new_tokens},
        timeout=60,
    )


def test_sigterm_lets_requests_in_flight_complete(appliance: Appliance) -> None:
    appliance.wait_healthy()
    # Size the requests to last about IN_FLIGHT_S each: long enough to be caught mid-way,
    # short enough that both end well inside stopwaitsecs (8 s) even when run side by side.
    # The fastest of two timings: one slowed by a first use or a busy moment would size the
    # requests too short to be in flight when the stop comes.
    timings = []
    for _ in range(2):
        started = time.monotonic()
        warm = post_generate(appliance, 64)
        timings.append((time.monotonic() - started) / 64)
        assert warm.status_code == 200, warm.text
    per_token = min(timings)
    tokens = max(8, min(256, round(IN_FLIGHT_S / per_token)))
    results: list[tuple[int, float, str]] = []

    def send() -> None:
        try:
            reply = post_generate(appliance, tokens)
            results.append((reply.status_code, time.monotonic(), reply.text[:200]))
        except httpx.HTTPError as exc:
            results.append((0, time.monotonic(), repr(exc)))

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(min(0.3, tokens * per_token / 3))
    term_sent = time.monotonic()
    stop = appliance.ctl("stop", PROGRAM)  # supervisord sends the configured stopsignal, TERM
    for thread in threads:
        thread.join(timeout=60)

    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert [code for code, _, _ in results] == [200, 200], results
    assert all(done > term_sent for _, done, _ in results), "a request was not in flight at SIGTERM"
    last_stop = [line for line in appliance.supervisord_log().splitlines() if f"stopped: {PROGRAM}" in line][-1]
    assert "SIGKILL" not in last_stop, f"the app had to be killed: {last_stop}"

    assert appliance.ctl("start", PROGRAM).returncode == 0
    appliance.wait_healthy()


def test_log_file_at_the_workspace_path_holds_each_request_id(appliance: Appliance) -> None:
    appliance.wait_healthy()
    replies = [
        httpx.post(
            f"{appliance.base_url}/api/classify",
            json={"text": "温格的球队2比1战胜曼联。", "labels": ["体育", "财经"]},
            timeout=60,
        ),
        httpx.post(
            f"{appliance.base_url}/api/extract",
            json={"text": "小米集团今天发布了新款手机，售价3999元。", "fields": "公司名称，金额"},
            timeout=60,
        ),
        post_generate(appliance, 8),
    ]
    assert [r.status_code for r in replies] == [200, 200, 200], [r.text for r in replies]
    ids = [r.json()["request_id"] for r in replies]
    assert len(set(ids)) == 3 and all(ids)

    # Supervisor writes the app's stdout to the file; give the last line a moment to land.
    deadline = time.monotonic() + 10
    while not all(i in appliance.log_file.read_text(errors="replace") for i in ids):
        assert time.monotonic() < deadline, f"request ids {ids} not all in the log:\n{appliance.tail()}"
        time.sleep(0.2)
    lines = appliance.log_file.read_text(errors="replace").splitlines()
    for request_id, task in zip(ids, ("classify", "extract", "generate"), strict=True):
        assert any(request_id in line and task in line for line in lines), (request_id, task)
