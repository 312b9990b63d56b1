"""The engine on a CUDA device in fp16, and the attention kernels (flash-attn, SDPA, eager) against each
other there: runs only where a GPU exists (``pytest -m gpu``)."""

from __future__ import annotations

import math

import pytest
import torch

from model_loader import Engine, Settings
from model_loader.decoding import greedy_generate
from model_loader.model.attention import KERNELS, AttentionChoice, check_kernel, choose_attention
from model_loader.model.bloom import BloomRunner, alibi_slopes
from model_loader.model.kv_cache import PromptCache
from model_loader.text.prompts import complete_free_prompt

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

PROMPTS = [
    "输入: 小米集团今天发布了新款手机，售价3999元。\n分类: 财经，体育，科技\n输出:",
    "输入: 阿里巴巴在杭州发布了2023年第三季度财报。\n抽取: 公司名称，地点，时间\n输出:",
    "温格",
]


@pytest.fixture(scope="module")
def cuda_engine(demo_dir):
    engine = Engine(Settings(model_dir=demo_dir, device="cuda"))
    engine.load()
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def hf_cuda_fp16(demo_dir):
    from transformers import BloomForCausalLM

    model = BloomForCausalLM.from_pretrained(demo_dir, local_files_only=True, dtype=torch.float16).to("cuda")
    return model.eval()


def test_cuda_engine_loads_in_float16_and_passes_its_health_check(cuda_engine):
    assert cuda_engine.status.ready
    assert cuda_engine.status.device == "cuda" and cuda_engine.status.dtype == "float16"
    assert cuda_engine.model.runner.device.type == "cuda"
    cuda_engine.health_check()


def test_cuda_classify_answers_a_given_label_with_scores_summing_to_one(cuda_engine, headline_texts):
    for labels in (["财经", "财经新闻", "体育"], ["sports"], ["正面", "负面", "中性", "科技 tech"]):
        result = cuda_engine.classify(headline_texts[0], labels)
        assert result.label in labels
        assert math.isclose(sum(result.scores.values()), 1.0, abs_tol=1e-6)


def test_cuda_extract_returns_mentions_that_index_the_text(cuda_engine, entity_texts, long_chinese_text):
    for text in [*entity_texts[:3], long_chinese_text]:
        result = cuda_engine.extract(text, ["人名", "地址", "组织机构"])
        assert list(result.fields) == ["人名", "地址", "组织机构"]
        for mentions in result.fields.values():
            assert all(text[m.start : m.end] == m.text for m in mentions)
    assert result.split


def test_cuda_runner_logits_match_transformers_within_fp16_tolerance(cuda_engine, hf_cuda_fp16):
    runner, tokens = cuda_engine.model.runner, cuda_engine.model.tokens
    prompts = [tokens.encode(complete_free_prompt(p)) for p in PROMPTS]
    last = runner.prefill(prompts, PromptCache.left_padded(runner.layout, prompts))  # left-padded batch
    ours = runner.scores(last)
    for row, ids in enumerate(prompts):
        with torch.inference_mode():
            reference = hf_cuda_fp16(input_ids=torch.tensor([ids], device="cuda")).logits[0, -1].float()
        scale = reference.abs().max().item()
        torch.testing.assert_close(ours[row], reference, atol=2e-2 * scale, rtol=2e-2)


def test_cuda_greedy_generation_runs_and_respects_the_limit(cuda_engine):
    runner, tokens = cuda_engine.model.runner, cuda_engine.model.tokens
    prompts = [tokens.encode(complete_free_prompt(p)) for p in PROMPTS]
    outputs = greedy_generate(runner, prompts, [8, 3, 16], tokens.eos_id)
    assert [len(o) <= limit for o, limit in zip(outputs, [8, 3, 16], strict=True)] == [True] * 3
    assert all(0 <= t < runner.output_weight.shape[0] for o in outputs for t in o)


# ---- attention kernels -------------------------------------------------------------------------


def _flash_attn_installed() -> bool:
    try:
        import flash_attn  # noqa: F401
    except ImportError:
        return False
    return True


KERNEL_NAMES = [
    pytest.param(
        "flash-attn", marks=pytest.mark.skipif(not _flash_attn_installed(), reason="flash-attn is not installed")
    ),
    "sdpa",
    "eager",
]


@pytest.mark.parametrize("name", KERNEL_NAMES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_each_kernel_passes_its_check_against_eager_on_the_gpu(name, dtype):
    slopes = alibi_slopes(16).to("cuda")
    assert check_kernel(KERNELS[name], slopes, 64, dtype) is None


def test_the_gpu_runs_the_fastest_kernel_that_passes(cuda_engine):
    choice = choose_attention(alibi_slopes(16).to("cuda"), 64, torch.float16)
    assert choice.name == ("flash-attn" if _flash_attn_installed() else "sdpa")
    assert cuda_engine.model.runner.attention.name == choice.name
    assert cuda_engine.status.attention.startswith(choice.name)


@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_each_kernel_gives_the_logits_and_tokens_of_eager_on_the_gpu(cuda_engine, name):
    weights, tokens = cuda_engine.model.loaded.weights, cuda_engine.model.tokens
    eager_runner = BloomRunner(weights, AttentionChoice("eager", KERNELS["eager"]))
    runner = BloomRunner(weights, AttentionChoice(name, KERNELS[name]))
    prompts = [tokens.encode(complete_free_prompt(p)) for p in PROMPTS]
    expected = eager_runner.prefill(prompts, PromptCache.left_padded(eager_runner.layout, prompts))
    got = runner.prefill(prompts, PromptCache.left_padded(runner.layout, prompts))
    expected, got = eager_runner.scores(expected), runner.scores(got)
    torch.testing.assert_close(got, expected, atol=2e-2 * expected.abs().max().item(), rtol=2e-2)
    assert (got.argmax(-1) == expected.argmax(-1)).all()
