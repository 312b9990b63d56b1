"""Every x86-64 CPU works: the dtype rule and the packed weight layout choose only what the processor
(and oneDNN in this process) can run; anything else falls back to the plain layout with the same results.
SEQGPT_CPU_FLAGS_EXCLUDE and ONEDNN_MAX_CPU_ISA let any machine take the paths of a lesser one."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model_loader import Engine, Settings
from model_loader.model.bloom_weights import Linear
from model_loader.model.cpu_dtype import (
    auto_cpu_dtype,
    cpu_dtype,
    onednn_half_dtypes,
    packing_problem,
    processor_flags,
)

HERE = Path(__file__).resolve().parent
# What a processor without AVX512-FP16 looks like to this module (an AMD Zen 4, say).
NO_FP16 = "avx512_fp16,avx_ne_convert,amx_fp16"
ZEN4 = {"avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16", "avx512_vnni"}


def test_excluded_flags_are_hidden_from_the_flags_read_here():
    everything = processor_flags({})
    hidden = processor_flags({"SEQGPT_CPU_FLAGS_EXCLUDE": " AVX512_FP16, amx_bf16 ,avx2"})
    assert hidden == everything - {"avx512_fp16", "amx_bf16", "avx2"}


@pytest.mark.parametrize(
    ("flags", "onednn", "dtype"),
    [
        ("avx512_bf16 avx512_fp16", {"bfloat16", "float16"}, "float16"),
        ("avx512_bf16 avx512_fp16", {"bfloat16"}, "bfloat16"),  # oneDNN capped below AVX512-FP16
        ("avx512_bf16 avx512_fp16", set(), "float32"),  # ONEDNN_MAX_CPU_ISA=AVX2
        ("amx_bf16 avx512_bf16", set(), "float32"),
    ],
)
def test_the_dtype_rule_picks_a_half_type_only_where_onednn_runs_it(flags, onednn, dtype):
    assert cpu_dtype(set(flags.split()), onednn) == dtype


@pytest.mark.parametrize(
    ("dtype", "flags", "expected"),
    [
        ("float16", ZEN4, "avx512_fp16 or avx_ne_convert"),
        ("float16", ZEN4 | {"avx512_fp16"}, None),
        ("float16", {"avx2", "avx_ne_convert"}, None),
        ("bfloat16", ZEN4, None),
        ("bfloat16", {"avx2", "fma"}, "avx512bw+avx512dq+avx512vl or avx_ne_convert"),
        ("float32", ZEN4, "only half-precision"),
    ],
)
def test_packing_asks_for_the_instructions_onednn_needs(dtype, flags, expected):
    problem = packing_problem(dtype, flags, {"bfloat16", "float16"})
    assert problem is None if expected is None else expected in problem


def test_packing_is_refused_where_onednn_is_capped_below_the_dtype():
    assert "ONEDNN_MAX_CPU_ISA" in packing_problem("float16", ZEN4 | {"avx512_fp16"}, {"bfloat16"})


def test_hiding_avx512_fp16_makes_the_rule_leave_float16(monkeypatch):
    monkeypatch.setenv("SEQGPT_CPU_FLAGS_EXCLUDE", NO_FP16)
    assert auto_cpu_dtype() in ("bfloat16", "float32")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bfloat16", "float16"])
def test_a_matrix_whose_packing_the_processor_lacks_is_not_packed_and_says_why(dtype, monkeypatch):
    monkeypatch.setenv("SEQGPT_CPU_FLAGS_EXCLUDE", "avx512_fp16,avx_ne_convert,avx512bw")
    linear = Linear(torch.randn(8, 16).to(dtype), torch.zeros(8).to(dtype))
    assert not linear.packs_exactly()
    assert "lacks" in linear.packing_problem() and "SEQGPT_CPU_FLAGS_EXCLUDE" in linear.packing_problem()


def test_weights_fall_back_to_the_plain_layout_with_identical_answers(engines_by_dtype, demo_dir, monkeypatch, caplog):
    """fp16 with AVX512-FP16 hidden: the weights stay plain, the reason is logged once, and every
    answer equals the packed engine's bit for bit."""
    packed = engines_by_dtype["float16"]
    if (reason := packing_problem("float16", processor_flags(), onednn_half_dtypes())) is not None:
        pytest.skip(f"float16 weights are never packed here, so there is no packed engine to compare: {reason}")
    monkeypatch.setenv("SEQGPT_CPU_FLAGS_EXCLUDE", NO_FP16)
    with caplog.at_level(logging.INFO, logger="model_loader.model.bloom_weights"):
        plain = Engine(Settings(model_dir=demo_dir, dtype="float16"))
        plain.load()
    try:
        reasons = [r.getMessage() for r in caplog.records if "plain layout" in r.getMessage()]
        assert len(reasons) == 1 and "avx512_fp16" in reasons[0]
        assert not plain.model.loaded.weights.blocks[0].qkv.weight.is_mkldnn
        text = "甲方：北京星河科技有限公司，乙方：上海云帆信息技术有限公司，合同金额人民币一百万元整。"
        assert plain.classify(text, ["财经", "体育", "科技"]) == packed.classify(text, ["财经", "体育", "科技"])
        assert plain.extract(text, ["公司名称", "金额"]) == packed.extract(text, ["公司名称", "金额"])
        prompt = f"输入: {text}\n分类: 财经，科技\n输出: [GEN]"
        assert plain.generate(prompt, 12) == packed.generate(prompt, 12)
    finally:
        plain.close()


def answers_in_a_fresh_process(demo_dir: Path, texts: list[str], tmp_path: Path, **env: str) -> dict:
    texts_file = tmp_path / "texts.json"
    texts_file.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    environ = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_MAX_CPU_ISA", "SEQGPT_CPU_FLAGS_EXCLUDE")}
    done = subprocess.run(
        [sys.executable, str(HERE / "engine_answers.py"), str(demo_dir), str(texts_file)],
        env={**environ, **env}, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.slow
def test_the_engine_capped_to_avx2_without_avx512_fp16_answers_as_the_uncapped_one(demo_dir, entity_texts, tmp_path):
    """End to end in fresh processes, since oneDNN reads ONEDNN_MAX_CPU_ISA once at start. Both runs
    pin float32, the one dtype both run exactly: with oneDNN capped to AVX2, bf16 and fp16 products
    fall back to other kernels whose sums round differently, so half-precision answers could differ
    in their last bits for reasons that are not a fault of the fallback."""
    texts = [entity_texts[0], entity_texts[3], max(entity_texts, key=len)]
    uncapped = answers_in_a_fresh_process(demo_dir, texts, tmp_path, SEQGPT_DTYPE="float32")
    capped = answers_in_a_fresh_process(
        demo_dir, texts, tmp_path, SEQGPT_DTYPE="float32", ONEDNN_MAX_CPU_ISA="AVX2", SEQGPT_CPU_FLAGS_EXCLUDE=NO_FP16
    )
    assert capped["auto_dtype"] == "float32", "oneDNN capped to AVX2 runs no half type natively"
    assert capped["dtype"] == uncapped["dtype"] == "float32"
    for task in ("classify", "extract", "generate"):
        assert capped[task] == uncapped[task], task
    assert any(result["pieces"] > 1 for result in capped["extract"]), "the long document is split"
