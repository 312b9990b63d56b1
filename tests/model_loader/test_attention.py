"""Choosing the attention kernel at load: each candidate is checked against eager on the device, and a
wrong or failing one is passed over, with the reason in the status and the log."""

from __future__ import annotations

import logging

import pytest
import torch
from decoding_checks import decode_steps
from test_memory import settled_rss_mb

from model_loader.decoding import LabelSet, greedy_generate, score_labels
from model_loader.model.attention import (
    PADDED_POSITIONS,
    QUERY_SLICE,
    AttentionChoice,
    candidates_for,
    causal_bias,
    check_kernel,
    check_step_kernel,
    choose_attention,
    choose_step_attention,
    eager,
    flash,
    padded_bias,
    sdpa,
    sdpa_16bit,
    step_candidates,
    step_sdpa,
    step_widened,
)
from model_loader.model.bloom import BloomRunner, alibi_slopes
from model_loader.model.cpu_dtype import onednn_runs_amx, processor_flags, sdpa_on_16bit
from model_loader.text.prompts import CLASSIFY, build_prompt, complete_free_prompt

SLOPES = alibi_slopes(16)
HEAD_DIM = 64


def without_alibi(query, keys, values, bias, slopes, scale):
    """Deliberately wrong: causal attention that forgets BLOOM's position bias."""
    causal = torch.where(bias > torch.finfo(torch.float32).min, 0.0, torch.finfo(torch.float32).min)
    return eager(query, keys, values, causal, slopes, scale)


def top_left_causal(query, keys, values, bias, slopes, scale):
    """Deliberately wrong only for fewer queries than keys: it lines them up with the first keys."""
    q, k = query.shape[2], keys.shape[2]
    if q < k:
        return eager(query, keys[:, :, :q], values[:, :, :q], causal_bias(slopes, q, q), slopes, scale)
    return eager(query, keys, values, bias, slopes, scale)


def broken(query, keys, values, bias, slopes, scale):
    raise RuntimeError("no kernel image is available for execution on the device")


def test_on_the_cpu_the_kernel_the_processor_calls_for_is_chosen_and_reported(engine, caplog):
    dtype = str(engine.model.runner.dtype).removeprefix("torch.")
    expected = "sdpa-16bit" if sdpa_on_16bit(dtype, processor_flags()) else "eager"
    assert engine.model.runner.attention.name == expected
    assert engine.status.attention == expected
    with caplog.at_level(logging.INFO, logger="model_loader.model.attention"):
        choose_attention(SLOPES, HEAD_DIM, torch.float32)
    assert "attention: eager" in caplog.text


def test_on_the_cpu_sdpa_on_16bit_operands_is_tried_only_where_amx_multiplies_bf16(monkeypatch):
    cpu = torch.device("cpu")
    amx = "amx_bf16" in processor_flags() and onednn_runs_amx()
    assert candidates_for(cpu, torch.bfloat16) == (("sdpa-16bit", "eager") if amx else ("eager",))
    assert candidates_for(cpu, torch.float32) == ("eager",) and candidates_for(cpu, torch.float16) == ("eager",)
    monkeypatch.setenv("SEQGPT_CPU_FLAGS_EXCLUDE", "amx_bf16")
    assert candidates_for(cpu, torch.bfloat16) == ("eager",)
    assert choose_attention(SLOPES, HEAD_DIM, torch.bfloat16).name == "eager"
    assert candidates_for(torch.device("meta"), torch.float16) == ("flash-attn", "sdpa", "eager")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
def test_sdpa_on_16bit_operands_passes_the_check_against_eager_on_the_cpu(dtype):
    assert check_kernel(sdpa_16bit, SLOPES, HEAD_DIM, dtype) is None


