"""EngineAPI: the engine as the web edge sees it, kept by ``model_loader.Engine`` and ``serving.RemoteEngine``.

The web code is annotated with this Protocol, never with a class, and the type checker
(``scripts/test.sh`` runs mypy) fails when either implementation drifts from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .results import Classification, EngineStatus, Extraction, Generation, Summary
from .settings import Settings


class EngineAPI(Protocol):
    """Lifecycle, status and the three tasks; each task takes plain values and returns a small result.

    Bad input raises ``InvalidInputError``, a model that cannot answer ``ModelNotReadyError``
    (``model_loader.errors``); the web edge words both through its one outcome table."""

    @property
    def settings(self) -> Settings:
        """The engine's limits, which the web edge's request schemas check against."""
        ...

    @property
    def status(self) -> EngineStatus:
        """What the status bar and /health show; a snapshot, safe to read from any thread."""
        ...

    @property
    def queue_depth(self) -> int:
        """Requests waiting for the model in this process (the /metrics gauge)."""
        ...

    @property
    def queued_seconds(self) -> float:
        """Estimated seconds of the work queued for the model in this process (the status bar's wait)."""
        ...

    def load(self, device: str | None = None) -> None:
        """Load the model (blocking); failures are recorded in ``status`` and raised."""
        ...

    def close(self) -> None: ...

    def available_devices(self) -> list[str]:
        """The devices ``switch_device`` accepts; empty where the engine cannot switch."""
        ...

    def switch_device(self, device: str) -> None: ...

    def health_check(self) -> None:
        """A real tiny forward pass; raises ``ModelNotReadyError`` when the model is broken."""
        ...

    def classify(self, text: str, labels: str | Sequence[str]) -> Classification: ...

    def extract(
        self, text: str, fields: str | Sequence[str], threshold: float = 0.0, exclusive: bool = False
    ) -> Extraction: ...

    def generate(self, prompt: str, max_new_tokens: int | None = None) -> Generation: ...

    def summarize(self, text: str, max_chars: int | None = None) -> Summary:
        """A summary of ``text`` with its compression ratio and its similarity to the text."""
        ...
