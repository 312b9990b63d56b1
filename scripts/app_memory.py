"""The appliance's process and its resident memory, for the soak: found through Supervisor, sampled
in a thread of its own while the soak's clients send requests.

    from app_memory import app_pid, sample_memory   (scripts/ is on the path of a script run from it)
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from _repo import ROOT  # noqa: E402  (the repository root, one definition for every script)

PROGRAM = "seqgpt560m"


INSTANCE_FILE = ROOT / ".seqgpt-instance"  # where scripts/start.sh records its workspace


def recorded_workspace() -> str | None:
    """The workspace of the appliance scripts/start.sh last started from this checkout, if any."""
    if not INSTANCE_FILE.is_file():
        return None
    lines = INSTANCE_FILE.read_text(encoding="utf-8").splitlines()
    found = [line.removeprefix("SEQGPT_WORKSPACE=") for line in lines if line.startswith("SEQGPT_WORKSPACE=")]
    return found[-1] if found and found[-1] else None


def app_pid(workspace: str | None) -> int:
    """The app's pid as Supervisor reports it, with the environment scripts/start.sh gives it; the
    workspace looked in is the one given, else the one start.sh recorded, as the other scripts do."""
    env = dict(os.environ)
    env.setdefault("SEQGPT_HOME", str(ROOT))
    env.setdefault("SEQGPT_PYTHON", sys.executable)
    env["SEQGPT_WORKSPACE"] = (
        workspace or recorded_workspace() or env.get("SEQGPT_WORKSPACE") or str(ROOT / "logs")
    )
    command = [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(ROOT / "supervisor" / "supervisord.conf")]
    result = subprocess.run([*command, "pid", PROGRAM], capture_output=True, text=True, env=env, check=False)
    pid = result.stdout.strip()
    if not pid.isdigit() or pid == "0":
        raise SystemExit(
            f"could not find the app's pid through Supervisor in {env['SEQGPT_WORKSPACE']} "
            f"({(result.stdout + result.stderr).strip()[:200]}): "
            "pass --pid, or the SEQGPT_WORKSPACE of scripts/start.sh"
        )
    return int(pid)


def rss_mb(pid: int) -> float:
    """Resident memory of the process and its descendants (Ray replicas, if any), in MB."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
        todo += children.get(current, [])
    return total / 1024


def sample_memory(
    pid: int, every: float, started: float, stop: threading.Event, samples: list[tuple[float, float]]
) -> None:
    """Append (seconds since ``started``, RSS in MB) every ``every`` seconds until ``stop``."""
    while True:
        samples.append((time.monotonic() - started, rss_mb(pid)))
        if stop.wait(every):
            return