def test_a_kernel_that_ignores_alibi_is_rejected_and_the_next_candidate_used(caplog):
    with caplog.at_level(logging.INFO, logger="model_loader.model.attention"):
        choice = choose_attention(SLOPES, HEAD_DIM, torch.float32, [("no-alibi", without_alibi), "eager"])
    assert choice.name == "eager" and choice.kernel is eager
    ((name, why),) = choice.rejected
    assert name == "no-alibi" and "differs from eager" in why
    assert "no-alibi" in choice.describe() and "differs from eager" in choice.describe()
    assert "attention kernel no-alibi not used: differs from eager" in caplog.text


def test_a_kernel_wrong_only_for_the_last_query_alone_is_rejected():
    assert "differs from eager" in check_kernel(top_left_causal, SLOPES, HEAD_DIM, torch.float32)


def causal_only(query, keys, values, bias, slopes, scale):
    """Deliberately wrong for a token tree: it applies BLOOM's causal ALiBi bias, not the one given."""
    q, k = query.shape[2], keys.shape[2]
    return eager(query, keys, values, causal_bias(slopes, q, k), slopes, scale)


def test_a_kernel_that_applies_only_a_causal_mask_is_rejected_where_any_bias_is_asked_of_it():
    assert check_kernel(causal_only, SLOPES, HEAD_DIM, torch.float32) is None
    assert "differs from eager" in check_kernel(causal_only, SLOPES, HEAD_DIM, torch.float32, any_bias=True)
    choice = choose_attention(SLOPES, HEAD_DIM, torch.float32, [("sdpa", causal_only), "eager"])
    assert choice.name == "eager" and "differs from eager" in choice.rejected[0][1]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_sdpa_kernels_pass_the_check_of_any_bias_on_the_cpu(dtype):
    assert check_kernel(sdpa, SLOPES, HEAD_DIM, dtype, any_bias=True) is None
    assert check_kernel(sdpa_16bit, SLOPES, HEAD_DIM, dtype, any_bias=True) is None


def test_labels_scored_on_sdpa_on_16bit_operands_match_eager_within_bf16_rounding(engines_by_dtype):
    """Scoring labels runs a prompt and its labels as one token tree, through the kernel chosen at
    load where it applies any bias: the labels' log-probabilities must be eager's, but for rounding."""
    model = engines_by_dtype["bfloat16"].model
    weights, tokens = model.loaded.weights, model.tokens
    on_eager = BloomRunner(weights, AttentionChoice("eager", eager))
    on_sdpa = BloomRunner(weights, AttentionChoice("sdpa-16bit", sdpa_16bit))
    text = "甲方：北京星河科技有限公司，乙方：上海云帆信息技术有限公司，合同金额人民币一百万元整。" * 3
    labels = ["财经", "体育", "科技", "财经新闻", "体育新闻", "科技新闻"]  # later ones share tokens with earlier
    request = LabelSet(tokens.encode(build_prompt(text, CLASSIFY, labels)), [tokens.encode(x) for x in labels])
    (eager_scores,), (sdpa_scores,) = score_labels(on_eager, [request], tokens.eos_id), score_labels(
        on_sdpa, [request], tokens.eos_id
    )
    assert eager_scores != sdpa_scores  # the tree did run on the other kernel
    assert torch.allclose(torch.tensor(sdpa_scores), torch.tensor(eager_scores), atol=0.05)


def test_padded_bias_hides_the_added_keys_and_keeps_the_real_ones():
    bias = causal_bias(SLOPES, 37, 37)
    padded = padded_bias(bias)
    assert padded.shape == (1, 16, PADDED_POSITIONS, PADDED_POSITIONS)
    assert torch.equal(padded[:, :, :37, :37], bias)
    assert (padded[:, :, :37, 37:] == torch.finfo(torch.float32).min).all()
    assert torch.isfinite(padded[:, :, 37:]).all()  # the added queries see keys, so give no NaN
    assert padded_bias(padded) is padded


