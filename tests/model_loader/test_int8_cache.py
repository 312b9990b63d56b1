"""Free prompts' key/value caches in int8 (SEQGPT_WEIGHTS=int8): each head's vector at each position
held as int8 with a scale of its own, read back within half a step, and a sequence's answer its own
in any batch."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from decoding_checks import PROMPTS, decode_steps

from model_loader.decoding import greedy_generate
from model_loader.model.attention import causal_bias, eager, eager_on_int8
from model_loader.model.bloom import alibi_slopes
from model_loader.model.kv_cache import CacheLayout, SequenceCache
from model_loader.text.prompts import complete_free_prompt

LAYOUT = CacheLayout(layers=2, heads=3, head_dim=8, dtype=torch.bfloat16, device=torch.device("cpu"))


@pytest.fixture(scope="module")
def runner(engine_int8):
    return engine_int8.model.runner


@pytest.fixture(scope="module")
def prompt_ids(engine_int8) -> list[list[int]]:
    return [engine_int8.model.tokens.encode(complete_free_prompt(p)) for p in PROMPTS]


def read_back(cache: SequenceCache, layer: int, sequence: int, end: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values as attention sees them: codes times their scales."""
    (keys, values), (key_scales, value_scales) = cache.widened(layer, sequence, end), cache.scales(layer, sequence, end)
    return keys * key_scales, values * value_scales


def within_half_a_step(read: torch.Tensor, written: torch.Tensor) -> bool:
    """Each vector (last dimension) read back within half a step of its scale, ``max|x| / 127``."""
    step = written.float().abs().amax(dim=-1, keepdim=True) / 127
    return bool(((read - written.float()).abs() <= step / 2 * (1 + 1e-5)).all())


def test_the_int8_engine_caches_free_prompts_in_int8_and_the_default_one_in_16_bits(engine_int8, engine):
    int8, default = engine_int8.model.runner.sequence_cache([5, 7]), engine.model.runner.sequence_cache([5, 7])
    assert int8.int8 and int8.keys[0].dtype == torch.int8 and int8.key_scales is not None
    assert not default.int8 and default.keys[0].dtype == engine.model.runner.dtype


def test_an_int8_cache_holds_68_bytes_per_head_and_position_where_16_bits_take_128():
    int8, wide = (SequenceCache.empty(replace(LAYOUT, head_dim=64), [10, 20], int8=flag) for flag in (True, False))

    def held(cache: SequenceCache) -> int:
        tensors = cache.keys + cache.values + (cache.key_scales or []) + (cache.value_scales or [])
        return sum(t.numel() * t.element_size() for t in tensors)

    per_position = 2 * 2 * 3 * 30  # keys and values, 2 layers, 3 heads, 30 positions
    assert held(int8) == per_position * 68 and held(wide) == per_position * 128


def test_an_int8_cache_reads_back_what_a_prompt_and_a_step_wrote_within_half_a_step_of_each_vector():
    cache = SequenceCache.empty(LAYOUT, [4, 6], int8=True)
    generator = torch.Generator().manual_seed(5)
    keys, values = cache.reserve(1, 5)
    prompt = [torch.randn(1, 3, 5, 8, generator=generator).to(torch.bfloat16) * 10 ** layer for layer in range(2)]
    for layer in range(2):
        keys[layer].copy_(prompt[layer])
        values[layer].copy_(-prompt[layer])
    cache.filled(1)
    step_keys = torch.randn(2, 3, 8, generator=generator).to(torch.bfloat16)
    step_keys[1, 2] = 0  # a vector of zeros reads back as zeros, not NaN
    cache.write(0, cache.columns([0, 1], [0, 5]), step_keys, step_keys * 3)
    read_keys, read_values = read_back(cache, 0, 1, 6)
    assert read_keys.dtype == torch.float32
    assert within_half_a_step(read_keys[0, :, :5], prompt[0][0])
    assert within_half_a_step(read_values[0, :, :5], -prompt[0][0])
    assert within_half_a_step(read_keys[0, :, 5], step_keys[1]) and torch.equal(read_keys[0, 2, 5], torch.zeros(8))
    assert within_half_a_step(read_values[0, :, 5], step_keys[1] * 3)
    assert within_half_a_step(read_back(cache, 1, 1, 5)[0][0], prompt[1][0])
    assert within_half_a_step(read_back(cache, 0, 0, 1)[0][0, :, 0], step_keys[0])
    with pytest.raises(ValueError, match="sequence cache full"):
        cache.columns([0], [4])
    with pytest.raises(TypeError, match="widened"):
        cache.stretch(0, 0, 1)
    with pytest.raises(TypeError, match="no scales"):
        SequenceCache.empty(LAYOUT, [2]).scales(0, 0, 1)


def test_a_16bit_cache_reads_back_exactly_what_a_step_wrote():
    cache = SequenceCache.empty(LAYOUT, [3, 3])
    written = torch.randn(2, 3, 8).to(torch.bfloat16)
    cache.write(1, cache.columns([1, 0], [2, 0]), written, -written)
    keys, values = cache.stretch(1, 1, 3)
    assert torch.equal(keys[0, :, 2], written[0]) and torch.equal(values[0, :, 2], -written[0])
    assert torch.equal(cache.widened(1, 0, 1)[0][0, :, 0], written[1].float())


def test_a_decode_step_on_an_int8_cache_gives_a_sequence_the_same_hidden_state_alone_and_beside_others(
    runner, prompt_ids
):
    alone = decode_steps(runner, prompt_ids[:1], 3)
    for others in (1, 2, 4):
        beside = decode_steps(runner, prompt_ids[: 1 + others], 3)
        assert all(torch.equal(a, b) for a, b in zip(alone, beside, strict=True)), f"beside {others} others"


def test_greedy_generation_on_int8_caches_writes_each_prompt_what_it_writes_alone(runner, prompt_ids, engine_int8):
    eos = engine_int8.model.tokens.eos_id
    limits = [1, 5, 12, 9, 7]
    together = greedy_generate(runner, prompt_ids, limits, eos)
    for ids, limit, output in zip(prompt_ids, limits, together, strict=True):
        assert len(output) <= limit
        assert output == greedy_generate(runner, [ids], [limit], eos)[0]


def test_attention_on_int8_codes_with_scales_on_scores_equals_attention_on_the_scaled_vectors():
    generator = torch.Generator().manual_seed(9)
    heads, length = 4, 11
    query = torch.randn(1, heads, 1, 8, generator=generator)
    keys, values = (torch.randint(-127, 128, (1, heads, length, 8), generator=generator).float() for _ in range(2))
    key_scales, value_scales = (torch.rand(1, heads, length, 1, generator=generator) / 50 for _ in range(2))
    bias = causal_bias(alibi_slopes(heads), 1, length)
    expected = eager(query, keys * key_scales, values * value_scales, bias, None, 0.125)
    got = eager_on_int8(query, keys, values, key_scales, value_scales, bias, 0.125)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
