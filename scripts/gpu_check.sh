#!/usr/bin/env bash
# One command for a GPU run, from a fresh checkout, in under 8 minutes on one GPU:
#   1. stops at once, exit 3 and "no CUDA device", where nvidia-smi sees no GPU;
#   2. sets up .venv and runs `pytest -m gpu` through scripts/test.sh (its own set-up and ruff);
#   3. runs scripts/gpu_check.py: each attention path (eager, sdpa, sdpa-16bit, flash-attn where installed) with
#      its known-answer verdict, the bench's classification, extraction and free-prompt workloads on
#      the GPU, NVML as the status bar reads it; writes gpu_check/gpu_check.json and gpu_check.md.
# Usage: scripts/gpu_check.sh [OUT_DIR]     Exit: 0 all ran, 3 no CUDA device, else the failing step's.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${1:-$ROOT/gpu_check}"
NO_CUDA=3

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
    echo "gpu_check: no CUDA device (nvidia-smi finds no GPU): run it on a machine with an NVIDIA GPU and driver" >&2
    exit "$NO_CUDA"
fi
nvidia-smi -L
mkdir -p "$OUT"
started=$SECONDS

echo "==> pytest -m gpu (scripts/test.sh sets up .venv first)"
set +e
scripts/test.sh -m gpu -q 2>&1 | tee "$OUT/pytest_gpu.log"
pytest_rc=${PIPESTATUS[0]}
set -e
echo "pytest -m gpu: exit $pytest_rc after $((SECONDS - started)) s"

echo "==> attention paths and workloads on the GPU"
.venv/bin/python scripts/gpu_check.py --out "$OUT"
# The pytest verdict joins the report, so the one JSON file says everything.
.venv/bin/python - "$OUT/gpu_check.json" "$pytest_rc" <<'PY'
import json, sys
path, rc = sys.argv[1], int(sys.argv[2])
report = json.load(open(path, encoding="utf-8"))
report["pytest_gpu_exit"] = rc
open(path, "w", encoding="utf-8").write(json.dumps(report, indent=2, ensure_ascii=False))
PY
echo "gpu_check: done in $((SECONDS - started)) s; report in $OUT/gpu_check.json and $OUT/gpu_check.md"
exit "$pytest_rc"
