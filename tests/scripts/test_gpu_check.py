"""scripts/gpu_check.sh on a machine without CUDA: a clear, distinct exit; and its report's shape, from
the same steps run on the CPU on demo weights (the GPU figures themselves come from a GPU run)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NO_CUDA = 3


def test_gpu_check_without_a_gpu_exits_3_saying_no_cuda_device(tmp_path: Path) -> None:
    # A PATH holding only what the script needs before it looks for a GPU, and no nvidia-smi.
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("bash", "dirname", "grep"):
        (tools / tool).symlink_to(shutil.which(tool))
    done = subprocess.run(
        [str(tools / "bash"), str(ROOT / "scripts" / "gpu_check.sh"), str(tmp_path / "out")],
        capture_output=True, text=True, timeout=60, env={"PATH": str(tools)},
    )
    assert done.returncode == NO_CUDA, done.stderr
    assert "no CUDA device" in done.stderr
    assert not (tmp_path / "out").exists(), "nothing is set up or written before the GPU is found"


def test_gpu_check_step_refuses_to_run_where_torch_sees_no_cuda(tmp_path: Path) -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert done.returncode == NO_CUDA and "no CUDA device" in done.stderr
    assert not (tmp_path / "gpu_check.json").exists()


def test_gpu_check_report_lists_every_attention_path_with_its_verdict_and_figures(tmp_path: Path) -> None:
    from model_loader.model.demo import build_demo_model

    demo_dir = build_demo_model(tmp_path / "demo")
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--cpu-dry-run", "--model", str(demo_dir),
         "--inputs", "1", "--repeats", "1", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text(encoding="utf-8"))
    assert report["device"] == "cpu" and report["dtype"] in ("float32", "bfloat16", "float16")
    paths = {p["attention"]: p for p in report["paths"]}
    assert set(paths) == {"eager", "sdpa", "sdpa-16bit", "flash-attn"}
    assert paths["eager"]["check"] == "pass"
    assert paths["flash-attn"]["check"] != "pass"  # CUDA only: its verdict says why
    for path in paths.values():
        if path["check"] == "pass":
            assert path["classification_ms"] > 0 and path["extraction_ms"] > 0
            assert isinstance(path["generation_ms_per_token"], float)
    assert report["decode_step_attention"] in ("sdpa", "widened eager")
    assert "nvml" in report  # None without an NVIDIA driver
    table = (tmp_path / "out" / "gpu_check.md").read_text(encoding="utf-8")
    assert table.startswith("GPU check on cpu") and "| eager | pass |" in table and "| flash-attn |" in table
