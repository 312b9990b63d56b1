"""Benchmark-only ways of decoding, so that both sides of a comparison do equal work on random weights.

Never a user setting: not in ``Settings``, the settings file or docs/settings.md. A benchmark in the
same process sets ``FastBackend.bench``; one that starts the whole appliance (scripts/bench_jobs.py,
scripts/bench_replicas.py, the busy-server tests) sets the variables ``from_env`` reads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import SettingsError

EXACT_TOKENS_VARIABLE = "SEQGPT_EXTRACT_EXACT_TOKENS"
IGNORE_EOS_VARIABLE = "SEQGPT_GENERATE_IGNORE_EOS"
# Named SEQGPT_* so that they reach Ray Serve replicas with the settings (serving/local.py).
VARIABLES = (EXACT_TOKENS_VARIABLE, IGNORE_EOS_VARIABLE)


@dataclass(frozen=True)
class BenchSwitches:
    """How the fast backend decodes under a benchmark; the defaults are how it always decodes."""

    exact_field_tokens: int | None = None  # every extracted field writes exactly this many tokens, ignoring its end
    ignore_eos: bool = False  # free prompts write every token they may (end-of-sequence ends nothing)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BenchSwitches:
        env = os.environ if environ is None else environ
        exact = env.get(EXACT_TOKENS_VARIABLE, "").strip() or "0"
        ignore = env.get(IGNORE_EOS_VARIABLE, "").strip() or "0"
        if not exact.isdigit() or ignore not in ("0", "1"):
            raise SettingsError(
                f"{EXACT_TOKENS_VARIABLE}={exact!r} / {IGNORE_EOS_VARIABLE}={ignore!r}: benchmark switches take a "
                "whole number of tokens and 0 or 1; unset them outside benchmarks"
            )
        return cls(int(exact) or None, ignore == "1")
