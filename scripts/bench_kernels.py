"""The matrix kernels torch offers here for the blocks' products, and how fast each reads and computes.

    .venv/bin/python scripts/bench_kernels.py [--layers 24] [--trials 5] [--json PATH]

A decode step multiplies one row (one free prompt) or a few (several decoded together) by the
24 blocks' 96 matrices, reading every weight once; a prompt multiplies hundreds of rows. For
each kernel torch has on this processor, on random matrices of the blocks' shapes (every layer
its own, so that they come from memory as in a real step, not from a cache), this prints:

- the read rate for 1 row and for 8: the bytes of weights the kernel holds over the time of one
  pass through all the layers (best of ``--trials``);
- the arithmetic rate for 256 rows (a prompt), over the first two layers;
- whether a row's result is the same alone as among 8 rows, and two rows' the same as among 8,
  over 16 random batches: the engine gives a request the same answer whichever others share its
  batch, so it gives a kernel that sums a lone row otherwise a second row (a zero row; four rows
  for MKL's fp32, see model_loader/model/row_products.py), and cannot use one that fails both.

It is the evidence behind which kernel the engine uses for what (docs/performance-int8.md):
the figures to beat are the machine's read rate (``scripts/bench.py``) and a prompt's rate.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from _repo import ROOT  # noqa: F401  (first: puts the repository on sys.path)
from bench_machine import processor  # noqa: E402  (beside this script)

from model_loader.model.cpu_dtype import auto_cpu_dtype  # noqa: E402
from model_loader.model.half_kernel import HalfLinear, half_kernel_problem  # noqa: E402
from model_loader.model.int8_weights import ACTIVATION_OFFSETS, Int8Linear, onednn_int8_choice, quantized_rows  # noqa: E402

HIDDEN = 1024
# Each block's matrices as [out, in]: query-key-value, attention output, MLP up and down.
SHAPES = ((3 * HIDDEN, HIDDEN), (HIDDEN, HIDDEN), (4 * HIDDEN, HIDDEN), (HIDDEN, 4 * HIDDEN))
PROMPT_ROWS = 256
PROMPT_LAYERS = 2  # a prompt's products are bound by arithmetic, not by reading: two layers tell
CHECK_BATCHES = 16  # random batches of 8 rows through the first layer's matrices


@dataclass
class Kernel:
    name: str
    prepare: Callable  # fp32 weight [out, in] -> what the kernel holds
    multiply: Callable  # (held, rows) -> product
    input_dtype: torch.dtype  # the dtype it takes rows in
    bytes_per_weight: int  # as held (int8's per-row scales add 0.1%, left out)


def kernels(dtype: torch.dtype) -> tuple[list[Kernel], list[str]]:
    """The kernels this torch and processor can run for an engine computing in ``dtype``, and
    one line for each that cannot run here, saying why."""

    def without_onednn(weight, rows):
        torch.backends.mkldnn.enabled = False
        try:
            return F.linear(rows, weight)
        finally:
            torch.backends.mkldnn.enabled = True

    name, size = str(dtype).removeprefix("torch."), dtype.itemsize
    found, missing = [], []
    if dtype in (torch.bfloat16, torch.float16):
        supported = (
            torch.ops.mkldnn._is_mkldnn_bf16_supported()
            if dtype == torch.bfloat16
            else torch.ops.mkldnn._is_mkldnn_fp16_supported()
        )
        if supported:
            found.append(
                Kernel(
                    f"oneDNN packed {name}",
                    lambda w: torch.ops.mkldnn._reorder_linear_weight(w.to(dtype), 1),
                    lambda held, rows: torch.ops.mkldnn._linear_pointwise(rows, held, None, "none", [], ""),
                    dtype,
                    size,
                )
            )
        else:
            missing.append(f"oneDNN packed {name}: oneDNN does not run {name} on this processor")
        found.append(Kernel(f"torch native {name} (oneDNN off)", lambda w: w.to(dtype), without_onednn, dtype, size))
    plain = Kernel(f"plain {name} F.linear", lambda w: w.to(dtype), lambda w, rows: F.linear(rows, w), dtype, size)
    found.append(plain)
    problem = half_kernel_problem()
    if problem is None:
        found.append(Kernel("FBGEMM fp16", HalfLinear, lambda held, rows: held(rows), torch.float32, 2))
    else:
        missing.append(f"FBGEMM fp16: {problem}")
    found.append(
        Kernel(
            "int8 weight-only (torch)",
            lambda w: Int8Linear.quantize(w, None, dtype),
            lambda held, rows: held(rows),
            dtype,
            1,
        )
    )
    more, more_missing = int8_activation_kernels()
    return found + more, missing + more_missing


def int8_activation_kernels() -> tuple[list[Kernel], list[str]]:
    """Products of int8 weights by int8 activations, quantized at every call (their cost is timed):
    is it faster here, and can a row's answer stay its own? ``SEQGPT_WEIGHTS=int8`` takes oneDNN's
    where AMX or AVX512-VNNI multiply int8 (int8_weights.int8_kernel), torch's weight-only kernel
    elsewhere."""

    def by_rows(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The matrix's rows as int8 steps of their own scales, and the scales ``[rows, 1]``."""
        return quantized_rows(t)

    def by_row_scales(held, rows):
        qweight, weight_scales = held
        qrows, row_scales = quantized_rows(rows)
        return torch._int_mm(qrows, qweight.t()).float() * row_scales * weight_scales.t()

    def fbgemm_packed(weight):
        scales = (weight.abs().amax(dim=1) / 127).clamp(min=1e-12)  # FBGEMM quantizes by them itself
        zero = torch.zeros(weight.shape[0], dtype=torch.long)
        with warnings.catch_warnings():  # quantized tensors are deprecated in torch 2.13, not gone
            warnings.simplefilter("ignore", UserWarning)
            quantized = torch.quantize_per_channel(weight, scales.double(), zero, 0, torch.qint8)
        return torch.ops.quantized.linear_prepack(quantized, None)

    # Each row quantized with its own scale: the integer sums are exact, so a row's result cannot
    # depend on the others.
    found = [Kernel("int8 x int8 _int_mm, row scales", by_rows, by_row_scales, torch.float32, 1)]
    missing = []
    choice, problem = onednn_int8_choice()  # oneDNN is fast with AMX-INT8 or AVX512-VNNI only
    if problem is None:
        offset = ACTIVATION_OFFSETS[choice]  # activations as the processor's instructions take them
        found.append(
            Kernel(
                "oneDNN int8, row scales",
                lambda w: Int8Linear.quantize(w, None, torch.bfloat16).packed_for_onednn(offset),
                lambda held, rows: held(rows),
                torch.bfloat16,
                1,
            )
        )
    else:
        missing.append(f"oneDNN int8, row scales: {problem}")
    try:
        fbgemm_packed(torch.ones(8, 8))
    except (AttributeError, RuntimeError, NotImplementedError) as exc:
        missing.append(f"FBGEMM dynamic int8: this torch build has none ({type(exc).__name__}: {exc})")
    else:
        # FBGEMM quantizes all rows with one scale (7-bit, reduce_range, as x86 needs).
        dynamic = lambda packed, rows: torch.ops.quantized.linear_dynamic(rows, packed, True)  # noqa: E731
        found.append(Kernel("FBGEMM dynamic int8, one scale", fbgemm_packed, dynamic, torch.float32, 1))
    return found, missing


