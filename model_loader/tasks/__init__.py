"""One module per task, each read top to bottom: ``plan`` (in the caller's thread) → the backend → ``result``.

The tasks are the pure edges around the model: they check and tokenise a request into a plan and
turn the model's answers into a result. What runs the model in between is a backend (``backends/``),
which imports the tasks; the tasks never import a backend.
"""

from __future__ import annotations

from dataclasses import dataclass

from .classify import ClassifyPlan
from .extract import ExtractPlan
from .generate import GeneratePlan
from .pieces import ClassifyPiece, ExtractPiece


@dataclass(frozen=True)
class HealthProbe:
    """A health check queued like a request, so that it runs on the model's own thread."""


Plan = ClassifyPlan | ExtractPlan | GeneratePlan | HealthProbe | ClassifyPiece | ExtractPiece

__all__ = ["ClassifyPiece", "ClassifyPlan", "ExtractPiece", "ExtractPlan", "GeneratePlan", "HealthProbe", "Plan"]
