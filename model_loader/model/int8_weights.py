"""Weight-only int8 (``SEQGPT_WEIGHTS=int8``): the blocks' matrices and the output projection held as
int8 with one scale per output channel, multiplied by torch's own CPU kernel.

A decode step is bound by reading the weights; int8 halves the bytes read and held. Activations
stay in the compute dtype; each weight row ``w`` is stored as ``round(w / s)`` with
``s = max|w| / 127``, so a row's error is at most half a step of its own scale.

Every product goes through ``torch.ops.aten._weight_int8pack_mm``, which reads the int8 matrix
once and gives each row the same result for any number of rows (checked from 1 to 64), so a
request's answer does not depend on which others share its batch. One kernel for all: widening the
matrix for products of many rows (prompts) ran no faster on the EPYC measured, and a second path
would make a row's result depend on how many rows came with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import torch

from . import allocator

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

    qweight: torch.Tensor  # int8 [out, in], contiguous
    scales: torch.Tensor  # [out], in the activation dtype
    bias: torch.Tensor | None  # in the compute dtype
    compute: torch.dtype  # what the layer takes and returns

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
    def plain_weight(self) -> torch.Tensor:
        return self.dequantized()

    @classmethod
    def stacked(cls, parts: list[Int8Linear]) -> Int8Linear:
        """One layer of the rows of bias-free ``parts``, in order (each row keeps its own scale)."""
        qweight = torch.cat([part.qweight for part in parts])
        return cls(qweight, torch.cat([part.scales for part in parts]), None, parts[0].compute)

    def with_bias(self, bias: torch.Tensor | None) -> Int8Linear:
        return replace(self, bias=bias)

    def dequantized(self) -> torch.Tensor:
        """The weight as the compute dtype sees it (a new matrix)."""
        return (self.qweight.to(self.scales.dtype) * self.scales[:, None]).to(self.compute)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        rows = x.reshape(-1, shape[-1]).to(self.scales.dtype).contiguous()
        out = torch.ops.aten._weight_int8pack_mm(rows, self.qweight, self.scales).to(self.compute)
        if self.bias is not None:
            out = out + self.bias
        return out.view(*shape[:-1], out.shape[-1])


def quantizing_as_read(compute: torch.dtype) -> Callable[[str, torch.Tensor], torch.Tensor | Int8Linear]:
    """For weights.read_state_dict: each block's matrix (every 2-D tensor under ``h.``) quantized as
    soon as it is read, its bias joining it in BloomWeights.from_state_dict. Loading then never
    holds the blocks' 16-bit matrices all at once: quantized after loading, they raised the
    load's peak RSS to about 1.3 GB, above what the int8 engine holds while it writes."""

    def convert(name: str, tensor: torch.Tensor) -> torch.Tensor | Int8Linear:
        if name.startswith("h.") and tensor.dim() == 2:
            int8 = Int8Linear.quantize(tensor, None, compute)
            # The 16-bit matrix and the quantizing's fp32 temporaries are free now, but left in
            # malloc's arena they fragment it and the next matrices' pages pile up on top.
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
                linear = Int8Linear.quantize(linear.plain_weight, linear.bias, compute)
                setattr(block, part.name, linear)
            if isinstance(linear, Int8Linear):
                held += linear.qweight.numel() + linear.scales.numel() * linear.scales.element_size()
    log.info("blocks' matrices held as int8 with per-channel scales (%.0f MB)", held / 2**20)
    return held


def gpu_refusal(device: str, mode: str) -> str | None:
    """Why ``mode`` cannot run on ``device``, or None: int8 is a CPU mode, 16-bit is the GPU path."""
    if mode == "int8" and device.startswith("cuda"):
        return (
            "SEQGPT_WEIGHTS=int8 is for the CPU only; on a GPU the model runs in 16 bits: "
            "set SEQGPT_WEIGHTS=16bit, or SEQGPT_DEVICE=cpu to run int8 on the processor"
        )
    return None
