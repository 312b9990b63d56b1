"""The packaging files: linters pass, the Supervisor config keeps its promises, CI runs the README's command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from supervisor.datatypes import RestartWhenExitUnexpected

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
CONF = ROOT / "supervisor" / "supervisord.conf"
SHELL_SCRIPTS = sorted((ROOT / "scripts").glob("*.sh")) + [ROOT / ".ci" / "run"]


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300, **kwargs)


def test_dockerfile_passes_hadolint() -> None:
    proc = run([str(VENV_BIN / "hadolint"), "--no-color", str(ROOT / "Dockerfile")])

    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_shell_script_passes_shellcheck() -> None:
    names = {p.name for p in SHELL_SCRIPTS}
    assert {"start.sh", "stop.sh", "test.sh", "run"} <= names

    proc = run([str(VENV_BIN / "shellcheck"), *map(str, SHELL_SCRIPTS)])

    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shell_scripts_are_executable_and_strict() -> None:
    for script in SHELL_SCRIPTS:
        text = script.read_text()
        assert text.startswith("#!/usr/bin/env bash\n"), script
        assert "set -euo pipefail" in text, script
        assert os.access(script, os.X_OK), f"{script} is not executable"


def load_config(workspace: Path) -> object:
    """Parse the config with supervisord's own parser, as the image would see it."""
    from supervisor.options import ServerOptions

    env = {
        "SEQGPT_WORKSPACE": str(workspace),
        "SEQGPT_HOME": "/opt/seqgpt560m",
        "SEQGPT_PYTHON": "/opt/venv/bin/python",
    }
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        options = ServerOptions()
        options.configfile = str(CONF)
        options.process_config(do_usage=False)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return options


def test_supervisor_config_keeps_the_appliance_contract(tmp_path: Path) -> None:
    options = load_config(tmp_path)
    (group,) = options.process_group_configs
    (program,) = group.process_configs

    assert options.nodaemon is True
    # Control only through the owner-only socket: no inet_http_server.
    assert [server["section"] for server in options.configroot.supervisord.server_configs] == ["unix_http_server"]
    assert options.configroot.supervisord.server_configs[0]["file"] == str(tmp_path / "supervisor.sock")
    assert options.configroot.supervisord.server_configs[0]["chmod"] == 0o700
    assert program.name == "seqgpt560m"
    assert program.command == "/opt/venv/bin/python -m webui"
    assert program.directory == "/opt/seqgpt560m"
    assert program.autostart is True
    # Restarted after any end but a refused setting (status 2), which a restart cannot fix.
    assert program.autorestart is RestartWhenExitUnexpected
    assert program.exitcodes == [2] and program.startsecs <= 1 and program.startretries == 5
    assert options.umask == 0o077
    assert program.stopsignal == 15
    # Docker's default stop timeout is 10 s: supervisord must give up first.
    assert program.stopwaitsecs < 10
    assert program.stopasgroup and program.killasgroup
    assert program.redirect_stderr is True
    assert program.stdout_logfile == str(tmp_path / "seqgpt560m.log")
    assert program.stdout_logfile_maxbytes == 50 * 1024 * 1024
    assert program.stdout_logfile_backups == 10
    assert program.environment == {"PYTHONUNBUFFERED": "1"}


def test_supervisor_config_follows_the_workspace_variable(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    options = load_config(tmp_path / "elsewhere")
    (program,) = options.process_group_configs[0].process_configs

    assert program.stdout_logfile == str(tmp_path / "elsewhere" / "seqgpt560m.log")
    assert options.configroot.supervisord.server_configs[0]["file"] == str(tmp_path / "elsewhere" / "supervisor.sock")


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text()

    assert "scripts/test.sh" in readme
    assert "exec scripts/test.sh" in ci


def test_test_script_fails_when_pytest_runs_no_test() -> None:
    # A run that selects nothing must not look green (pytest's exit status 5).
    proc = run(
        [
            str(ROOT / "scripts" / "test.sh"),
            str(Path(__file__)),
            "-k",
            "no_test_has_this_name",
            "-p",
            "no:cacheprovider",
        ],
        cwd=ROOT,
        env={**os.environ, "CI": "true"},
    )

    assert proc.returncode == 5, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "ruff check" in proc.stdout
    assert "collected no tests" in proc.stderr
