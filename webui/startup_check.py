"""Every setting checked before torch or gradio is imported, so a bad one fails the start within startsecs."""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

from model_loader.errors import SettingsError
from model_loader.settings import Settings
from serving.settings import ClusterSettings, ClusterSettingsError
from webui.settings_file import load_settings_file

from .settings import ServerSettings

# The exit status of a start refused for its settings; Supervisor counts it as a failed start
# because it comes before startsecs, and after startretries of them the program is FATAL.
SETTINGS_EXIT_CODE = 2


@dataclass(frozen=True)
class CheckedSettings:
    settings_file: Path
    server: ServerSettings
    cluster: ClusterSettings


def check_settings(environ: MutableMapping[str, str] | None = None) -> CheckedSettings:
    """The settings file read into the environment, then the server's, the cluster's and the engine's
    settings built from it: the first bad one raises SettingsError, naming it and how to fix it.
    Imports neither torch nor gradio: it runs in a fraction of a second."""
    env = os.environ if environ is None else environ
    try:
        settings_file = load_settings_file(env)  # fills in the environment, so it comes first
        server = ServerSettings.from_env(dict(env))
        cluster = ClusterSettings.from_env(env)
        Settings.from_env(env)
    except ClusterSettingsError as exc:
        raise SettingsError(str(exc)) from exc
    return CheckedSettings(settings_file, server, cluster)


def refusal(exc: Exception) -> str:
    """The one line printed before exiting, which the log and ``scripts/status.sh`` show."""
    return (f"seqgpt: not started, a setting is wrong: {exc}. Fix it, then restart: "
            "scripts/supervisorctl restart seqgpt560m (supervisorctl restart seqgpt560m in the image)")
