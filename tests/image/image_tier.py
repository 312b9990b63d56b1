"""The image tier's helpers: podman with this machine's settings, and a running container seen from outside.

Everything machine-specific (containers.conf, the debootstrap base image, the CA bundle, the
docker manifest format) lives in tests/image/podman.sh; these fixtures only call it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PODMAN_SH = ROOT / "tests" / "image" / "podman.sh"
TAG = "localhost/seqgpt560m-test"
MODEL_DIR = "/root/models/seqgpt-560m"
WORKSPACE = "/root/workspace"
# Health on demo weights comes in seconds; the bound is for a machine busy with other work.
HEALTHY_WITHIN_S = 240


def podman(
    *args: str, timeout: float = 120, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess:
    """Run podman through tests/image/podman.sh (the machine's settings)."""
    proc = subprocess.run(
        [str(PODMAN_SH), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args[:6])} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def build(tag: str, *args: str) -> tuple[str, float]:
    """Build the repository's Dockerfile as ``tag``; returns podman's output and the seconds it took."""
    started = time.monotonic()
    proc = podman("build", tag, *args, timeout=1800)
    return proc.stdout + proc.stderr, time.monotonic() - started


@dataclass(frozen=True)
class Built:
    tag: str
    output: str
    seconds: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Container:
    name: str
    workspace: Path | None = None
    port: int | None = None
    # `supervisorctl status seqgpt560m` as read right after the first /health 200.
    first_status: str = ""

    def exec(self, *args: str, timeout: float = 60, stdin: str | None = None) -> subprocess.CompletedProcess:
        return podman(
            "exec", *(["-i"] if stdin is not None else []), self.name, *args, timeout=timeout, check=False, stdin=stdin
        )

    def ctl(self, *args: str) -> str:
        """Plain `supervisorctl` inside the container, no flags, as an operator types it."""
        return self.exec("supervisorctl", *args).stdout

    def state(self) -> tuple[str, int | None]:
        fields = self.ctl("status", "seqgpt560m").split()
        pid = int(fields[3].rstrip(",")) if len(fields) > 3 and fields[2] == "pid" else None
        return (fields[1] if len(fields) > 1 else "?"), pid

    def http(self, method: str, path: str, body: object | None = None) -> tuple[int, dict]:
        """An HTTP request from inside the container (it may have no network at all)."""
        args = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-X", method, f"http://127.0.0.1:7860{path}"]
        stdin = None
        if body is not None:
            args += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
            stdin = json.dumps(body, ensure_ascii=False)
        proc = self.exec(*args, stdin=stdin)
        text, _, code = proc.stdout.rpartition("\n")
        try:
            payload = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError:
            payload = {"unparsed": text[:500]}
        return int(code or 0), payload

    def wait_healthy(self, within: float = HEALTHY_WITHIN_S) -> str:
        """Poll until /health is 200; returns `supervisorctl status` as read right after that first 200."""
        probe = "curl -fsS -o /dev/null http://127.0.0.1:7860/health && supervisorctl status seqgpt560m"
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            proc = self.exec("sh", "-c", probe, timeout=30)
            if proc.returncode == 0:
                return proc.stdout
            time.sleep(0.3)
        raise AssertionError(f"/health not 200 within {within} s:\n{self.logs()[-3000:]}")

    def logs(self) -> str:
        proc = podman("logs", self.name, check=False)
        return proc.stdout + proc.stderr

    def remove(self) -> None:
        podman("rm", "-f", "-v", "-t", "0", self.name, check=False, timeout=60)


def run_container(image: str, *args: str, workspace: Path | None = None, port: int | None = None) -> Container:
    name = f"seqgpt560m-test-{uuid.uuid4().hex[:8]}"
    cmd = ["run", "-d", "--name", name]
    if workspace is not None:
        cmd += ["-v", f"{workspace}:{WORKSPACE}"]
    if port is not None:
        cmd += ["-p", f"127.0.0.1:{port}:7860"]
    podman(*cmd, *args, image)
    return Container(name, workspace, port)
