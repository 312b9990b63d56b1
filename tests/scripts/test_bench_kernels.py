"""scripts/bench_kernels.py measures every kernel it names, and the kernels the engine relies on for
batch independence give a row the same result alone and among others on this machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from model_loader.model.cpu_dtype import auto_cpu_dtype
from model_loader.model.half_kernel import half_kernel_problem
from model_loader.model.int8_weights import onednn_int8_problem

ROOT = Path(__file__).resolve().parents[2]


def test_bench_kernels_reports_each_kernel_here_with_its_rates_and_its_row_independence(tmp_path: Path) -> None:
    out = tmp_path / "kernels.json"
    script = ROOT / "scripts" / "bench_kernels.py"
    done = subprocess.run(
        [sys.executable, str(script), "--layers", "1", "--trials", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["engine_dtype"] == auto_cpu_dtype() and report["layers"] == 1
    names = [k["kernel"] for k in report["kernels"]]
    assert "int8 weight-only (torch)" in names and any(name.startswith("plain ") for name in names)
    assert ("FBGEMM fp16" in names) == (half_kernel_problem() is None)
    assert ("oneDNN int8, row scales" in names) == (onednn_int8_problem() is None)
    for figures in report["kernels"]:
        assert figures["read_gbps_1_rows"] > 0 and figures["read_gbps_8_rows"] > 0 and figures["prompt_gflops"] > 0
        assert figures["kernel"] in done.stdout
    by_name = {k["kernel"]: k for k in report["kernels"]}
    # The engine's int8 products and its fp16 output projection each serve one row and several
    # with one kernel: a row must come out the same either way. Its packed 16-bit blocks are given
    # at least two rows (row_products): two rows must come out as among eight.
    assert by_name["int8 weight-only (torch)"]["row_alone_equals_row_among_8"]
    if "FBGEMM fp16" in by_name:
        assert by_name["FBGEMM fp16"]["row_alone_equals_row_among_8"]
    if "oneDNN int8, row scales" in by_name:
        assert by_name["oneDNN int8, row scales"]["row_alone_equals_row_among_8"]
    packed = f"oneDNN packed {report['engine_dtype']}"
    if packed in by_name:
        assert by_name[packed]["two_rows_equal_rows_among_8"]
    # Every kernel not measured says why.
    assert all(": " in line for line in report["not_here"])
