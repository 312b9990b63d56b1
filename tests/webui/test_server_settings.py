"""Server settings come from SEQGPT_* variables, with the appliance's defaults and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from webui.settings import ServerSettings, SettingsError


def test_defaults_match_the_appliance():
    settings = ServerSettings.from_env({})
    assert (settings.host, settings.port) == ("0.0.0.0", 7860)
    assert settings.workspace == Path("/root/workspace")
    assert settings.auth is None
    assert settings.graceful_shutdown_s < 8  # Supervisor's stopwaitsecs


def test_variables_override_defaults():
    settings = ServerSettings.from_env({
        "SEQGPT_HOST": "127.0.0.1", "SEQGPT_PORT": "9000", "SEQGPT_WORKSPACE": "/tmp/ws",
        "SEQGPT_QUEUE_SIZE": "0", "SEQGPT_CONCURRENCY": "3", "SEQGPT_AUTH": "admin:pa:ss",
    })
    assert (settings.host, settings.port, settings.workspace) == ("127.0.0.1", 9000, Path("/tmp/ws"))
    assert (settings.queue_size, settings.concurrency) == (0, 3)
    assert settings.auth == ("admin", "pa:ss")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SEQGPT_PORT": "http"}, "SEQGPT_PORT='http' is not a whole number"),
        ({"SEQGPT_CONCURRENCY": "0"}, "SEQGPT_CONCURRENCY must be at least 1"),
        ({"SEQGPT_AUTH": "adminonly"}, "user:password"),
        ({"SEQGPT_AUTH": ":secret"}, "user:password"),
    ],
)
def test_bad_values_say_how_to_fix_them(env, message):
    with pytest.raises(SettingsError, match=message):
        ServerSettings.from_env(env)


def test_blank_variables_keep_defaults():
    assert ServerSettings.from_env({"SEQGPT_PORT": " ", "SEQGPT_AUTH": ""}) == ServerSettings()
