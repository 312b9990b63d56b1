"""An fp32 engine on weights stored in fp16, as SeqGPT-560M's are: the blocks' matrices are held as
fp16 for FBGEMM's fp16 kernel (half_kernel.fp16_blocks_as_read), exactly the stored values with fp32
arithmetic, and the engine decodes what transformers does in fp32 on the same weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from decoding_checks import decode_steps, hf_greedy

from model_loader import Engine, Settings
from model_loader.backends.official import build_reference_model
from model_loader.decoding import greedy_generate
from model_loader.model.bloom_weights import Linear
from model_loader.model.half_kernel import HalfLinear, half_kernel_problem
from model_loader.text.prompts import complete_free_prompt

PROMPTS = [
    "输入: 小米集团今天发布了新款手机，售价3999元。\n分类: 财经，体育，科技\n输出:",
    "输入: 阿里巴巴在杭州发布了2023年第三季度财报。\n抽取: 公司名称，地点，时间\n输出:",
    "温格",
]


@pytest.fixture(scope="module")
def fp16_dir(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo model with its weights saved in fp16 (the tokenizer and marker files copied)."""
    from transformers import BloomForCausalLM

    out = tmp_path_factory.mktemp("fp16-stored") / "seqgpt-demo-fp16"
    shutil.copytree(demo_dir, out, ignore=shutil.ignore_patterns("*.safetensors*"))
    BloomForCausalLM.from_pretrained(demo_dir, dtype=torch.float16).save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="module")
def fp32_engine(fp16_dir: Path):
    eng = Engine(Settings(model_dir=fp16_dir, dtype="float32"))
    eng.load()
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def reference(fp16_dir: Path):
    from transformers import BloomForCausalLM

    return BloomForCausalLM.from_pretrained(fp16_dir, dtype=torch.float32).eval()


def test_blocks_stored_in_fp16_are_held_for_the_fp16_kernel_with_their_exact_values(fp32_engine, reference):
    weights = fp32_engine.model.loaded.weights
    kind = HalfLinear if half_kernel_problem() is None else Linear
    assert all(isinstance(getattr(block, part), kind) for block in weights.blocks for part in ("qkv", "up", "down"))
    assert fp32_engine.model.runner.dtype == torch.float32
    layer = reference.transformer.h[1].mlp.dense_h_to_4h
    assert torch.equal(weights.blocks[1].up.plain_weight, layer.weight)
    assert torch.equal(weights.blocks[1].up.bias, layer.bias)
    # The official settings' backend builds transformers' model from the engine's own matrices.
    rebuilt = build_reference_model(fp32_engine.model.loaded.config, weights)
    assert torch.equal(rebuilt.transformer.h[0].self_attention.query_key_value.weight,
                       reference.transformer.h[0].self_attention.query_key_value.weight)


def test_the_fp32_engine_on_fp16_weights_decodes_what_transformers_decodes(fp32_engine, reference):
    tokens = fp32_engine.model.tokens
    for prompt in PROMPTS:
        ids = tokens.encode(complete_free_prompt(prompt))
        expected = hf_greedy(reference, ids, 16, tokens.eos_id)
        assert greedy_generate(fp32_engine.model.runner, [ids], [16], tokens.eos_id) == [expected]


def test_a_sequence_decodes_bit_for_bit_alike_alone_and_beside_others(fp32_engine):
    runner, tokens = fp32_engine.model.runner, fp32_engine.model.tokens
    prompts = [tokens.encode(complete_free_prompt(p)) for p in PROMPTS]
    alone = decode_steps(runner, prompts[:1], 3)
    for count in (2, 3):
        assert all(torch.equal(a, b) for a, b in zip(alone, decode_steps(runner, prompts[:count], 3), strict=True))


def test_with_the_official_settings_the_fp32_blocks_stay_shared_with_transformers(fp16_dir: Path):
    """The official settings run transformers' model over the engine's own matrices: held as fp16
    for FBGEMM they would need an fp32 copy each, so there they stay fp32 as read."""
    eng = Engine(Settings(model_dir=fp16_dir, dtype="float32", decoding="official"))
    eng.load()
    try:
        weights = eng.model.loaded.weights
        assert all(isinstance(b.qkv, Linear) and b.qkv.weight.dtype == torch.float32 for b in weights.blocks)
        rebuilt = build_reference_model(eng.model.loaded.config, weights)
        shared = rebuilt.transformer.h[0].self_attention.query_key_value.weight
        assert shared.data_ptr() == weights.blocks[0].qkv.weight.data_ptr()
    finally:
        eng.close()
