"""Typed results the engine returns; the web layer converts them to JSON and UI components."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Classification:
    """The chosen label and a probability for every requested label (they sum to 1)."""

    label: str
    scores: dict[str, float]
    pieces: int = 1

    @property
    def split(self) -> bool:
        """True when the text was longer than the model window and was run in pieces."""
        return self.pieces > 1


@dataclass(frozen=True)
class Mention:
    """One extracted mention: ``text == original_text[start:end]``."""

    text: str
    start: int
    end: int
    score: float


@dataclass(frozen=True)
class Extraction:
    """Mentions per requested field, plus the model's raw output lines."""

    fields: dict[str, list[Mention]]
    raw: str
    pieces: int = 1
    dropped: dict[str, list[str]] = field(default_factory=dict)

    @property
    def split(self) -> bool:
        return self.pieces > 1


@dataclass(frozen=True)
class Generation:
    """Free-prompt output."""

    text: str
    prompt_tokens: int
    new_tokens: int
    truncated: bool = False


@dataclass(frozen=True)
class EngineStatus:
    """What the status bar and /health report about the model."""

    state: str  # "idle", "loading", "ready" or "error"
    device: str
    dtype: str
    model_dir: str
    is_demo: bool = False
    error: str | None = None
    load_seconds: float | None = None
    # The attention kernel in use and why faster ones were passed over, e.g. "sdpa (flash-attn: not installed)".
    attention: str | None = None
    weights: str = "16bit"  # SEQGPT_WEIGHTS of the loaded model: 16bit or int8

    @property
    def ready(self) -> bool:
        return self.state == "ready"


@dataclass(frozen=True)
class Summary:
    """A summary with its two health figures and the names of those outside their thresholds."""

    summary: str
    compression_ratio: float  # summary characters / source characters
    similarity: float  # GTE cosine similarity of summary and source
    flags: list[str]  # "drifted", "too_terse", "too_long"
    pieces: int = 1
