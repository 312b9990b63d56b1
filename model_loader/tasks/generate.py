"""Free prompts, read top to bottom: plan (token ids, room left) → the backend decodes greedily → result."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidInputError
from ..results import Generation
from ..settings import Settings
from ..text.prompts import complete_free_prompt
from ..text.tokens import Tokens
from .options import GenerateRequest


@dataclass
class GeneratePlan:
    """One free prompt, ready for the model."""

    tokens: list[int]
    max_new_tokens: int  # what fits in the window, at most what was asked
    truncated: bool  # True when the window cut the answer shorter than asked


def plan(tokens: Tokens, settings: Settings, request: GenerateRequest) -> GeneratePlan:
    """Token ids of the prompt (with ``[GEN]`` where it ends at ``输出:``) and the room left to write; a prompt
    that leaves no room is refused here, as only its tokens tell."""
    prompt, max_new_tokens = request.prompt, request.max_new_tokens
    ids = tokens.encode(complete_free_prompt(prompt))
    room = settings.window_tokens - len(ids)
    if room < 1:
        raise InvalidInputError(
            f"the prompt is {len(ids)} tokens; the model reads at most {settings.window_tokens}: "
            "shorten it, or use the classification / extraction tasks, which split long texts"
        )
    return GeneratePlan(ids, min(max_new_tokens, room), max_new_tokens > room)


def result(tokens: Tokens, plan: GeneratePlan, new: list[int]) -> Generation:
    return Generation(
        text=tokens.decode(new), prompt_tokens=len(plan.tokens), new_tokens=len(new), truncated=plan.truncated
    )
