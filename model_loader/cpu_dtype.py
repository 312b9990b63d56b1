"""Which dtype a CPU should run the model in, from its processor flags.

Having an instruction set is not being fast at it. With torch 2.13's oneDNN on a
Xeon with AVX512-BF16 and AVX512-FP16 but no AMX, matrix products ran at about
300 GFLOP/s in fp16, 300 in fp32 and only 170 in bf16; on a Xeon with AMX, bf16
products ran at about 400 GFLOP/s. So: bf16 where AMX multiplies bf16 but not fp16; else fp16
where the processor has it (it also holds SeqGPT's fp16 weights exactly, where bf16
rounds them); else bf16 where it has that; else fp32.

A rule rather than a timing at load: the choice, and so the results' last bits,
then never depends on how busy the machine was at start-up.
"""

from __future__ import annotations

from pathlib import Path


def processor_flags() -> set[str]:
    try:
        return set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return set()


def cpu_dtype(flags: set[str]) -> str:
    if "amx_bf16" in flags and "amx_fp16" not in flags:
        return "bfloat16"
    if flags & {"avx512_fp16", "amx_fp16"}:
        return "float16"
    if "avx512_bf16" in flags:
        return "bfloat16"
    return "float32"
