"""A plain machine run with scripts/start.sh: what it started is found again from any shell.

The scripts run for real in a copy of the checkout (start.sh records the running copy inside the
checkout, so the tests never touch the one they run from), with real supervisord and real HTTP.
Every command is run with no SEQGPT_* variable in its environment, as in a new shell.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from model_loader.backends.bench import VARIABLES as BENCH_VARIABLES

pytestmark = pytest.mark.service

ROOT = Path(__file__).resolve().parents[2]
HEALTHY_WITHIN_S = 120
LEFT_BEHIND = (".venv", ".git", "models", ".bench", "logs", "test-output", ".seqgpt-instance", "__pycache__",
               ".pytest_cache", ".ruff_cache")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def new_shell_env(**settings: str) -> dict[str, str]:
    """The environment of a new shell: no SEQGPT_* setting, except those named here."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEQGPT_")}
    return {**env, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", **settings}


@dataclass
class Started:
    checkout: Path
    workspace: Path
    port: int
    output: str

    def run(self, command: str, timeout: float = 120, **settings: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(shlex.split(command), cwd=self.checkout, env=new_shell_env(**settings),
                              capture_output=True, text=True, timeout=timeout)

    def printed(self, label: str) -> str:
        """The command start.sh printed after ``label``."""
        match = re.search(rf"^  {label} +(.+)$", self.output, re.MULTILINE)
        assert match, f"start.sh printed no {label!r} line:\n{self.output}"
        return match.group(1)

    def health(self, port: int | None = None) -> int | None:
        try:
            return httpx.get(f"http://127.0.0.1:{port or self.port}/health", timeout=5).status_code
        except httpx.TransportError:
            return None

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + HEALTHY_WITHIN_S
        while self.health() != 200:
            assert time.monotonic() < deadline, (self.workspace / "seqgpt560m.log").read_text(errors="replace")[-3000:]
            time.sleep(1)

    def supervisord_pid(self) -> int | None:
        pidfile = self.workspace / "supervisord.pid"
        return int(pidfile.read_text()) if pidfile.is_file() else None


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory, demo_model_dir: Path) -> Iterator[Started]:
    checkout = tmp_path_factory.mktemp("clone") / "seqgpt"
    shutil.copytree(ROOT, checkout, ignore=shutil.ignore_patterns(*LEFT_BEHIND))
    (checkout / "logs").mkdir()
    (checkout / ".venv").symlink_to((ROOT / ".venv").resolve())
    # Short folder names: the control socket's path must fit in a unix socket address.
    workspace = tmp_path_factory.mktemp("ws")
    port = free_port()
    done = subprocess.run(
        ["scripts/start.sh"], cwd=checkout, capture_output=True, text=True, timeout=600,
        env=new_shell_env(SEQGPT_WORKSPACE=str(workspace), SEQGPT_PORT=str(port), SEQGPT_HOST="127.0.0.1",
                          SEQGPT_MODEL_DIR=str(demo_model_dir), SEQGPT_DEVICE="cpu", SEQGPT_START_TIMEOUT="300",
                          SEQGPT_EXTRACT_EXACT_TOKENS="4"),
    )
    app = Started(checkout, workspace, port, done.stdout + done.stderr)
    try:
        assert done.returncode == 0, app.output[-4000:]
        yield app
    finally:
        subprocess.run(["scripts/stop.sh"], cwd=checkout, env=new_shell_env(), capture_output=True, timeout=60)


def test_start_serves_on_the_given_port_and_writes_the_settings_into_the_workspace_file(started: Started) -> None:
    assert started.health() == 200
    assert started.printed("open the UI") == f"http://127.0.0.1:{started.port}"
    settings = (started.workspace / "seqgpt560m.env").read_text(encoding="utf-8")
    assert f"\nSEQGPT_PORT={started.port}\n" in settings
    assert "\nSEQGPT_DEVICE=cpu\n" in settings
    assert "# SEQGPT_MAX_LABELS=64" in settings, "the other settings stay as commented defaults"


def test_a_second_start_with_another_port_reports_the_running_copy_and_starts_nothing(started: Started) -> None:
    supervisord = started.supervisord_pid()
    other = free_port()
    done = started.run("scripts/start.sh", SEQGPT_PORT=str(other))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "already running" in done.stdout and str(started.workspace) in done.stdout
    assert f"http://127.0.0.1:{started.port}" in done.stdout
    assert started.health(other) is None, "nothing serves on the other port"
    assert started.supervisord_pid() == supervisord
    assert f"SEQGPT_PORT={started.port}\n" in (started.workspace / "seqgpt560m.env").read_text(encoding="utf-8")


def test_the_printed_status_command_works_from_a_new_shell(started: Started) -> None:
    done = started.run(started.printed("status"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"http://127.0.0.1:{started.port}" in done.stdout and "RUNNING" in done.stdout


def test_an_edited_settings_file_applies_on_the_printed_restart_command(started: Started) -> None:
    labels = {"text": "小米集团今天发布了新款手机。", "labels": ["财经", "体育", "科技"]}
    url = f"http://127.0.0.1:{started.port}/api/classify"
    assert httpx.post(url, json=labels, timeout=60).status_code == 200
    settings_file = started.workspace / "seqgpt560m.env"
    assert started.printed("settings").startswith(str(settings_file))
    original = settings_file.read_text(encoding="utf-8")
    settings_file.write_text(original.replace("# SEQGPT_MAX_LABELS=64", "SEQGPT_MAX_LABELS=2"), encoding="utf-8")
    try:
        restart = started.printed("restart")
        assert restart == "scripts/supervisorctl restart seqgpt560m"
        done = started.run(restart)
        assert done.returncode == 0 and "started" in done.stdout, done.stdout + done.stderr
        started.wait_healthy()
        reply = httpx.post(url, json=labels, timeout=60)
        assert reply.status_code == 422 and "SEQGPT_MAX_LABELS" in reply.json()["error"]
        assert httpx.post(url, json={**labels, "labels": ["财经", "体育"]}, timeout=60).status_code == 200
    finally:
        settings_file.write_text(original, encoding="utf-8")


def test_a_benchmark_switch_reaches_the_app_through_restarts_but_never_the_settings_file(started: Started) -> None:
    # Runs after the restart test: supervisord, not the file, carries the switch to each new app.
    done = started.run("scripts/supervisorctl pid seqgpt560m")
    assert done.returncode == 0 and done.stdout.strip().isdigit(), done.stdout + done.stderr
    environ = Path(f"/proc/{done.stdout.strip()}/environ").read_bytes().split(b"\0")
    assert b"SEQGPT_EXTRACT_EXACT_TOKENS=4" in environ
    assert "SEQGPT_EXTRACT_EXACT_TOKENS" not in (started.workspace / "seqgpt560m.env").read_text(encoding="utf-8")
    assert "check the spelling" not in (started.workspace / "seqgpt560m.log").read_text(encoding="utf-8")


def test_start_sh_knows_every_benchmark_switch_the_app_reads() -> None:
    line = re.search(r'^BENCH_SWITCHES="([^"]*)"$', (ROOT / "scripts" / "start.sh").read_text(), re.MULTILINE)
    assert line, "scripts/start.sh names the benchmark switches in BENCH_SWITCHES"
    assert set(line.group(1).split()) == set(BENCH_VARIABLES)


def test_the_printed_log_command_names_the_log_of_the_workspace(started: Started) -> None:
    assert started.printed("follow the log") == f"tail -f {started.workspace}/seqgpt560m.log"
    assert (started.workspace / "seqgpt560m.log").is_file()


def test_the_printed_stop_command_stops_the_app_from_a_new_shell(started: Started) -> None:
    supervisord = started.supervisord_pid()
    done = started.run(started.printed("stop"), timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "stopped" in done.stdout
    assert started.health() is None, "the app is down"
    with pytest.raises(ProcessLookupError):
        os.kill(supervisord, 0)
    status = started.run("scripts/status.sh")
    assert status.returncode == 3 and "not running" in status.stdout
