"""int8 weights (``SEQGPT_WEIGHTS=int8``): the blocks' matrices and the output projection held as
int8 with one scale per output channel, multiplied by a kernel torch ships.

A decode step is bound by reading the weights; int8 halves the bytes read and held. Each weight
row ``w`` is stored as ``round(w / s)`` with ``s = max|w| / 127``, so a row's error is at most
half a step of its own scale. One kernel per process, chosen by a rule at load:

- **oneDNN's int8 product** (``torch.ops.onednn.qlinear_pointwise``) where the processor multiplies
  int8 in hardware: AMX-INT8, or AVX512-VNNI. Each row of activations is quantized with a scale of
  its own (``max|x| / 127``); the sums of int8 products are exact integers, scaled afterwards in
  fp32, so a row's result is the same in any batch. How the rows are handed over depends on the
  instructions, since oneDNN is fast only for the operands they take:

  - with AMX, as int8. On a 2-core Xeon with AMX it read the 24 blocks' int8 matrices in 16 ms for
    one row and for eight alike, where the weight-only kernel below took 21 and 55 ms.
  - with AVX512-VNNI and no AMX, as uint8 offset by 128 (a zero point of 128, which oneDNN takes
    out exactly: the sums are the same integers). VNNI multiplies unsigned by signed bytes; int8
    activations sent oneDNN to a kernel a few hundred times slower (6 s for the blocks' products
    on a Zen 4 class EPYC), uint8 ones to its VNNI kernel. There it reads one row no faster than
    the weight-only kernel (14.2 against 16.0 GB/s, quantizing included) but eight rows twice as
    fast (12.9 against 6.2) and computes prompts four times as fast (675 against 153 GOP/s).
    Without VNNI (oneDNN held to AVX512_CORE or AVX2) its uint8 sums saturate and are wrong: the
    probe at load sees it.
- elsewhere ``torch.ops.aten._weight_int8pack_mm``: weight-only, the activations stay in the
  compute dtype. It also gives each row the same result for any number of rows (checked from 1
  to 64).

One kernel for prompts and decode steps alike: a second path would make a row's result depend on
how many rows came with it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from functools import cache

import torch

from . import allocator
from .cpu_dtype import onednn_runs_amx, processor_flags

log = logging.getLogger(__name__)

WEIGHTS_MODES = ("16bit", "int8")


def activation_dtype(compute: torch.dtype) -> torch.dtype:
    """The dtype the int8 kernel multiplies in: the compute dtype where it is 16-bit; bf16 where the
    engine computes in fp32, since torch's kernel is about five times slower with fp32 inputs
    (measured on an AMD EPYC with AVX512-BF16) and int8 already trades those last bits."""
    return compute if compute in (torch.bfloat16, torch.float16) else torch.bfloat16


@dataclass
class Int8Linear:
    """A linear layer with an int8 weight ``[out, in]`` and per-output-channel ``scales``."""

    qweight: torch.Tensor  # int8 [out, in], contiguous; or oneDNN's packed layout of it (for_kernel)
    scales: torch.Tensor  # [out], in the activation dtype
    bias: torch.Tensor | None  # in the compute dtype
    compute: torch.dtype  # what the layer takes and returns
    wide_scales: torch.Tensor | None = None  # ``scales`` in fp32 for oneDNN's product, made when packing
    offset: int = 0  # what oneDNN's product adds to each activation step (activation_offset)

    @classmethod
    def quantize(cls, weight: torch.Tensor, bias: torch.Tensor | None, compute: torch.dtype) -> Int8Linear:
        """Quantize in fp32 against the scale as the kernel will hold it (in the activation dtype),
        rounded up there so that no weight falls outside ±127 steps: every weight then lies within
        half a step of its int8 value times that scale."""
        wide = weight.float()
        exact = (wide.abs().amax(dim=1) / 127).clamp(min=torch.finfo(torch.float32).tiny)
        held = exact.to(activation_dtype(compute))
        below = held.float() < exact
        held[below] = torch.nextafter(held[below], torch.full_like(held[below], float("inf")))
        qweight = torch.round(wide / held.float()[:, None]).clamp(-127, 127).to(torch.int8).contiguous()
        return cls(qweight, held, bias, compute)

    @property
    def dtype(self) -> torch.dtype:
        return self.compute

    @property
    def fewest_rows(self) -> int:
        """1: each row is quantized and multiplied on its own terms, so none is padded."""
        return 1

    @property
    def plain_weight(self) -> torch.Tensor:
        return self.dequantized()

    @property
    def packed(self) -> bool:
        """Whether the matrix is held in oneDNN's layout for its int8 product."""
        return self.qweight.is_mkldnn

    @property
    def plain_qweight(self) -> torch.Tensor:
        """The int8 matrix ``[out, in]`` (a copy when it is packed)."""
        return self.qweight.to_dense().t().contiguous() if self.packed else self.qweight

    @classmethod
    def stacked(cls, parts: list[Int8Linear]) -> Int8Linear:
        """One layer of the rows of bias-free ``parts``, in order (each row keeps its own scale)."""
        qweight = torch.cat([part.plain_qweight for part in parts])
        return cls(qweight, torch.cat([part.scales for part in parts]), None, parts[0].compute)

    def with_bias(self, bias: torch.Tensor | None) -> Int8Linear:
        return replace(self, bias=bias)

    def for_kernel(self) -> Int8Linear:
        """This layer as this process's int8 kernel reads it: packed for oneDNN where that kernel
        serves (int8_kernel), else as it is."""
        if self.packed or int8_kernel() == WEIGHT_ONLY:
            return self
        return self.packed_for_onednn(activation_offset())

    def packed_for_onednn(self, offset: int) -> Int8Linear:
        """Packed for oneDNN's product, the activations handed over as int8 (``offset`` 0) or as
        uint8 offset by 128."""
        packed = torch.ops.onednn.qlinear_prepack(self.qweight, None)
        return replace(self, qweight=packed, wide_scales=self.scales.float(), offset=offset)

    def dequantized(self) -> torch.Tensor:
        """The weight as the compute dtype sees it (a new matrix)."""
        return (self.plain_qweight.to(self.scales.dtype) * self.scales[:, None]).to(self.compute)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        if self.wide_scales is not None:  # packed for oneDNN
            out = onednn_product(x.reshape(-1, shape[-1]), self.qweight, self.wide_scales, self.offset)
            if self.bias is not None:
                out.add_(self.bias)  # in fp32, then rounded once to the compute dtype
            return out.to(self.compute).view(*shape[:-1], out.shape[-1])
        rows = x.reshape(-1, shape[-1]).to(self.scales.dtype).contiguous()
        out = torch.ops.aten._weight_int8pack_mm(rows, self.qweight, self.scales).to(self.compute)
        if self.bias is not None:
            out = out + self.bias
        return out.view(*shape[:-1], out.shape[-1])


