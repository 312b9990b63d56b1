"""Knowledge-base settings (where the store lives, passage size, request limits), read from ``SEQGPT_KB_*``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_loader.errors import SettingsError
from model_loader.settings import env_setting

from ..settings import DEFAULT_WORKSPACE


@dataclass(frozen=True)
class KbSettings:
    """Each field maps to one ``SEQGPT_KB_*`` variable."""

    path: Path = Path(DEFAULT_WORKSPACE) / "kb"  # the embedded store's folder (SEQGPT_KB_PATH)
    # A Chroma server, e.g. http://kb-host:8000: used instead of the embedded store when set.
    url: str = ""
    passage_chars: int = 300  # longest passage a document is cut into
    max_upload_bytes: int = 10 * 1024 * 1024  # largest document upload or JSON body
    max_documents: int = 1000  # most documents in one request
    max_query_chars: int = 1000  # longest search query
    max_top_k: int = 20  # most hits a search may ask for

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, workspace: Path | None = None) -> KbSettings:
        env = os.environ if environ is None else environ
        workspace = workspace or Path(env_setting(env, "WORKSPACE") or DEFAULT_WORKSPACE)
        values: dict[str, Any] = {"path": Path(env_setting(env, "KB_PATH") or workspace / "kb")}
        if (url := env_setting(env, "KB_URL")) is not None:
            if not url.startswith(("http://", "https://")):
                raise SettingsError(f"SEQGPT_KB_URL={url!r} is not an http(s) URL: write it like http://kb-host:8000")
            values["url"] = url
        for name in ("passage_chars", "max_upload_bytes", "max_documents", "max_query_chars", "max_top_k"):
            if (raw := env_setting(env, f"KB_{name.upper()}")) is not None:
                try:
                    value = int(raw)
                except ValueError:
                    raise SettingsError(f"SEQGPT_KB_{name.upper()}={raw!r} is not a whole number") from None
                if value < 1:
                    raise SettingsError(f"SEQGPT_KB_{name.upper()} must be at least 1 (got {value})")
                values[name] = value
        return cls(**values)
