"""Our own decoding on the BLOOM runner: labels scored as token trees, fields decoded in parallel
over the tokens they may use, free prompts decoded greedily.

This is each task's ``run`` step: the tasks build plans and turn answers into results
(``tasks/``); the backend owns the model work between the two."""

from __future__ import annotations

import torch

from ..batching.cache_groups import split_by_sizes
from ..decoding import decode_fields, greedy_generate, score_labels
from ..errors import ModelNotReadyError
from ..model.bloom import BloomRunner
from ..model.kv_cache import PromptCache
from ..results import Classification, Extraction, Generation
from ..settings import Settings
from ..tasks import classify, extract, generate
from ..tasks.classify import ClassifyPlan
from ..tasks.extract import ExtractPlan
from ..tasks.generate import GeneratePlan
from ..tasks.pieces import ClassifyPiece, ExtractPiece
from ..text.tokens import Tokens
from .bench import BenchSwitches


class FastBackend:
    name = "fast"

    def __init__(
        self, runner: BloomRunner, tokens: Tokens, settings: Settings, bench: BenchSwitches | None = None
    ) -> None:
        self.runner = runner
        self.tokens = tokens
        self.settings = settings
        # Benchmarks only (bench.py); an in-process benchmark may set it after loading.
        self.bench = BenchSwitches.from_env() if bench is None else bench

    def classify(self, plans: list[ClassifyPlan]) -> list[Classification]:
        """Score every plan's labels on our runner and turn the scores into results."""
        label_sets = [s for p in plans for s in p.label_sets]
        scores = score_labels(self.runner, label_sets, self.tokens.eos_id)
        per_plan = split_by_sizes(scores, [len(p.label_sets) for p in plans])
        return [classify.result(p, plan_scores) for p, plan_scores in zip(plans, per_plan, strict=True)]

    def extract(self, plans: list[ExtractPlan]) -> list[Extraction]:
        """Decode every field of every plan on our runner and turn the answers into results."""
        requests = [r for p in plans for r in p.requests]
        exact = self.bench.exact_field_tokens
        answers = decode_fields(
            self.runner, requests, self.tokens.stop_ids, self.settings.extract_max_new_tokens, exact
        )
        per_plan = split_by_sizes(answers, [len(p.requests) for p in plans])
        return [extract.result(self.tokens, p, plan_answers) for p, plan_answers in zip(plans, per_plan, strict=True)]

    def generate(self, plans: list[GeneratePlan]) -> list[Generation]:
        """Greedy answers for every plan; with ``bench.ignore_eos`` (benchmarks) each writes all it may."""
        eos = -1 if self.bench.ignore_eos else self.tokens.eos_id  # -1: no token ends a row
        outputs = greedy_generate(self.runner, [p.tokens for p in plans], [p.max_new_tokens for p in plans], eos)
        return [generate.result(self.tokens, p, new) for p, new in zip(plans, outputs, strict=True)]

    def pieces(self, pieces: list[ClassifyPiece | ExtractPiece]) -> list[object]:
        """Raw answers of pieces of one kind (label log-probabilities, or field answers): the same
        decoding as ``classify`` and ``extract``, for a long text queued one piece at a time."""
        classify_pieces = [p for p in pieces if isinstance(p, ClassifyPiece)]
        if classify_pieces:
            return list(score_labels(self.runner, [p.label_set for p in classify_pieces], self.tokens.eos_id))
        requests = [p.request for p in pieces if isinstance(p, ExtractPiece)]
        exact = self.bench.exact_field_tokens
        limit = self.settings.extract_max_new_tokens
        return list(decode_fields(self.runner, requests, self.tokens.stop_ids, limit, exact))

    def check(self) -> None:
        probe = [[self.tokens.eos_id]]
        hidden = self.runner.prefill(probe, PromptCache.left_padded(self.runner.layout, probe))
        # A few rows of the output projection: over the whole vocabulary, the first probe would
        # make the appliance hold the projection that only free prompts need (OutputProjection).
        some = torch.arange(min(256, self.runner.output_weight.shape[0]))
        if not torch.isfinite(self.runner.scores(hidden, some)).all():
            raise ModelNotReadyError("health check failed: the model produced non-finite scores")
