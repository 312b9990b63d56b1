"""Classification, read top to bottom: plan (pieces, token ids) → the backend scores the labels → result.

``plan`` runs in the caller's thread; the backend (``backends/``) on the model worker, for every plan of a batch
at once; ``result`` turns its label scores into a ``Classification``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..decoding import LabelSet
from ..results import Classification
from ..settings import Settings
from ..text.prompts import CLASSIFY, build_prompt
from ..text.splitting import Piece, window_pieces
from ..text.tokens import Tokens
from .options import ClassifyRequest


@dataclass
class ClassifyPlan:
    """One classification request, ready for the model: one label set to score per piece of the text."""

    text: str
    labels: list[str]
    pieces: list[Piece]
    label_sets: list[LabelSet]


def plan(tokens: Tokens, settings: Settings, request: ClassifyRequest) -> ClassifyPlan:
    """Turn a checked request into token ids, split to fit the window."""
    text, labels = request.text, list(request.labels)
    label_tokens = [tokens.label_ids(label) for label in labels]
    answer = max(len(t) for t in label_tokens) + 1
    pieces = window_pieces(text, CLASSIFY, labels, answer, tokens.count_tokens, settings)
    sets = [
        LabelSet(tokens.encode(build_prompt(text[p.start : p.end], CLASSIFY, labels)), label_tokens) for p in pieces
    ]
    return ClassifyPlan(text, labels, pieces, sets)


def result(plan: ClassifyPlan, logprobs: list[list[float]]) -> Classification:
    """Average the pieces' label distributions, weighting each piece by its length."""
    combined = [0.0] * len(plan.labels)
    total = sum(p.end - p.start for p in plan.pieces)
    for piece, scores in zip(plan.pieces, logprobs, strict=True):
        probabilities = torch.softmax(torch.tensor(scores, dtype=torch.float64), dim=0).tolist()
        weight = (piece.end - piece.start) / total
        combined = [c + weight * p for c, p in zip(combined, probabilities, strict=True)]
    norm = sum(combined)
    by_label = {label: value / norm for label, value in zip(plan.labels, combined, strict=True)}
    best = max(plan.labels, key=lambda label: by_label[label])
    return Classification(label=best, scores=by_label, pieces=len(plan.pieces))
