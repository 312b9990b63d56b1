"""scripts/bench_trees.py runs each checkout's engine in its own process and compares their spreads
(on demo weights here: the figures mean nothing, the shape of the run does)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_both_checkouts_run_in_turn_and_each_task_gets_a_verdict(demo_model_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_trees.py"), str(ROOT), "--rounds", "2",
         "--model", str(demo_model_dir)],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    sides = re.findall(r"^(other|this) .*: classify p50 (\d+\.\d+) s, extract p50 (\d+\.\d+) s$", done.stdout, re.M)
    assert [side for side, _, _ in sides] == ["other", "this", "other", "this"]
    assert all(float(c) > 0 and float(e) > 0 for _, c, e in sides)
    for task in ("classify", "extract"):
        assert re.search(rf"^{task}: other .* s, this .* s: (within|OUTSIDE) the spread$", done.stdout, re.M)
