"""What a new user meets on a plain machine: the demo banner's advice works, the workspace is private,
evaluate.py finds the appliance's settings, and a bad settings line ends FATAL with its reason shown.

One scripts/start.sh in a copy of the checkout, real supervisord and real HTTP, every command run as
from a new shell (see test_plain_machine.py). The tests run in file order: the last breaks the
settings file on purpose.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_plain_machine import LEFT_BEHIND, ROOT, Started, free_port, new_shell_env

from webui.ui.page import DEMO_BANNER

pytestmark = pytest.mark.service

# Supervisor's back-off between failed starts grows by a second each time: 1 + 2 + … + 5 s for
# startretries=5, then FATAL; the rest is room for a loaded machine.
FATAL_WITHIN_S = 60
DOWNLOAD = "scripts/download_model.py"
RESTART = "scripts/supervisorctl restart seqgpt560m"


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory, demo_model_dir: Path) -> Iterator[Started]:
    """Started the way a newcomer starts it: no SEQGPT_MODEL_DIR, so start.sh falls back to demo weights."""
    checkout = tmp_path_factory.mktemp("clone") / "seqgpt"
    shutil.copytree(ROOT, checkout, ignore=shutil.ignore_patterns(*LEFT_BEHIND))
    (checkout / "logs").mkdir()
    (checkout / ".venv").symlink_to((ROOT / ".venv").resolve())
    # The demo weights start.sh would build, built once for the whole session instead.
    shutil.copytree(demo_model_dir, checkout / "models" / "demo")
    workspace = tmp_path_factory.mktemp("ws")
    port = free_port()
    done = subprocess.run(
        ["scripts/start.sh"], cwd=checkout, capture_output=True, text=True, timeout=600,
        env=new_shell_env(SEQGPT_WORKSPACE=str(workspace), SEQGPT_PORT=str(port), SEQGPT_HOST="127.0.0.1",
                          SEQGPT_DEVICE="cpu", SEQGPT_START_TIMEOUT="300"),
    )
    app = Started(checkout, workspace, port, done.stdout + done.stderr)
    try:
        assert done.returncode == 0, app.output[-4000:]
        yield app
    finally:
        subprocess.run(["scripts/stop.sh"], cwd=checkout, env=new_shell_env(), capture_output=True, timeout=60)


def program_state(app: Started) -> str:
    out = app.run("scripts/supervisorctl status seqgpt560m").stdout.split()
    return out[1] if len(out) > 1 else ""


def test_the_start_banner_and_the_page_banner_give_the_same_route_to_the_real_model(started: Started) -> None:
    banner = "\n".join(line for line in started.output.splitlines() if line.startswith("##  "))
    assert "DEMO WEIGHTS" in banner
    for advice in (banner, DEMO_BANNER):
        assert DOWNLOAD in advice and RESTART in advice, advice
        assert "stop.sh" not in advice, "one route: download, then restart"


def test_nothing_in_the_workspace_is_readable_by_others(started: Started) -> None:
    url = f"http://127.0.0.1:{started.port}"
    text = "用户的私密文本 a user's private text"
    assert httpx.post(f"{url}/api/classify", json={"text": text, "labels": ["财经", "体育"]}, timeout=60).is_success
    sample = ROOT / "tests" / "data" / "eval_tnews_sample.jsonl"
    with sample.open("rb") as data:  # writes a result folder (report, predictions with the texts)
        reply = httpx.post(f"{url}/api/evaluate", files={"file": data}, data={"task": "classify"}, timeout=300)
    assert reply.status_code == 200, reply.text
    assert any((started.workspace / "batch").iterdir())
    found = subprocess.run(["find", str(started.workspace), "-perm", "/o+r"], capture_output=True, text=True)
    assert found.stdout == "", f"readable by every local user:\n{found.stdout}"
    found = subprocess.run(["find", str(started.workspace), "-perm", "/g+r"], capture_output=True, text=True)
    assert found.stdout == "", f"readable by the group:\n{found.stdout}"
    assert (started.workspace / "seqgpt560m.env").stat().st_mode & 0o777 == 0o600


def test_evaluate_py_as_the_readme_prints_it_uses_the_appliances_settings(started: Started) -> None:
    done = started.run(
        ".venv/bin/python scripts/evaluate.py --task classify --data tests/data/eval_tnews_sample.jsonl "
        "--map tests/data/eval_tnews_map.txt --json eval/tnews.json --save-predictions eval/tnews.jsonl "
        "--no-progress", timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert str(started.workspace / "seqgpt560m.env") in done.stderr
    assert (started.checkout / "eval" / "tnews.json").is_file()
    ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", "eval/tnews.json"])
    assert ignored.returncode == 0, "the README's output folder is left out of git status"


def test_installing_the_real_model_then_the_printed_restart_loads_it(started: Started, demo_model_dir: Path,
                                                                     tmp_path: Path) -> None:
    # A copy of the weights without the demo marker stands for the real model, copied in by hand.
    real = tmp_path / "seqgpt-560m"
    shutil.copytree(demo_model_dir, real, ignore=shutil.ignore_patterns("DEMO_WEIGHTS.md"))
    done = started.run(f".venv/bin/python {DOWNLOAD} --source none --dest {real}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert RESTART in done.stdout
    done = started.run(RESTART)
    assert done.returncode == 0, done.stdout + done.stderr
    started.wait_healthy()
    health = httpx.get(f"http://127.0.0.1:{started.port}/health", timeout=10).json()
    assert health["is_demo"] is False and health["model_dir"] == str(real)


def test_a_bad_settings_line_ends_fatal_and_status_shows_why(started: Started) -> None:
    settings_file = started.workspace / "seqgpt560m.env"
    original = settings_file.read_text(encoding="utf-8")
    settings_file.write_text(original + "this line is garbage\n", encoding="utf-8")
    try:
        started.run(RESTART)
        deadline = time.monotonic() + FATAL_WITHIN_S
        # FATAL after the failed starts; EXITED where a loaded machine let one outlive startsecs.
        while (state := program_state(started)) not in ("FATAL", "EXITED"):
            assert started.health() is None, "a half-started app answers /health"
            assert time.monotonic() < deadline, f"still {state} after {FATAL_WITHIN_S}s"
            time.sleep(0.5)
        time.sleep(3)
        assert program_state(started) == state, "it stays down: no restart can fix a bad line"
        assert started.health() is None
        status = started.run("scripts/status.sh")
        assert status.returncode == 1
        assert status.stdout.count("is not KEY=VALUE ('this line is garbage')") == 1, status.stdout
        assert "Traceback" not in status.stdout + status.stderr
        assert f"url        http://127.0.0.1:{started.port}\n" in status.stdout
        assert state in status.stdout
    finally:
        settings_file.write_text(original, encoding="utf-8")
