"""Server settings (host, port, auth, queue, limits), read from ``SEQGPT_*`` variables in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from model_loader.errors import SettingsError
from model_loader.settings import env_setting

DEFAULT_WORKSPACE = "/root/workspace"


@dataclass(frozen=True)
class ServerSettings:
    """How the web server runs. The model's own limits live in ``model_loader.Settings``."""

    host: str = "0.0.0.0"
    port: int = 7860
    workspace: Path = Path(DEFAULT_WORKSPACE)
    # (user, password) for HTTP basic auth on everything except /health; None leaves it open.
    auth: tuple[str, str] | None = None
    # Requests allowed to wait for a model slot; one more gets 503 "busy" at once.
    queue_size: int = 32
    # Model calls running at once (API and UI together); the engine batches the ones that run together.
    concurrency: int = 8
    batch_max_bytes: int = 2 * 1024 * 1024
    batch_max_rows: int = 1000
    # Durable jobs (webui/jobs): the database file (None: seqgpt560m.db in the workspace), upload and
    # row limits, jobs allowed to wait, days a finished job is kept, most rows handed to the engine at
    # once, and the time one such slice should take (what an interactive request may wait behind it).
    jobs_db: Path | None = None
    jobs_max_bytes: int = 256 * 1024 * 1024
    jobs_max_rows: int = 100_000
    jobs_max_queued: int = 20
    jobs_retention_days: int = 7
    jobs_batch_rows: int = 32
    jobs_slice_ms: int = 500
    # Request history (webui/history): off unless SEQGPT_HISTORY=on, as it keeps users' texts; days and
    # megabytes kept before the background purge, and the longest text stored whole.
    history: bool = False
    history_retention_days: int = 30
    history_max_mb: int = 512
    history_max_text_chars: int = 20000
    status_refresh_s: float = 3.0
    # Seconds uvicorn waits for in-flight requests after SIGTERM; keep below Supervisor's stopwaitsecs.
    graceful_shutdown_s: int = 6
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ServerSettings:
        """Build settings from the environment; unset or empty variables keep the defaults."""
        env = os.environ if environ is None else environ

        get = partial(env_setting, env)

        values: dict[str, Any] = {}
        if (host := get("HOST")) is not None:
            values["host"] = host
        if (workspace := get("WORKSPACE")) is not None:
            values["workspace"] = Path(workspace)
        if (jobs_db := get("JOBS_DB")) is not None:
            values["jobs_db"] = Path(jobs_db)
        if (auth := get("AUTH")) is not None:
            values["auth"] = parse_auth(auth)
        if (level := get("LOG_LEVEL")) is not None:
            values["log_level"] = level.upper()
        if (history := get("HISTORY")) is not None:
            values["history"] = _switch("HISTORY", history)
        for name, minimum in (
            ("port", 1),
            ("queue_size", 0),
            ("concurrency", 1),
            ("batch_max_bytes", 1),
            ("batch_max_rows", 1),
            ("jobs_max_bytes", 1),
            ("jobs_max_rows", 1),
            ("jobs_max_queued", 1),
            ("jobs_retention_days", 1),
            ("jobs_batch_rows", 1),
            ("jobs_slice_ms", 1),
            ("history_retention_days", 1),
            ("history_max_mb", 1),
            ("history_max_text_chars", 100),
            ("graceful_shutdown_s", 0),
        ):
            raw = get(name.upper())
            if raw is not None:
                values[name] = _whole_number(name, raw, minimum)
        if (refresh := get("STATUS_REFRESH_S")) is not None:
            try:
                values["status_refresh_s"] = max(0.5, float(refresh))
            except ValueError:
                raise SettingsError(f"SEQGPT_STATUS_REFRESH_S={refresh!r} is not a number of seconds") from None
        return cls(**values)


def parse_auth(raw: str) -> tuple[str, str]:
    """Split ``user:password``; the password may itself contain colons."""
    user, sep, password = raw.partition(":")
    if not sep or not user or not password:
        raise SettingsError("SEQGPT_AUTH must look like user:password (both parts non-empty)")
    return user, password


def _whole_number(name: str, raw: str, minimum: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"SEQGPT_{name.upper()}={raw!r} is not a whole number") from None
    if value < minimum:
        raise SettingsError(f"SEQGPT_{name.upper()} must be at least {minimum} (got {value})")
    return value


def _switch(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("on", "1", "true", "yes"):
        return True
    if value in ("off", "0", "false", "no"):
        return False
    raise SettingsError(f"SEQGPT_{name}={raw!r} is neither on nor off: write SEQGPT_{name}=on or SEQGPT_{name}=off")