def quantized_rows(rows: torch.Tensor, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row of ``rows`` ``[n, k]`` as int8 steps of a scale of its own (fp32 ``[n, 1]``); with
    ``offset`` 128, as uint8 ``steps + 128`` (the same steps for a kernel that takes unsigned bytes)."""
    # In place on one fp32 copy: a prompt's rows are megabytes, and a decode step's few rows pay
    # for each extra operation.
    # No clamp to ±127 after rounding: |x| / (max|x| / 127) exceeds 127 by a rounding error at most,
    # far below the 127.5 that would round to 128.
    wide = rows.to(torch.float32, copy=True)
    scales = wide.abs().amax(dim=1, keepdim=True).div_(127).clamp_(min=torch.finfo(torch.float32).tiny)
    steps = wide.div_(scales).round_()
    if offset:
        return steps.add_(offset).to(torch.uint8), scales
    return steps.to(torch.int8), scales


@cache
def _zero_points(count: int) -> torch.Tensor:
    return torch.zeros(count, dtype=torch.long)


def onednn_product(rows: torch.Tensor, packed: torch.Tensor, scales: torch.Tensor, offset: int) -> torch.Tensor:
    """fp32 ``rows @ W.T`` for a matrix packed by ``qlinear_prepack`` with per-row fp32 ``scales``:
    the rows quantized each with its own scale (handed over with ``offset`` as their zero point),
    their int8 products summed exactly by oneDNN and scaled by the weight's scales, then each row
    by its own."""
    qrows, row_scales = quantized_rows(rows, offset)
    return _onednn_sums(qrows, offset, packed, scales).mul_(row_scales)


def _onednn_sums(qrows: torch.Tensor, offset: int, packed: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """fp32 ``(qrows - offset) @ W.T * scales`` by oneDNN, for a matrix packed by ``qlinear_prepack``."""
    count = scales.shape[0]
    return torch.ops.onednn.qlinear_pointwise(
        qrows, 1.0, offset, packed, scales, _zero_points(count), None, 1.0, 0, torch.float32, "none", [], ""
    )


ONEDNN_AMX = "oneDNN int8 with per-row int8 activations (AMX)"
ONEDNN_VNNI = "oneDNN int8 with per-row activations as uint8 offset by 128 (AVX512-VNNI)"
WEIGHT_ONLY = "torch's weight-only int8"
ACTIVATION_OFFSETS = {ONEDNN_AMX: 0, ONEDNN_VNNI: 128}


@cache  # the answer is the processor's and the torch build's
def int8_kernel() -> str:
    """The int8 kernel this process uses (see the module's notes): oneDNN's, with the activations as
    the processor's int8 instructions take them, where a probe finds its sums exact and each row's
    result its own; else WEIGHT_ONLY."""
    kernel, problem = onednn_int8_choice()
    if problem is None:
        log.info("int8 products: %s", kernel)
        return kernel
    log.info("int8 products: %s (%s)", WEIGHT_ONLY, problem)
    return WEIGHT_ONLY


def activation_offset() -> int:
    """What oneDNN's int8 product adds to each activation step here: 0 (int8) or 128 (uint8)."""
    return ACTIVATION_OFFSETS.get(int8_kernel(), 0)


def onednn_int8_choice() -> tuple[str, str | None]:
    """Which oneDNN int8 product the processor's instructions call for, and why it is not used
    here (None when it is)."""
    flags = processor_flags()
    if "amx_int8" in flags and onednn_runs_amx():
        return ONEDNN_AMX, onednn_probe_problem(ACTIVATION_OFFSETS[ONEDNN_AMX])
    if "avx512_vnni" not in flags:
        return ONEDNN_VNNI, (
            "the processor has neither AMX-INT8 nor AVX512-VNNI, without which oneDNN's int8 "
            "product runs slower or saturates"
        )
    # With AMX-INT8 present but ONEDNN_MAX_CPU_ISA below it, the VNNI kernel still serves.
    return ONEDNN_VNNI, onednn_probe_problem(ACTIVATION_OFFSETS[ONEDNN_VNNI])


def onednn_int8_problem() -> str | None:
    """Why oneDNN's int8 product is not used here, or None."""
    return onednn_int8_choice()[1]


def onednn_probe_problem(offset: int) -> str | None:
    """Whether oneDNN's int8 product, here and with activations offset by ``offset``, sums int8
    products exactly, scales them as said, and gives a row alone what it gives that row among
    others: None when it does."""
    generator = torch.Generator().manual_seed(0)
    weight = torch.randint(-127, 128, (96, 1024), generator=generator, dtype=torch.int8)
    weight[0], weight[1] = 127, -127  # the largest sums, where a saturating kernel would show
    steps = torch.randint(-127, 128, (9, 1024), generator=generator, dtype=torch.int8)
    steps[0], steps[1] = 127, -127
    rows = (steps.short() + offset).to(torch.uint8 if offset else torch.int8)
    scales = torch.rand(96, generator=generator) / 100
    try:
        packed = torch.ops.onednn.qlinear_prepack(weight, None)
        together = _onednn_sums(rows, offset, packed, scales)
        alone = _onednn_sums(rows[:1].contiguous(), offset, packed, scales)
    except (AttributeError, RuntimeError, NotImplementedError) as exc:
        return f"this torch build has no oneDNN int8 product ({type(exc).__name__}: {exc})"
    exact = (steps.long() @ weight.long().t()).float() * scales
    if not torch.equal(together, exact):
        cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
        return "oneDNN's int8 product differed from the exact sums of int8 products" + (
            f" (ONEDNN_MAX_CPU_ISA={cap} may keep it from its int8 instructions)" if cap else ""
        )
    if not torch.equal(alone, together[:1]):
        return "oneDNN's int8 product gave a row another result among other rows"
    return None


def quantizing_as_read(compute: torch.dtype) -> Callable[[str, torch.Tensor], torch.Tensor | Int8Linear]:
    """For weights.read_state_dict: each block's matrix (every 2-D tensor under ``h.``) quantized as
    soon as it is read, its bias joining it in BloomWeights.from_state_dict. Loading then never
    holds the blocks' 16-bit matrices all at once: quantized after loading, they raised the
    load's peak RSS to about 1.3 GB, above what the int8 engine holds while it writes."""

    def convert(name: str, tensor: torch.Tensor) -> torch.Tensor | Int8Linear:
        if name.startswith("h.") and tensor.dim() == 2:
            int8 = Int8Linear.quantize(tensor, None, compute).for_kernel()
            # The 16-bit matrix, the quantizing's fp32 temporaries and the int8 matrix before
            # packing are free now, but left in malloc's arena they fragment it and the next
            # matrices' pages pile up on top.
            allocator.release_freed()
            return int8
        return tensor

    return convert


def quantize_blocks(weights, compute: torch.dtype) -> int:
    """Replace every block's linear layers that are not int8 yet (all of them, from a pickled
    checkpoint) by int8 ones, in place and one matrix at a time, so the 16-bit matrix is dropped
    as soon as its int8 copy exists. Returns the bytes held by the blocks' int8 matrices."""
    # The block's 16-bit layers are those that can give their plain weight (bloom_weights.Linear);
    # asked by that method rather than by class, since bloom_weights imports this module.
    held = 0
    for block in weights.blocks:
        for part in fields(block):
            linear = getattr(block, part.name)
            if hasattr(linear, "plain_weight") and not isinstance(linear, Int8Linear):
                linear = Int8Linear.quantize(linear.plain_weight, linear.bias, compute).for_kernel()
                setattr(block, part.name, linear)
            if isinstance(linear, Int8Linear):
                held += linear.qweight.numel() + linear.scales.numel() * linear.scales.element_size()
    log.info(
        "blocks' matrices held as int8 with per-channel scales (%.0f MB), multiplied by %s",
        held / 2**20,
        int8_kernel(),
    )
    return held


def gpu_refusal(device: str, mode: str) -> str | None:
    """Why ``mode`` cannot run on ``device``, or None: int8 is a CPU mode, 16-bit is the GPU path."""
    if mode == "int8" and device.startswith("cuda"):
        return (
            "SEQGPT_WEIGHTS=int8 is for the CPU only; on a GPU the model runs in 16 bits: "
            "set SEQGPT_WEIGHTS=16bit, or SEQGPT_DEVICE=cpu to run int8 on the processor"
        )
    return None
