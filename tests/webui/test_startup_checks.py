"""Before anything heavy: every setting checked, the settings file and the workspace made owner-only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from model_loader.errors import SettingsError
from webui.settings_file import FILE_NAME, effective, main, problem, remember
from webui.startup_check import check_settings
from webui.workspace_privacy import keep_private

ROOT = Path(__file__).resolve().parents[2]


def test_a_garbage_line_a_bad_port_and_a_bad_device_are_each_refused(tmp_path):
    (tmp_path / FILE_NAME).write_text("SEQGPT_PORT=7001\n", encoding="utf-8")
    assert check_settings({"SEQGPT_WORKSPACE": str(tmp_path)}).server.port == 7001
    for line, named in (("this line is garbage", "line 2 is not KEY=VALUE"), ("SEQGPT_PORT=abc", "SEQGPT_PORT"),
                        ("SEQGPT_DEVICE=gpu", "SEQGPT_DEVICE"), ("SEQGPT_REPLICAS=-1", "SEQGPT_REPLICAS")):
        (tmp_path / FILE_NAME).write_text(f"SEQGPT_HOST=127.0.0.1\n{line}\n", encoding="utf-8")
        with pytest.raises(SettingsError, match=named):
            check_settings({"SEQGPT_WORKSPACE": str(tmp_path)})


def test_the_check_imports_neither_torch_nor_gradio(tmp_path):
    code = ("import sys; from webui.startup_check import check_settings; check_settings(); "
            "print(sorted(m for m in ('torch', 'gradio', 'uvicorn') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "SEQGPT_WORKSPACE": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_status_reads_the_other_lines_and_names_the_bad_one_once(tmp_path, capsys):
    (tmp_path / FILE_NAME).write_text("SEQGPT_PORT=7890\nthis line is garbage\n", encoding="utf-8")
    assert effective(tmp_path / FILE_NAME, "SEQGPT_PORT") == "7890"
    assert "line 2 is not KEY=VALUE" in problem(tmp_path / FILE_NAME)
    assert main(["check", str(tmp_path)]) == 1
    assert capsys.readouterr().out.count("line 2") == 1
    (tmp_path / FILE_NAME).write_text("SEQGPT_PORT=7890\n", encoding="utf-8")
    assert problem(tmp_path / FILE_NAME) is None and main(["check", str(tmp_path)]) == 0


def test_the_settings_file_is_owner_only_whatever_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        remember(tmp_path / FILE_NAME, {"SEQGPT_AUTH": "alice:secret"})
    finally:
        os.umask(old)
    assert (tmp_path / FILE_NAME).stat().st_mode & 0o777 == 0o600


def test_what_is_already_in_the_workspace_loses_group_and_other_access(tmp_path):
    old = os.umask(0o022)
    try:
        (tmp_path / "batch" / "abc").mkdir(parents=True)
        (tmp_path / "batch" / "abc" / "results.csv").write_text("text\n私密\n", encoding="utf-8")
        (tmp_path / "seqgpt560m.log").write_text("log\n", encoding="utf-8")
        changed = keep_private(tmp_path)
        assert os.umask(0o022) == 0o077, "new files are owner-only too"
    finally:
        os.umask(old)
    assert changed == 4  # batch, abc, results.csv and the log (pytest made tmp_path 0700)
    for path in (tmp_path, *tmp_path.rglob("*")):
        assert path.stat().st_mode & 0o077 == 0, path
