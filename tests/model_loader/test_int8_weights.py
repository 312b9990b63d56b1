"""SEQGPT_WEIGHTS=int8: the setting, the quantized layers, the loaded engine and where the mode is shown."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from model_loader import Settings
from model_loader.errors import SettingsError
from model_loader.model.cpu_dtype import processor_flags
from model_loader.model.int8_weights import (
    ONEDNN_AMX,
    ONEDNN_VNNI,
    WEIGHT_ONLY,
    Int8Linear,
    gpu_refusal,
    int8_kernel,
    onednn_int8_choice,
    onednn_int8_problem,
)
from model_loader.results import EngineStatus
from webui.service.status import format_status

ROOT = Path(__file__).resolve().parents[2]
# The activation encodings oneDNN's product runs exactly here: int8 everywhere (slowly without
# AMX), uint8 offset by 128 where the processor's VNNI kernel serves.
OFFSETS_HERE = [0] + ([128] if onednn_int8_choice() == (ONEDNN_VNNI, None) else [])


def test_weights_setting_defaults_to_16bit_and_reads_int8_from_the_environment():
    assert Settings().weights == "16bit"
    assert Settings.from_env({"SEQGPT_WEIGHTS": " INT8 "}).weights == "int8"


def test_an_unknown_weights_mode_is_refused_naming_the_variable_and_the_choices():
    with pytest.raises(SettingsError, match=r"SEQGPT_WEIGHTS='int4' is not valid: use one of 16bit, int8"):
        Settings(weights="int4")


def test_int8_is_refused_on_a_gpu_with_what_to_set_instead():
    message = gpu_refusal("cuda", "int8")
    assert message is not None and "SEQGPT_WEIGHTS=16bit" in message and "SEQGPT_DEVICE=cpu" in message
    assert gpu_refusal("cpu", "int8") is None and gpu_refusal("cuda", "16bit") is None


def test_quantized_layer_is_within_half_a_step_of_each_weight_and_one_byte_each():
    torch.manual_seed(0)
    weight = torch.randn(96, 64) * 0.02
    layer = Int8Linear.quantize(weight, torch.zeros(96), torch.bfloat16)
    steps = weight.abs().amax(dim=1, keepdim=True) / 127
    assert layer.qweight.dtype == torch.int8 and layer.qweight.numel() == weight.numel()
    assert (layer.scales.float()[:, None] >= steps).all() and (layer.scales.float()[:, None] <= steps * 1.01).all()
    assert ((layer.qweight.float() * layer.scales.float()[:, None] - weight).abs() <= steps * 0.51).all()
    x = torch.randn(5, 64)
    got = layer(x.to(torch.bfloat16)).float()
    expected = F.linear(x, weight)
    assert got.dtype == torch.float32 and ((got - expected).norm() / expected.norm()) < 0.02


def test_a_quantized_layer_gives_each_row_the_same_result_in_any_number_of_rows():
    torch.manual_seed(1)
    layer = Int8Linear.quantize(torch.randn(128, 64), None, torch.bfloat16)
    rows = torch.randn(40, 64).to(torch.bfloat16)
    together = layer(rows)
    for count in (1, 2, 3, 7, 16):
        assert torch.equal(layer(rows[:count]), together[:count])


@pytest.mark.parametrize("offset", OFFSETS_HERE)
def test_a_layer_packed_for_onednn_multiplies_close_to_its_weights_and_each_row_alone_as_among_others(offset):
    """oneDNN's int8 product (where AMX or AVX512-VNNI multiply int8) quantizes each row of
    activations with a scale of its own and sums exactly, so a row's result is its own; as int8
    whatever the processor (oneDNN has a slow generic kernel for them without AMX), as uint8
    offset by 128 where its VNNI kernel sums them exactly."""
    torch.manual_seed(2)
    weight = torch.randn(96, 64) * 0.02
    layer = Int8Linear.quantize(weight, (torch.randn(96) * 0.01).to(torch.bfloat16), torch.bfloat16)
    packed = layer.packed_for_onednn(offset)
    assert packed.packed and not layer.packed
    assert torch.equal(packed.plain_qweight, layer.qweight)
    rows = torch.randn(24, 64)
    rows[3] *= 40  # a row of large values has its own scale, and changes no other row
    together = packed(rows.to(torch.bfloat16))
    expected = F.linear(rows, layer.dequantized().float(), layer.bias.float())
    assert together.dtype == torch.bfloat16
    assert ((together.float() - expected).norm(dim=1) / expected.norm(dim=1)).max() < 0.03
    for count in (1, 2, 3, 7, 16):
        assert torch.equal(packed(rows[:count].to(torch.bfloat16)), together[:count])
    assert torch.equal(packed(rows[3:4].to(torch.bfloat16)), together[3:4])


def test_onednn_int8_is_chosen_only_where_amx_or_vnni_multiply_int8(monkeypatch):
    monkeypatch.setenv("SEQGPT_CPU_FLAGS_EXCLUDE", "amx_int8,avx512_vnni")
    assert "neither AMX-INT8 nor AVX512-VNNI" in onednn_int8_problem()
    flags = processor_flags()
    if "avx512_vnni" in flags:  # AMX capped away (or absent): the VNNI kernel, offset activations
        monkeypatch.setenv("SEQGPT_CPU_FLAGS_EXCLUDE", "amx_int8")
        assert onednn_int8_choice()[0] == ONEDNN_VNNI
        monkeypatch.delenv("SEQGPT_CPU_FLAGS_EXCLUDE")
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_VNNI")
        assert onednn_int8_choice()[0] == ONEDNN_VNNI
    if "amx_int8" in flags:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
        assert onednn_int8_choice()[0] == ONEDNN_AMX


def test_onednn_uint8_products_that_saturate_without_vnni_are_refused_at_load():
    """Held below VNNI, oneDNN's uint8-by-int8 kernels saturate their sums (seen on a Zen 4 class
    EPYC): the probe must see it and leave int8 to the weight-only kernel. Where the processor has
    no AVX512-VNNI the flags alone decide the same."""
    probe = (
        "from model_loader.model.int8_weights import int8_kernel, onednn_int8_problem; "
        "print(int8_kernel()); print(onednn_int8_problem())"
    )
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "SEQGPT_CPU_FLAGS_EXCLUDE": "amx_int8"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    kernel, problem = done.stdout.strip().splitlines()
    assert kernel == WEIGHT_ONLY
    if "avx512_vnni" in processor_flags():
        assert "differed from the exact sums" in problem and "ONEDNN_MAX_CPU_ISA=AVX2" in problem


def test_an_int8_engine_holds_int8_blocks_and_output_and_says_so(engine_int8):
    weights = engine_int8.model.loaded.weights
    assert engine_int8.status.weights == "int8" and engine_int8.model.loaded.weights_mode == "int8"
    assert all(isinstance(block.up, Int8Linear) and isinstance(block.qkv, Int8Linear) for block in weights.blocks)
    # Held as the process's kernel reads them (packed for oneDNN where AMX or VNNI multiply int8).
    assert all(block.down.packed == (int8_kernel() != WEIGHT_ONLY) for block in weights.blocks)
    engine_int8.generate("输入: 你好\n输出:", 2)
    output = engine_int8.model.runner.output
    assert output.resident and all(isinstance(part, Int8Linear) for part in output._slices)
    assert all(part.packed == (int8_kernel() != WEIGHT_ONLY) for part in output._slices)
    engine_int8.health_check()


def test_the_status_bar_shows_int8_weights_and_not_the_default():
    ready = EngineStatus(state="ready", device="cpu", dtype="bfloat16", model_dir="/m")
    assert "权重 Weights: int8" in format_status(EngineStatus(**{**ready.__dict__, "weights": "int8"}), None).text
    assert "Weights" not in format_status(ready, None).text


def test_blocks_quantized_as_they_are_read_equal_blocks_quantized_after_a_16bit_load(engine_int8, engine):
    """Loading quantizes each matrix as soon as it is read (so the 16-bit blocks are never held
    all at once); that must give exactly what quantizing the loaded 16-bit layers gives."""
    compute = engine_int8.model.runner.dtype
    assert engine.model.runner.dtype == compute
    for read, loaded in zip(engine_int8.model.loaded.weights.blocks, engine.model.loaded.weights.blocks, strict=True):
        for part in ("qkv", "dense", "up", "down"):
            plain = getattr(loaded, part)
            expected = Int8Linear.quantize(plain.plain_weight, plain.bias, compute)
            got = getattr(read, part)
            assert torch.equal(got.plain_qweight, expected.qweight) and torch.equal(got.scales, expected.scales)
            assert torch.equal(got.bias, expected.bias)


def test_the_int8_projection_quantized_a_few_rows_at_a_time_equals_it_quantized_whole(engine_int8, monkeypatch):
    from model_loader.model import bloom_weights

    runner = engine_int8.model.runner
    hidden = torch.randn(2, runner.hidden_size).to(runner.dtype)
    vocab = runner.output_weight.shape[0]
    monkeypatch.setattr(bloom_weights, "QUANTIZE_ROWS", vocab // 7)  # parts of all sizes, the last short
    by_parts = bloom_weights.OutputProjection(runner.weights, runner.dtype, pack=False, int8=True)
    by_parts_logits = by_parts(hidden)
    monkeypatch.setattr(bloom_weights, "QUANTIZE_ROWS", bloom_weights.OUTPUT_SLICE_ROWS)
    whole = bloom_weights.OutputProjection(runner.weights, runner.dtype, pack=False, int8=True)
    assert torch.equal(by_parts_logits, whole(hidden))
    assert len(by_parts._slices) == len(whole._slices)
    for a, b in zip(by_parts._slices, whole._slices, strict=True):
        assert torch.equal(a.plain_qweight, b.plain_qweight) and torch.equal(a.scales, b.scales)
