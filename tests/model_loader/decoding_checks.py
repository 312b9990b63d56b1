"""What the decoding tests compare: transformers' greedy answer, and our runner's decode steps."""

from __future__ import annotations

import torch

from model_loader.model.bloom import BloomRunner
from model_loader.model.kv_cache import SequenceCache


def hf_greedy(hf_model, ids: list[int], max_new_tokens: int, eos_id: int) -> list[int]:
    """The tokens transformers' ``generate(do_sample=False)`` writes after ``ids``."""
    with torch.inference_mode():
        out = hf_model.generate(
            input_ids=torch.tensor([ids]),
            attention_mask=torch.ones((1, len(ids)), dtype=torch.long),
            do_sample=False,
            num_beams=1,
            max_new_tokens=max_new_tokens,
            eos_token_id=eos_id,
            pad_token_id=eos_id,
        )
    return out[0, len(ids) :].tolist()


def decode_steps(runner: BloomRunner, prompts: list[list[int]], steps: int) -> list[torch.Tensor]:
    """The first sequence's final hidden state at each of ``steps`` decode steps, every sequence
    fed the same token."""
    cache = SequenceCache.empty(runner.layout, [len(p) + steps for p in prompts])
    runner.prefill(prompts, cache)
    fed = torch.full((len(prompts),), 7, dtype=torch.long)
    return [runner.extend(fed, cache, list(range(len(prompts))))[0].clone() for _ in range(steps)]
