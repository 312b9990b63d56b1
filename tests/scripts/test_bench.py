"""The benchmark runs end to end and reports every figure docs/performance.md quotes (on demo weights,
so the figures themselves mean nothing here; speed is measured by running bench.py itself)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_quick_runs_both_sides_on_the_repository_texts_and_writes_the_figures(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick", "--cache", str(tmp_path), "--json", str(out)],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text(encoding="utf-8"))
    for workload in ("classification", "extraction"):
        assert figures[workload]["ratio_p50"] > 0
        assert figures[workload]["engine"]["p50"] <= figures[workload]["engine"]["p95"]
        assert figures[workload]["floor_p50"] > 0
    assert figures["concurrency"]["throughput_ratio"] > 0
    assert 0 < figures["peak_rss_mb_before_generation"] <= figures["peak_rss_mb"]
    generation = figures["generation"]
    assert all(95 <= n <= 400 for n in generation["prompt_tokens"]), "free prompts of 100-400 tokens"
    # A decode step is (time for 32 tokens - time for 1) / 31. On demo weights both take milliseconds,
    # so on a busy machine the difference can come out either side of zero: here only that every
    # figure is there and is a number; prefill is a timing of its own and must be positive.
    assert generation["prefill_ratio_p50"] > 0 and math.isfinite(generation["ratio_p50"])
    for side in ("engine", "transformers_bf16", "transformers_fp32"):
        assert generation["prefill_ms"][side] > 0
        assert math.isfinite(generation["ms_per_token"][side]["batch1"])
        assert math.isfinite(generation["ms_per_token"][side]["batch8"])
    assert figures["machine"]["read_gbps"] > 0 and figures["machine"]["copy_gbps"] > 0
    assert generation["ms_per_token"]["floor_16bit"] == 2 * generation["ms_per_token"]["floor_int8"]
    int8 = figures["generation_int8"]
    assert math.isfinite(int8["ratio_p50"]) and math.isfinite(int8["ratio_p50_batch8"])
    assert math.isfinite(int8["ms_per_token"]["batch1"]) and math.isfinite(int8["ms_per_token"]["batch8"])
    assert figures["peak_rss_mb_int8"] > 0
    fidelity = figures["int8_fidelity"]
    assert fidelity["classification_samples"] > 0 and 0 <= fidelity["label_agreement"] <= 1
    assert fidelity["extraction_samples"] > 0 and 0 <= fidelity["span_f1_vs_16bit"] <= 1
    # int8 is an approximation: its logits differ from 16-bit's, but not wildly.
    assert 0 < fidelity["logits_relative_error_median"] < 0.5
    assert 0 < fidelity["decoded_logits_relative_error_median"] < 0.5
    assert 0 < fidelity["int8_cache_relative_error_median"] < 0.5
    assert "memory read" in done.stdout and "int8 against 16-bit" in done.stdout and "peak_rss_mb_int8" in done.stdout
    assert "ms/token" in done.stdout and "first free prompt" in done.stdout
    assert "ratio p50" in done.stdout and "peak RSS" in done.stdout and "before the free prompts" in done.stdout
