"""Engine settings, read from the environment in one place, with the appliance's defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .errors import SettingsError

DEFAULT_MODEL_DIR = "/root/models/seqgpt-560m"
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")
DECODINGS = ("fast", "official")
WEIGHTS = ("16bit", "int8")  # model_loader.model.int8_weights.WEIGHTS_MODES
# The summary prompt of the GTE + SeqGPT write-ups; SEQGPT_SUMMARY_PROMPT replaces it ("\\n" for a line break).
DEFAULT_SUMMARY_PROMPT = "请为以下内容生成简洁摘要,不超过{max_chars}字:\n{text}"


@dataclass(frozen=True)
class Settings:
    """Everything the engine can be told. Each field maps to one ``SEQGPT_*`` variable."""

    model_dir: Path = Path(DEFAULT_MODEL_DIR)  # folder with config.json, the weights and the tokenizer
    device: str = "auto"  # auto (the GPU when there is one), cpu or cuda
    dtype: str = "auto"  # auto (fp16 on a GPU; on a CPU by its instructions), float32, bfloat16 or float16
    # fast: our decoding (label scoring, per-field extraction); official: the reference settings
    # (see backends/official.py).
    decoding: str = "fast"
    weights: str = "16bit"  # 16bit (the dtype above) or int8 (CPU only: weight-only int8, half the bytes)
    max_text_chars: int = 20_000  # longest text a request may send
    max_labels: int = 64  # most labels or fields in one request
    max_label_chars: int = 64  # longest label or field name
    max_prompt_chars: int = 8_000  # longest free prompt
    max_new_tokens: int = 256  # most tokens a free prompt may write
    extract_max_new_tokens: int = 128  # most tokens one field's answer may take
    window_tokens: int = 1024  # the model's window; longer texts are split into pieces that fit
    overlap_chars: int = 120  # characters neighbouring pieces of a split text share
    max_batch_size: int = 16  # most requests the model worker runs together
    # How long the model worker waits for more requests after the first, to batch them.
    batch_gather_ms: int = 5
    # Longest estimated wait before a request starts; one that would wait longer is refused at once
    # (503 with Retry-After). 0 turns this off.
    max_wait_s: int = 60
    torch_threads: int = 0  # CPU threads for torch; 0 keeps torch's default
    summary_prompt: str = DEFAULT_SUMMARY_PROMPT  # must hold {text}; {max_chars} is optional
    summary_max_chars: int = 500  # the longest summary a request may ask for
    summary_min_similarity: float = 0.45  # GTE cosine of summary and source below this: flagged "drifted"
    summary_min_ratio: float = 0.12  # summary chars / source chars below this: flagged "too_terse"
    summary_max_ratio: float = 0.35  # above this: flagged "too_long"

    def __post_init__(self) -> None:
        for name, allowed in (("device", DEVICES), ("dtype", DTYPES), ("decoding", DECODINGS), ("weights", WEIGHTS)):
            value = getattr(self, name)
            if value not in allowed:
                raise SettingsError(
                    f"SEQGPT_{name.upper()}={value!r} is not valid: use one of {', '.join(allowed)}"
                )
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int) and value < 0:
                raise SettingsError(f"SEQGPT_{f.name.upper()} must not be negative (got {value})")
        if "{text}" not in self.summary_prompt:
            raise SettingsError("SEQGPT_SUMMARY_PROMPT must contain {text}, where the text to summarise goes")
        if not 0 <= self.summary_min_ratio <= self.summary_max_ratio:
            raise SettingsError("SEQGPT_SUMMARY_MIN_RATIO must be at most SEQGPT_SUMMARY_MAX_RATIO")
        if self.window_tokens < 128:
            raise SettingsError("SEQGPT_WINDOW_TOKENS must be at least 128")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``SEQGPT_*`` variables; unset ones keep the defaults."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env_setting(env, f.name.upper())
            if raw is None:
                continue
            if f.name == "model_dir":
                values[f.name] = Path(raw)
            elif f.name == "summary_prompt":
                values[f.name] = raw.replace("\\n", "\n")  # a settings file line cannot hold a line break
            elif isinstance(f.default, float):
                try:
                    values[f.name] = float(raw)
                except ValueError:
                    raise SettingsError(f"SEQGPT_{f.name.upper()}={raw!r} is not a number") from None
            elif isinstance(f.default, int):
                try:
                    values[f.name] = int(raw)
                except ValueError:
                    raise SettingsError(
                        f"SEQGPT_{f.name.upper()}={raw!r} is not a whole number"
                    ) from None
            else:
                values[f.name] = raw.lower()
        return cls(**values)


def env_setting(env: Mapping[str, str], name: str) -> str | None:
    """``SEQGPT_<name>`` without surrounding blanks, or None where it is unset or blank: the one
    reading of a setting that the engine's, the server's and the cluster's settings share."""
    raw = env.get(f"SEQGPT_{name}")
    return raw.strip() if raw is not None and raw.strip() else None