def measure(kernel: Kernel, layers: int, trials: int) -> dict:
    """One kernel's figures on ``layers`` layers of random matrices (made one at a time, so that
    only the kernel's own layout is held)."""
    generator = torch.Generator().manual_seed(0)
    held = [[kernel.prepare(torch.randn(shape, generator=generator) * 0.02) for shape in SHAPES] for _ in range(layers)]
    weight_bytes = layers * sum(out * inner for out, inner in SHAPES) * kernel.bytes_per_weight

    def rows_for(count: int) -> list:
        return [torch.randn(count, shape[1], generator=generator).to(kernel.input_dtype) for shape in SHAPES]

    def one_pass(rows: list, of_layers: list) -> float:
        started = time.perf_counter()
        for layer in of_layers:
            for matrix, x in zip(layer, rows, strict=True):
                kernel.multiply(matrix, x)
        return time.perf_counter() - started

    result: dict = {"kernel": kernel.name, "held_mb": weight_bytes / 1e6}
    for count in (1, 8):
        rows = rows_for(count)
        one_pass(rows, held[:1])  # first use: kernels built, scratch taken
        best = min(one_pass(rows, held) for _ in range(trials))
        result[f"read_gbps_{count}_rows"] = weight_bytes / best / 1e9
    prompt_layers = held[:PROMPT_LAYERS]
    rows = rows_for(PROMPT_ROWS)
    one_pass(rows, prompt_layers[:1])
    best = min(one_pass(rows, prompt_layers) for _ in range(trials))
    flops = 2 * PROMPT_ROWS * sum(out * inner for out, inner in SHAPES) * len(prompt_layers)
    result["prompt_gflops"] = flops / best / 1e9
    # A kernel that sums a row otherwise alone may do so for a few values in a thousand, so the
    # check takes many batches; the engine pads 16-bit products to two rows and fp32 ones to four
    # (model_loader/model/row_products.py), so it also says whether two rows come out as in eight.
    batches = [rows_for(8) for _ in range(CHECK_BATCHES)]
    for first, key in ((1, "row_alone_equals_row_among_8"), (2, "two_rows_equal_rows_among_8")):
        result[key] = all(
            torch.equal(kernel.multiply(matrix, x)[:first], kernel.multiply(matrix, x[:first]))
            for batch in batches
            for matrix, x in zip(held[0], batch, strict=True)
        )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=24, help="layers of matrices (24 in SeqGPT-560M)")
    parser.add_argument("--trials", type=int, default=5, help="timed passes; the best counts")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's own choice)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, auto_cpu_dtype())
    found, missing = kernels(dtype)
    report = {
        "processor": processor(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "engine_dtype": str(dtype).removeprefix("torch."),
        "layers": args.layers,
        "kernels": [],
        "not_here": missing,
    }
    print(
        f"processor: {report['processor']}; torch {report['torch']}, {report['threads']} threads; "
        f"the engine computes in {report['engine_dtype']} here; {args.layers} layers of the blocks' matrices",
        flush=True,
    )
    print(f"{'kernel':36} {'held MB':>8} {'GB/s 1 row':>11} {'GB/s 8 rows':>12} {'GFLOP/s 256 rows':>17}", end="")
    print("  1 row = in 8  2 rows = in 8")
    for kernel in found:
        figures = measure(kernel, args.layers, args.trials)
        report["kernels"].append(figures)
        print(
            f"{figures['kernel']:36} {figures['held_mb']:8.0f} {figures['read_gbps_1_rows']:11.1f} "
            f"{figures['read_gbps_8_rows']:12.1f} {figures['prompt_gflops']:17.0f}  "
            f"{'yes' if figures['row_alone_equals_row_among_8'] else 'NO':>12}  "
            f"{'yes' if figures['two_rows_equal_rows_among_8'] else 'NO':>13}",
            flush=True,
        )
    for line in missing:
        print(f"not here: {line}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
