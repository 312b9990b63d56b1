"""One module per task, each read top to bottom: ``plan`` (in the caller's thread) → ``run`` → ``result``.

The request-batching worker hands plans of one type to ``run_plans``, which gives them to the
backend's method for that task (see backends).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .classify import ClassifyPlan
from .extract import ExtractPlan
from .generate import GeneratePlan
from .pieces import ClassifyPiece, ExtractPiece, run_pieces

if TYPE_CHECKING:  # backends import the tasks, so only type checkers import them here
    from ..backends import Backend


@dataclass(frozen=True)
class HealthProbe:
    """A health check queued like a request, so that it runs on the model's own thread."""


Plan = ClassifyPlan | ExtractPlan | GeneratePlan | HealthProbe | ClassifyPiece | ExtractPiece


def run_plans(backend: Backend, plans: list[Plan]) -> list[object]:
    """Results for a list of plans of one type, in order."""
    first = plans[0]
    if isinstance(first, ClassifyPlan):
        return backend.classify(plans)
    if isinstance(first, ExtractPlan):
        return backend.extract(plans)
    if isinstance(first, GeneratePlan):
        return backend.generate(plans)
    if isinstance(first, ClassifyPiece | ExtractPiece):  # queued one piece at a time (see pieces)
        return run_pieces(backend, plans)  # type: ignore[arg-type]
    if isinstance(first, HealthProbe):
        backend.check()
        return [None for _ in plans]
    raise TypeError(f"no task runs a {type(first).__name__}")


__all__ = [
    "ClassifyPiece", "ClassifyPlan", "ExtractPiece", "ExtractPlan", "GeneratePlan", "HealthProbe", "Plan", "run_plans"
]