def test_sdpa_on_16bit_operands_keeps_no_memory_for_each_new_prompt_length():
    """The fused kernel keeps state for each shape it meets, for good (PADDED_POSITIONS): without
    the padding, 80 prompt lengths here kept 30 MB on a Xeon with AMX; with it, nothing."""

    def attend(length: int) -> None:
        query, keys, values = (torch.randn(1, 16, length, HEAD_DIM).to(torch.bfloat16) for _ in range(3))
        sdpa_16bit(query, keys, values, causal_bias(SLOPES, length, length), SLOPES, 0.125)

    attend(700)
    before = settled_rss_mb()
    for length in range(300, 700, 5):
        attend(length)
    assert settled_rss_mb() - before < 10


def test_a_kernel_that_raises_is_rejected_with_its_error():
    choice = choose_attention(SLOPES, HEAD_DIM, torch.float32, [("broken", broken), ("sdpa", sdpa)])
    assert choice.name == "sdpa"
    why = "raised RuntimeError: no kernel image is available for execution on the device"
    assert choice.rejected == (("broken", why),)


def test_when_every_candidate_fails_eager_runs():
    choice = choose_attention(SLOPES, HEAD_DIM, torch.float32, [("no-alibi", without_alibi), ("broken", broken)])
    assert choice.name == "eager" and [name for name, _ in choice.rejected] == ["no-alibi", "broken"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sdpa_passes_the_check_against_eager_on_the_cpu(dtype):
    assert check_kernel(sdpa, SLOPES, HEAD_DIM, dtype) is None


def test_flash_attn_is_passed_over_where_it_cannot_run():
    problem = check_kernel(flash, SLOPES, HEAD_DIM, torch.float16)
    if problem is None:
        pytest.skip("flash-attn runs here: the GPU tests compare it")
    assert problem.startswith(("not installed", "raised"))


def test_a_runner_on_the_sdpa_kernel_generates_the_tokens_eager_generates(engine_fp32):
    weights, tokens = engine_fp32.model.loaded.weights, engine_fp32.model.tokens
    on_sdpa = BloomRunner(weights, AttentionChoice("sdpa", sdpa))
    prompts = [tokens.encode(complete_free_prompt(p)) for p in ("输入: 温格的球队\n分类: 体育，财经\n输出:", "温格")]
    eager_tokens = greedy_generate(engine_fp32.model.runner, prompts, [12, 12], tokens.eos_id)
    assert greedy_generate(on_sdpa, prompts, [12, 12], tokens.eos_id) == eager_tokens


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
def test_eager_taking_queries_in_slices_gives_the_numbers_of_all_queries_at_once(dtype):
    length = 2 * QUERY_SLICE + 29
    generator = torch.Generator().manual_seed(7)
    query, keys, values = (torch.randn((1, 16, length, HEAD_DIM), generator=generator).to(dtype) for _ in range(3))
    bias = causal_bias(SLOPES, length, length)
    scores = torch.add(bias, torch.matmul(query, keys.transpose(-1, -2)), alpha=0.125)
    all_at_once = torch.matmul(torch.softmax(scores, dim=-1).to(dtype), values)
    assert torch.equal(eager(query, keys, values, bias, SLOPES, 0.125), all_at_once)


# ---- decode steps: one query over a sequence's cache ---------------------------------------------


def step_without_alibi(query, keys, values, bias, scale):
    """Deliberately wrong: a decode step that forgets BLOOM's position bias."""
    return step_widened(query, keys, values, torch.zeros_like(bias), scale)


def step_by_place(query, keys, values, bias, scale):
    """Deliberately wrong: a result that depends on where the sequence lies in the cache."""
    return step_widened(query, keys, values, bias, scale) + keys.storage_offset() * 1e-6


def step_broken(query, keys, values, bias, scale):
    raise RuntimeError("attn_mask dtype must match the query's")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_sdpa_on_the_cache_passes_the_step_check_on_the_cpu_in_every_dtype(dtype, caplog):
    assert check_step_kernel(step_sdpa, SLOPES, HEAD_DIM, dtype) is None
    with caplog.at_level(logging.INFO, logger="model_loader.model.attention"):
        name, kernel = choose_step_attention(SLOPES, HEAD_DIM, dtype, [("sdpa", step_sdpa)])
    assert (name, kernel) == ("sdpa", step_sdpa)
    assert "decode steps' attention: sdpa" in caplog.text


def test_on_the_cpu_sdpa_is_tried_for_decode_steps_only_where_amx_multiplies_bf16(monkeypatch):
    cpu = torch.device("cpu")
    amx = "amx_bf16" in processor_flags() and onednn_runs_amx()
    assert step_candidates(cpu, torch.bfloat16) == ((("sdpa", step_sdpa),) if amx else ())
    assert step_candidates(cpu, torch.float32) == () and step_candidates(cpu, torch.float16) == ()
    monkeypatch.setenv("SEQGPT_CPU_FLAGS_EXCLUDE", "amx_bf16")
    assert step_candidates(cpu, torch.bfloat16) == ()
    assert choose_step_attention(SLOPES, HEAD_DIM, torch.bfloat16) == ("widened eager", step_widened)
    assert step_candidates(torch.device("meta"), torch.float16) == (("sdpa", step_sdpa),)


def test_the_engine_decodes_with_the_step_kernel_its_processor_calls_for(engine):
    runner = engine.model.runner
    dtype = str(runner.dtype).removeprefix("torch.")
    expected = ("sdpa", step_sdpa) if sdpa_on_16bit(dtype, processor_flags()) else ("widened eager", step_widened)
    assert (runner.step_attention_name, runner.step_attention) == expected


@pytest.mark.parametrize(
    ("kernel", "why"),
    [
        (step_without_alibi, "differs from the widened products"),
        (step_by_place, "another result at another place in the cache"),
        (step_broken, "raised RuntimeError: attn_mask dtype must match"),
    ],
)
def test_a_wrong_or_failing_step_kernel_is_passed_over_for_the_widened_products(kernel, why, caplog):
    assert why in check_step_kernel(kernel, SLOPES, HEAD_DIM, torch.bfloat16)
    with caplog.at_level(logging.INFO, logger="model_loader.model.attention"):
        name, chosen = choose_step_attention(SLOPES, HEAD_DIM, torch.bfloat16, [("candidate", kernel)])
    assert (name, chosen) == ("widened eager", step_widened)
    assert "candidate not used" in caplog.text and why in caplog.text


def test_sdpa_on_a_16bit_cache_stays_within_rounding_of_the_widened_products():
    """Its sums are fp32 ones of the same 16-bit operands, so it differs from the fp32 products by
    about the output's own 16-bit rounding, not more."""
    generator = torch.Generator().manual_seed(7)
    length = 300
    query, keys, values = (
        (2 * torch.randn((1, 16, n, HEAD_DIM), generator=generator)).bfloat16() for n in (1, length, length)
    )
    bias = causal_bias(SLOPES, 1, length)
    exact = step_widened(query, keys, values, bias, HEAD_DIM**-0.5)
    got = step_sdpa(query, keys, values, bias, HEAD_DIM**-0.5)
    assert got.dtype == torch.bfloat16
    rounding = (exact.bfloat16().float() - exact).norm()
    assert (got.float() - exact).norm() <= 1.5 * rounding


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
def test_a_decode_step_gives_a_sequence_the_same_hidden_state_alone_and_beside_others_in_every_dtype(
    engines_by_dtype, dtype
):
    runner = engines_by_dtype[dtype].model.runner
    prompts = [list(range(5, 5 + n)) for n in (23, 9, 31, 17)]
    alone = decode_steps(runner, prompts[:1], 3)
    for others in (1, 3):
        beside = decode_steps(runner, prompts[: 1 + others], 3)
        assert all(torch.equal(a, b) for a, b in zip(alone, beside, strict=True)), f"beside {others} others"
