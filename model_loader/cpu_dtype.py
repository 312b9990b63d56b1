"""Which half-precision dtype this processor multiplies fastest, measured rather than assumed.

Having an instruction set is not being fast at it: a Xeon with AVX512-BF16 but no
AMX was measured multiplying bf16 at about half its fp16 (AVX512-FP16) and fp32
rates, while with AMX bf16 is the fastest by far. So where the processor has more
than one half type natively, a few products shaped like one request's decide.
fp16 is preferred on a near tie: SeqGPT's weights are stored in fp16, so fp16
holds them exactly where bf16 rounds them.
"""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)

# bf16 is taken over fp16 only when it is clearly faster, so that noise on a busy
# machine does not flip the choice (and the results' last bits) between restarts.
BF16_MARGIN = 1.15
# Rows per product in the probe: a prompt, the per-field prompt ends, then decode steps.
_PROBE_ROWS = (150, 50, *([5] * 12))
_PROBE_TRIALS = 3


def native_half_dtypes(cpuinfo: str | None = None) -> list[str]:
    """The half-precision dtypes the processor multiplies natively, by its cpuinfo flags."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return []
    flags = set(cpuinfo.split())
    found = []
    if flags & {"avx512_fp16", "amx_fp16"}:
        found.append("float16")
    if flags & {"avx512_bf16", "amx_bf16"}:
        found.append("bfloat16")
    return found


def probe_seconds(dtype: str) -> float:
    """Best time of a request-shaped series of products with one 1024 x 4096 matrix, packed
    as the engine packs it."""
    import torch

    from .bloom_weights import Linear

    generator = torch.Generator().manual_seed(0)
    linear = Linear(
        (torch.randn(4096, 1024, generator=generator) * 0.02).to(getattr(torch, dtype)),
        torch.zeros(4096, dtype=getattr(torch, dtype)),
    )
    packed = linear.packed() if linear.packs_exactly() else linear
    inputs = [torch.randn(rows, 1024, generator=generator).to(linear.weight.dtype) for rows in _PROBE_ROWS]
    packed(inputs[0])  # first call sets up the kernels
    best = float("inf")
    for _ in range(_PROBE_TRIALS):
        started = time.perf_counter()
        for x in inputs:
            packed(x)
        best = min(best, time.perf_counter() - started)
    return best


@functools.cache
def fastest_cpu_dtype() -> str:
    """float16 or bfloat16, whichever this processor runs faster natively; float32 with neither."""
    native = native_half_dtypes()
    if len(native) < 2:
        return native[0] if native else "float32"
    seconds = {dtype: probe_seconds(dtype) for dtype in native}
    chosen = "bfloat16" if seconds["bfloat16"] * BF16_MARGIN < seconds["float16"] else "float16"
    log.info(
        "CPU dtype: %s (probe: float16 %.1f ms, bfloat16 %.1f ms)",
        chosen, seconds["float16"] * 1e3, seconds["bfloat16"] * 1e3,
    )
    return chosen
