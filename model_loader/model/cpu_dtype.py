"""What this CPU can run: the dtype the model should use on it, and whether its weights may be packed.

Having an instruction set is not being fast at it. With torch 2.13's oneDNN on a
Xeon with AVX512-BF16 and AVX512-FP16 but no AMX, matrix products ran at about
300 GFLOP/s in fp16, 300 in fp32 and only 170 in bf16; on a Xeon with AMX, bf16
products ran at about 400 GFLOP/s. So: bf16 where AMX multiplies bf16 but not fp16; else fp16
where the processor has it (it also holds SeqGPT's fp16 weights exactly, where bf16
rounds them); else bf16 where it has that; else fp32.

A rule rather than a timing at load: the choice, and so the results' last bits,
then never depends on how busy the machine was at start-up.

Two things can take features away, so that any machine can try the paths of a lesser one:
``SEQGPT_CPU_FLAGS_EXCLUDE`` (flag names as /proc/cpuinfo spells them, comma-separated) hides
flags from this module, and oneDNN's own ``ONEDNN_MAX_CPU_ISA`` caps what the library runs,
which torch reports as the half-precision types oneDNN supports.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

EXCLUDE_VARIABLE = "SEQGPT_CPU_FLAGS_EXCLUDE"
HALF_DTYPES = frozenset({"bfloat16", "float16"})

# What torch's mkldnn_reorder_linear_weight asks of the processor before it packs a matrix:
# any one of these sets of flags.
PACKING_NEEDS = {
    "float16": ({"avx512_fp16"}, {"avx_ne_convert"}),
    "bfloat16": ({"avx512bw", "avx512vl", "avx512dq"}, {"avx_ne_convert"}),
}


def excluded_flags(environ: Mapping[str, str] | None = None) -> set[str]:
    env = os.environ if environ is None else environ
    return {flag.strip().lower() for flag in env.get(EXCLUDE_VARIABLE, "").split(",") if flag.strip()}


def processor_flags(environ: Mapping[str, str] | None = None) -> set[str]:
    """The processor's flags, less those named in ``SEQGPT_CPU_FLAGS_EXCLUDE``."""
    try:
        words = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        words = []
    return set(words) - excluded_flags(environ)


def onednn_half_dtypes() -> set[str]:
    """The half-precision types oneDNN runs in this process; ``ONEDNN_MAX_CPU_ISA`` can take them away."""
    import torch

    supported = set()
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():
        supported.add("bfloat16")
    if torch.ops.mkldnn._is_mkldnn_fp16_supported():
        supported.add("float16")
    return supported


def cpu_dtype(flags: set[str], onednn: set[str] | frozenset[str] = HALF_DTYPES) -> str:
    """The dtype for these processor flags, choosing a half type only where oneDNN runs it."""
    if "amx_bf16" in flags and "amx_fp16" not in flags and "bfloat16" in onednn:
        return "bfloat16"
    if flags & {"avx512_fp16", "amx_fp16"} and "float16" in onednn:
        return "float16"
    if "avx512_bf16" in flags and "bfloat16" in onednn:
        return "bfloat16"
    return "float32"


def auto_cpu_dtype() -> str:
    flags, onednn = processor_flags(), onednn_half_dtypes()
    dtype = cpu_dtype(flags, onednn)
    hidden = sorted(excluded_flags())
    log.info(
        "CPU dtype %s, from the processor flags%s and oneDNN's half types (%s)",
        dtype,
        f" less {EXCLUDE_VARIABLE}={','.join(hidden)}" if hidden else "",
        ", ".join(sorted(onednn)) or "none",
    )
    return dtype


def amx_multiplies_bf16(dtype: str, flags: set[str]) -> bool:
    """Whether the engine computes in bf16 on a processor whose AMX oneDNN may use for it."""
    return dtype == "bfloat16" and "amx_bf16" in flags and onednn_runs_amx()


def packed_bf16_projection(dtype: str, packed: bool, flags: set[str]) -> bool:
    """Whether the whole output projection (free prompts' decode steps) is better held in oneDNN's
    packed bf16 than as fp16 for FBGEMM's kernel (half_kernel): where AMX multiplies bf16.

    On a 2-core Xeon with AMX-BF16 (and AVX512-FP16; torch 2.13, 2 threads, full-size weights),
    the engine's free prompts with the projection packed in bf16 against FBGEMM's fp16, two
    alternating runs each: 72.0 and 70.6 ms a token at batch 1 against 75.2 and 73.2, and 93.0 and
    88.6 ms a step for 8 sequences against 108.0 and 104.9 (FBGEMM's product runs at about half
    oneDNN's rate with 8 rows). On the Zen 4 class EPYC (AVX512-BF16, no AMX) FBGEMM read one
    row's product faster (15.2 ms against 19.9), so it keeps the projection there."""
    return packed and amx_multiplies_bf16(dtype, flags)


def sdpa_on_16bit(dtype: str, flags: set[str]) -> bool:
    """Whether a 16-bit engine attends with PyTorch's fused attention straight on its 16-bit keys,
    values and queries (fp32 sums, the fp32 bias as it is) rather than with products of widened
    fp32 copies or eager's products: where AMX multiplies bf16. Decode steps (attention.step_sdpa):
    on a 2-core Xeon with AMX-BF16 (torch 2.13, 2 threads) one sequence's attention over 300
    positions at one layer took 26 µs against 161, and a step for eight sequences 85 ms against 113.
    Prompts (attention.sdpa_16bit), the same machine, one layer: 0.70 ms against eager's 1.94 for
    288 tokens, 11.0 against 23.2 for 1,024. On the Zen 4 class EPYC (AVX512-BF16, no AMX) the
    fused kernel in bf16 measured about 290 µs at 300 positions against 98 µs for the widened
    products of a decode step, so both stay as they were there."""
    return amx_multiplies_bf16(dtype, flags)


def onednn_runs_amx(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``ONEDNN_MAX_CPU_ISA`` leaves oneDNN its AMX kernels (unset, ALL and DEFAULT do, and
    every cap whose name has AMX in it, such as AVX512_CORE_AMX; AVX512_CORE_BF16 does not)."""
    cap = (os.environ if environ is None else environ).get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    return cap in ("", "ALL", "DEFAULT") or "AMX" in cap


def packing_problem(dtype: str, flags: set[str], onednn: set[str] | frozenset[str]) -> str | None:
    """Why oneDNN's packed weight layout cannot be used for ``dtype`` here; None when it can."""
    needs = PACKING_NEEDS.get(dtype)
    if needs is None:
        return f"only half-precision weights are packed, not {dtype}"
    if not any(need <= flags for need in needs):
        wanted = " or ".join("+".join(sorted(need)) for need in needs)
        hidden = f" (or {EXCLUDE_VARIABLE} hides it)" if excluded_flags() else ""
        return f"packing {dtype} needs the CPU flag {wanted}, which this processor lacks{hidden}"
    if dtype not in onednn:
        return f"oneDNN does not run {dtype} here (ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', 'unset')})"
    return None
