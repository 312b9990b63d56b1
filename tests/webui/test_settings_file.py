"""The settings file, $SEQGPT_WORKSPACE/seqgpt560m.env: created with commented defaults, read at every
start under the environment (which wins), and updated in place by scripts/start.sh."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from model_loader import Settings, SettingsError
from webui.settings import ServerSettings
from webui.settings_file import (
    SETTINGS,
    effective,
    ensure_settings_file,
    load_settings_file,
    read_settings_file,
    remember,
    template,
)

ROOT = Path(__file__).resolve().parents[2]


def code_defaults() -> dict[str, str]:
    """Every setting's default as the code has it, spelled as the file spells it."""
    defaults = {}
    for cls in (Settings, ServerSettings):
        for field in dataclasses.fields(cls):
            if field.name == "workspace":
                continue
            value = field.default
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, bool):  # switches are spelled on / off in the file
                value = "on" if value else "off"
            # A line of the file cannot hold a line break: it spells one "\\n".
            defaults[f"SEQGPT_{field.name.upper()}"] = "" if value is None else str(value).replace("\n", "\\n")
    return defaults


def test_the_file_lists_every_setting_at_the_default_the_code_uses():
    listed = {name: default for name, default, _ in SETTINGS}
    assert {name: listed.get(name) for name in code_defaults()} == code_defaults()
    for name, default in listed.items():
        assert f"\n# {name}={default}\n" in template()


def test_first_start_creates_the_file_with_every_setting_commented_out(tmp_path: Path):
    env = {"SEQGPT_WORKSPACE": str(tmp_path / "ws")}
    path = load_settings_file(env)
    assert path == tmp_path / "ws" / "seqgpt560m.env"
    assert path.read_text(encoding="utf-8") == template()
    assert read_settings_file(path) == {}
    assert env == {"SEQGPT_WORKSPACE": str(tmp_path / "ws")}, "commented defaults set nothing"


def test_the_file_fills_in_the_environment_and_the_environment_wins(tmp_path: Path):
    (tmp_path / "seqgpt560m.env").write_text(
        "# comment\n\nSEQGPT_MAX_LABELS=2\nexport SEQGPT_PORT = 7999\nSEQGPT_AUTH='admin:pa ss'\n", encoding="utf-8"
    )
    env = {"SEQGPT_WORKSPACE": str(tmp_path), "SEQGPT_PORT": "8001"}
    load_settings_file(env)
    assert env["SEQGPT_MAX_LABELS"] == "2" and env["SEQGPT_AUTH"] == "admin:pa ss"
    assert env["SEQGPT_PORT"] == "8001"
    assert Settings.from_env(env).max_labels == 2
    assert ServerSettings.from_env(env).port == 8001


def test_a_line_that_is_not_key_value_is_an_error_naming_the_line(tmp_path: Path):
    (tmp_path / "seqgpt560m.env").write_text("SEQGPT_PORT=7860\nmax labels 3\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"line 2 .*SEQGPT_NAME=value"):
        load_settings_file({"SEQGPT_WORKSPACE": str(tmp_path)})


def test_an_unknown_name_is_applied_with_a_warning_about_its_spelling(tmp_path: Path, capsys):
    (tmp_path / "seqgpt560m.env").write_text("SEQGPT_MAX_LABEL=3\n", encoding="utf-8")
    env = {"SEQGPT_WORKSPACE": str(tmp_path)}
    load_settings_file(env)
    assert env["SEQGPT_MAX_LABEL"] == "3"
    assert "SEQGPT_MAX_LABEL" in capsys.readouterr().err


def test_remember_replaces_a_commented_default_or_a_set_line_and_keeps_the_rest(tmp_path: Path):
    path = tmp_path / "seqgpt560m.env"
    ensure_settings_file(path)
    path.write_text(path.read_text(encoding="utf-8") + "SEQGPT_LOG_LEVEL=DEBUG\n", encoding="utf-8")
    remember(path, {"SEQGPT_PORT": "7999", "SEQGPT_LOG_LEVEL": "WARNING", "SEQGPT_REPLICAS": "2"})
    remember(path, {"SEQGPT_PORT": "7998"})
    text = path.read_text(encoding="utf-8")
    assert read_settings_file(path) == {"SEQGPT_PORT": "7998", "SEQGPT_LOG_LEVEL": "WARNING", "SEQGPT_REPLICAS": "2"}
    assert text.count("SEQGPT_PORT=") == 1 and "# SEQGPT_MAX_LABELS=64" in text


def test_effective_reads_the_file_then_the_default(tmp_path: Path):
    path = tmp_path / "seqgpt560m.env"
    assert effective(path, "SEQGPT_PORT") == "7860"
    remember(path, {"SEQGPT_PORT": "7999"})
    assert effective(path, "SEQGPT_PORT") == "7999"
    assert effective(path, "SEQGPT_HOST") == "0.0.0.0"


def test_the_command_line_remembers_and_gets_as_start_sh_uses_it(tmp_path: Path):
    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "webui.settings_file", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    cli("remember", str(tmp_path), "SEQGPT_PORT=7999", "SEQGPT_AUTH=a:b=c")
    assert cli("get", str(tmp_path), "SEQGPT_PORT") == "7999"
    assert cli("get", str(tmp_path), "SEQGPT_AUTH") == "a:b=c"
    assert cli("get", str(tmp_path), "SEQGPT_MAX_LABELS") == "64"
