"""Our own decoding on the BLOOM runner: labels scored as token trees, fields decoded in parallel
over the tokens they may use, free prompts decoded greedily."""

from __future__ import annotations

import torch

from ..bloom import BloomRunner
from ..errors import ModelNotReadyError
from ..results import Classification, Extraction, Generation
from ..settings import Settings
from ..tasks import classify, extract, generate
from ..tasks.classify import ClassifyPlan
from ..tasks.extract import ExtractPlan
from ..tasks.generate import GeneratePlan
from ..tokens import Tokens


class FastBackend:
    name = "fast"

    def __init__(self, runner: BloomRunner, tokens: Tokens, settings: Settings) -> None:
        self.runner = runner
        self.tokens = tokens
        self.settings = settings

    def classify(self, plans: list[ClassifyPlan]) -> list[Classification]:
        return classify.run(self.runner, self.tokens, plans)

    def extract(self, plans: list[ExtractPlan]) -> list[Extraction]:
        return extract.run(self.runner, self.tokens, self.settings, plans)

    def generate(self, plans: list[GeneratePlan]) -> list[Generation]:
        return generate.run(self.runner, self.tokens, plans, ignore_eos=bool(self.settings.generate_ignore_eos))

    def check(self) -> None:
        _, hidden = self.runner.prefill([[self.tokens.eos_id]])
        # A few rows of the output projection: over the whole vocabulary, the first probe would
        # make the appliance hold the projection that only free prompts need (OutputProjection).
        some = torch.arange(min(256, self.runner.output_weight.shape[0]))
        if not torch.isfinite(self.runner.scores(hidden, some)).all():
            raise ModelNotReadyError("health check failed: the model produced non-finite scores")
