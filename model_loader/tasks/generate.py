"""Free prompts, read top to bottom: plan (checks, token ids, room left) → the backend decodes greedily → result."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidInputError
from ..results import Generation
from ..settings import Settings
from ..text.prompts import check_text, complete_free_prompt
from ..text.tokens import Tokens


@dataclass
class GeneratePlan:
    """One free prompt, ready for the model."""

    tokens: list[int]
    max_new_tokens: int  # what fits in the window, at most what was asked
    truncated: bool  # True when the window cut the answer shorter than asked


def check_length(settings: Settings, max_new_tokens: object) -> int:
    """The number of tokens to write: the setting's limit when not given; InvalidInputError when out of range."""
    limit = settings.max_new_tokens
    if max_new_tokens is None:
        return limit
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or not 1 <= max_new_tokens <= limit:
        raise InvalidInputError(f"max_new_tokens must be a whole number from 1 to {limit}, got {max_new_tokens!r}")
    return max_new_tokens


def plan(tokens: Tokens, settings: Settings, prompt: object, max_new_tokens: object = None) -> GeneratePlan:
    """Token ids of the prompt (with ``[GEN]`` where it ends at ``输出:``) and the room left to write."""
    max_new_tokens = check_length(settings, max_new_tokens)
    prompt = check_text(prompt, settings.max_prompt_chars, what="prompt")
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
