"""What answers the tasks' plans on the model: our fast runner, or the official SeqGPT settings.

Both implement ``Backend``; the engine picks one at load, so no request path branches on the
decoding setting.
"""

from __future__ import annotations

from typing import Protocol, cast

from ..model.bloom import BloomRunner
from ..model.loading import LoadedModel
from ..results import Classification, Extraction, Generation
from ..settings import Settings
from ..tasks import ClassifyPiece, ClassifyPlan, ExtractPiece, ExtractPlan, GeneratePlan, HealthProbe, Plan
from ..text.tokens import Tokens
from .fast import FastBackend
from .official import OfficialBackend


class Backend(Protocol):
    """Answers a batch of plans of one task; runs only on the model worker's thread."""

    name: str

    def classify(self, plans: list[ClassifyPlan]) -> list[Classification]: ...

    def extract(self, plans: list[ExtractPlan]) -> list[Extraction]: ...

    def generate(self, plans: list[GeneratePlan]) -> list[Generation]: ...

    def check(self) -> None:
        """A real tiny forward pass on the device; raises ModelNotReadyError when the model is broken."""


def build_backend(settings: Settings, loaded: LoadedModel, runner: BloomRunner, tokens: Tokens) -> Backend:
    fast = FastBackend(runner, tokens, settings)
    if settings.decoding == "official":
        return OfficialBackend(fast, loaded)
    return fast


def run_plans(backend: Backend, plans: list[Plan]) -> list[object]:
    """Results for a list of plans of one type, in order; the request-batching worker calls it."""
    first = plans[0]
    # The worker groups plans by type before calling, so the first plan's type is every plan's.
    if isinstance(first, ClassifyPlan):
        return list(backend.classify(cast(list[ClassifyPlan], plans)))
    if isinstance(first, ExtractPlan):
        return list(backend.extract(cast(list[ExtractPlan], plans)))
    if isinstance(first, GeneratePlan):
        return list(backend.generate(cast(list[GeneratePlan], plans)))
    if isinstance(first, ClassifyPiece | ExtractPiece):
        # Queued one piece at a time (tasks/pieces.py), only by the fast backend (admission splits for it alone).
        return cast(FastBackend, backend).pieces(cast(list[ClassifyPiece | ExtractPiece], plans))
    if isinstance(first, HealthProbe):
        backend.check()
        return [None for _ in plans]
    raise TypeError(f"no task runs a {type(first).__name__}")


__all__ = ["Backend", "FastBackend", "OfficialBackend", "build_backend", "run_plans"]
