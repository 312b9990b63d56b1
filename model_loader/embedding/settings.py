"""Settings of the embedding model (GTE-Chinese-Large), read from ``SEQGPT_EMBED_*`` variables in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SettingsError
from ..settings import env_setting

DEFAULT_EMBED_MODEL_DIR = "/root/models/gte-large-zh"
DEFAULT_WORKSPACE = "/root/workspace"
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class EmbeddingSettings:
    """Where the embedding model lives and how it runs. Each field maps to one ``SEQGPT_EMBED_*`` variable."""

    model_dir: Path = Path(DEFAULT_EMBED_MODEL_DIR)  # a sentence-transformers folder of thenlper/gte-large-zh
    # Where demo embedding weights are built when model_dir holds no model (random, meaningless scores).
    demo_dir: Path = Path(DEFAULT_WORKSPACE) / "models" / "gte-demo"
    demo_fallback: bool = True  # False: a missing model is an error instead of demo weights
    # auto: float16 on a GPU; on a CPU the engine's choice (a 16-bit type the processor multiplies fast, else float32)
    dtype: str = "auto"
    batch_size: int = 16  # passages per model call; a search waits for at most one such batch
    max_tokens: int = 512  # GTE's window; longer passages are cut (passages are much shorter)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise SettingsError(f"SEQGPT_EMBED_DTYPE={self.dtype!r} is not valid: use one of {', '.join(DTYPES)}")
        if self.batch_size < 1 or not 8 <= self.max_tokens <= 8192:
            raise SettingsError("SEQGPT_EMBED_BATCH_SIZE must be at least 1 and SEQGPT_EMBED_MAX_TOKENS 8 to 8192")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EmbeddingSettings:
        env = os.environ if environ is None else environ
        workspace = Path(env_setting(env, "WORKSPACE") or DEFAULT_WORKSPACE)
        values: dict[str, Any] = {"demo_dir": workspace / "models" / "gte-demo"}
        if (raw := env_setting(env, "EMBED_MODEL_DIR")) is not None:
            values["model_dir"] = Path(raw)
        if (raw := env_setting(env, "EMBED_DEMO_DIR")) is not None:
            values["demo_dir"] = Path(raw)
        if (raw := env_setting(env, "EMBED_DEMO_FALLBACK")) is not None:
            values["demo_fallback"] = raw.lower() not in ("0", "false", "no", "off")
        if (raw := env_setting(env, "EMBED_DTYPE")) is not None:
            values["dtype"] = raw.lower()
        for name in ("batch_size", "max_tokens"):
            if (raw := env_setting(env, f"EMBED_{name.upper()}")) is not None:
                try:
                    values[name] = int(raw)
                except ValueError:
                    raise SettingsError(f"SEQGPT_EMBED_{name.upper()}={raw!r} is not a whole number") from None
        return cls(**values)
