"""The benchmark runs end to end and reports every figure the README quotes (on demo weights,
so the figures themselves mean nothing here; speed is measured by running bench.py itself)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"


def test_bench_runs_both_sides_and_writes_the_figures(demo_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    data = DATA if DATA.is_dir() else tmp_path / "data"
    if not DATA.is_dir():  # a clone without the shared data beside it: a few texts of our own
        data.mkdir()
        rows = [
            {"sentence": "小米集团今天发布了新款手机，售价3999元。" * 3},
            {"sentence": "温格的球队终于又踢了一场经典的比赛。" * 4},
        ]
        (data / "tnews_dev.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), "utf-8")
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--model", str(demo_model_dir), "--data", str(data),
         "--inputs", "2", "--repeats", "1", "--gen-inputs", "2", "--gen-repeats", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text(encoding="utf-8"))
    for workload in ("classification", "extraction"):
        assert figures[workload]["ratio_p50"] > 0
        assert figures[workload]["engine"]["p50"] <= figures[workload]["engine"]["p95"]
        assert figures[workload]["floor_p50"] > 0
    assert figures["concurrency"]["throughput_ratio"] > 0
    assert figures["peak_rss_mb"] > 0
    generation = figures["generation"]
    assert all(95 <= n <= 400 for n in generation["prompt_tokens"]), "free prompts of 100-400 tokens"
    assert generation["ratio_p50"] > 0 and generation["prefill_ratio_p50"] > 0
    for side in ("engine", "transformers_bf16", "transformers_fp32"):
        assert generation["ms_per_token"][side]["batch1"] > 0 and generation["ms_per_token"][side]["batch8"] > 0
    assert "ms/token" in done.stdout and "first free prompt" in done.stdout
    assert "ratio p50" in done.stdout and "peak RSS" in done.stdout
