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
from dataclasses import dataclass, fields

import torch

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


def quantize_blocks(weights, compute: torch.dtype) -> int:
    """Replace every block's linear layers by int8 ones, in place and one matrix at a time, so the
    16-bit matrix is dropped as soon as its int8 copy exists. Returns the bytes now held by them."""
    # The block's 16-bit layers are those that can give their plain weight (bloom_weights.Linear);
    # asked by that method rather than by class, since bloom_weights imports this module.
    held = 0
    for block in weights.blocks:
        for part in fields(block):
            linear = getattr(block, part.name)
            if hasattr(linear, "plain_weight") and not isinstance(linear, Int8Linear):
                int8 = Int8Linear.quantize(linear.plain_weight, linear.bias, compute)
                setattr(block, part.name, int8)
                held += int8.qweight.numel() + int8.scales.numel() * int8.scales.element_size()
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
