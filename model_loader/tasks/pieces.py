"""Long requests cut into jobs of one piece each, so short requests can run between a long text's pieces.

A classification or extraction plan holds one prompt per piece of its text. With our fast
decoding each piece is answered on its own (answers never depend on what runs beside them), so
the engine queues one job per piece, the worker runs pieces of many requests together, and the
caller's thread puts the pieces' raw answers back through the task's own ``result``: the same
answer as one job for the whole plan. Also each job's work estimate, for the scheduler, and the
decode steps an extraction piece took, which the estimates learn from.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..batching.scheduling import DECODE_STEP_UNITS
from ..decoding import FieldAnswer, FieldRequest, LabelSet
from ..settings import Settings
from ..text.tokens import Tokens
from . import classify, extract
from .classify import ClassifyPlan
from .extract import ExtractPlan
from .generate import GeneratePlan


@dataclass
class ClassifyPiece:
    """One piece of a classification: its prompt and labels, scored as one token tree."""

    label_set: LabelSet


@dataclass
class ExtractPiece:
    """One piece of an extraction: its prompt's shared start and one row per field."""

    request: FieldRequest


Piece = ClassifyPiece | ExtractPiece


def split(plan: ClassifyPlan | ExtractPlan) -> list[Piece]:
    """One job per piece of the plan's text."""
    if isinstance(plan, ClassifyPlan):
        return [ClassifyPiece(s) for s in plan.label_sets]
    return [ExtractPiece(r) for r in plan.requests]


def merge(tokens: Tokens, plan: ClassifyPlan | ExtractPlan, answers: list[object]) -> object:
    """The request's result from its pieces' raw answers, in piece order (in the caller's thread)."""
    if isinstance(plan, ClassifyPlan):
        return classify.result(plan, answers)  # type: ignore[arg-type]
    return extract.result(tokens, plan, answers)  # type: ignore[arg-type]



def work_of(payload: object, settings: Settings, field_steps: float | None = None) -> float:
    """Estimated work of a job in units: prompt tokens, plus decode steps at DECODE_STEP_UNITS each.
    ``field_steps``: the steps an extraction piece is expected to take (scheduling.AnswerSteps);
    None counts the most a field may write."""
    if isinstance(payload, ClassifyPiece):
        s = payload.label_set
        return len(s.prompt) + sum(len(label) + 1 for label in s.labels)
    if isinstance(payload, ExtractPiece):
        r = payload.request
        return len(r.prefix) + sum(len(s) for s in r.suffixes) + shared_work_of(payload, settings, field_steps)
    if isinstance(payload, GeneratePlan):
        return len(payload.tokens) + shared_work_of(payload, settings)
    if isinstance(payload, ClassifyPlan | ExtractPlan):
        return sum(work_of(p, settings, field_steps) for p in split(payload))
    return 1.0


def shared_work_of(payload: object, settings: Settings, field_steps: float | None = None) -> float:
    """The part of ``work_of`` that jobs run in one call share: their decode steps, since one step
    adds a token to every row at the cost of reading the weights once."""
    if isinstance(payload, ExtractPiece):
        limit = settings.extract_max_new_tokens
        return DECODE_STEP_UNITS * (limit if field_steps is None else min(field_steps, limit))
    if isinstance(payload, GeneratePlan):  # the most it may write: an upper bound
        return DECODE_STEP_UNITS * payload.max_new_tokens
    return 0.0


def work_and_shared(payload: object, settings: Settings, field_steps: float | None = None) -> tuple[float, float]:
    """A job's work and the part of it shared with the jobs of its call, as the worker queues them."""
    return work_of(payload, settings, field_steps), shared_work_of(payload, settings, field_steps)


def steps_taken(answers: list[FieldAnswer], limit: int) -> int:
    """The decode steps an extraction piece took: its longest field's answer and the step that ended it."""
    return min(limit, max((len(a.tokens) for a in answers), default=0) + 1)
