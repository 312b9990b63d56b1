"""The output projection as fp16 weights multiplied by FBGEMM's fp16 kernel, on the CPU.

A free prompt's decode step reads the whole 250,880-row output projection (514 MB in 16 bits)
for one row or a few. FBGEMM's fp16 product (``torch.ops.quantized.linear_dynamic_fp16``, torch's
own kernel for dynamic fp16 linear layers) reads fp16 weights and multiplies in fp32: on the
development EPYC (Zen 4 class, 2 cores) one row took 15 ms against 20 ms for oneDNN's packed
bf16 product, and 8 rows took the same time on both. It takes its input in fp32 (the bf16 hidden
state widens exactly) and gives fp32 logits, so they are also more exact than bf16 ones.

Each row's result is the same for any number of rows (checked from 1 to 64 rows), so a sequence's
answer does not depend on which others share its batch. Not for the blocks of a 16-bit engine:
with many rows (a prompt) it runs at about half oneDNN's bf16 rate, and holding both would double
their memory. Where the engine computes in fp32, though, it beats MKL's fp32 products on reading
and on prompts alike, so fp16-stored blocks run through it there (``fp16_blocks_as_read``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import cache

import torch
import torch.nn.functional as F

from . import allocator


class HalfLinear:
    """A linear layer whose weight ``[out, in]`` is held as fp16 in FBGEMM's packed layout, with
    an optional fp32 bias added after the product."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        # The kernel packs from fp32 and rounds to fp16 (to nearest, as .half() does).
        self.packed = torch.ops.quantized.linear_prepack_fp16(weight.float(), None)
        self.out_features = weight.shape[0]
        self.bias = bias

    @property
    def dtype(self) -> torch.dtype:
        """What the layer returns: its products are fp32."""
        return torch.float32

    @property
    def fewest_rows(self) -> int:
        """1: FBGEMM's kernel gives a row alone what it gives that row among others, so none is padded."""
        return 1

    @property
    def plain_weight(self) -> torch.Tensor:
        """The fp16 weight, widened to fp32 (exactly): a new matrix."""
        weight, _ = torch.ops.quantized.linear_unpack_fp16(self.packed)
        return weight

    def with_bias(self, bias: torch.Tensor | None) -> HalfLinear:
        layer = copy.copy(self)
        layer.bias = bias
        return layer

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in any float dtype; the product in fp32."""
        shape = x.shape
        rows = x.reshape(-1, shape[-1]).float().contiguous()
        out = torch.ops.quantized.linear_dynamic_fp16(rows, self.packed)
        if self.bias is not None:
            out = out + self.bias
        return out.view(*shape[:-1], self.out_features)


def fp16_blocks_as_read(stored: dict[str, torch.dtype]) -> Callable[[str, torch.Tensor], torch.Tensor | HalfLinear]:
    """For weights.read_state_dict where the engine computes in fp32: each block matrix that the
    file holds in fp16 (``stored``: name -> stored dtype), as SeqGPT's files hold all of them, is
    held as fp16 for this kernel as soon as it is read, its bias joining it in
    BloomWeights.from_state_dict. Nothing is rounded (the values are fp16's), the arithmetic stays
    fp32, and against fp32 matrices through MKL the blocks take half the memory (604 MB, not
    1.2 GB), a one-row decode step reads half the bytes, and each row's result is the same for
    any number of rows (see row_products for what MKL gives a few rows)."""

    def convert(name: str, tensor: torch.Tensor) -> torch.Tensor | HalfLinear:
        if name.startswith("h.") and tensor.dim() == 2 and stored.get(name) == torch.float16:
            layer = HalfLinear(tensor)
            del tensor
            allocator.release_freed()  # as for int8: the fp32 matrix's pages go back at once
            return layer
        return tensor

    return convert


@cache  # the answer is the torch build's and the processor's
def half_kernel_problem() -> str | None:
    """Why the fp16 kernel is not to be used here, or None: torch builds without FBGEMM (it needs
    AVX2) lack the op; a probe checks that it computes the fp32 product of the fp16 weights and
    gives a row the same result alone and among others."""
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(96, 64, generator=generator)
    rows = torch.randn(9, 64, generator=generator)
    try:
        layer = HalfLinear(weight)
        together, alone = layer(rows), layer(rows[:1])
    except (AttributeError, RuntimeError, NotImplementedError) as exc:
        return f"this torch build has no FBGEMM fp16 product ({type(exc).__name__}: {exc})"
    if not torch.equal(together[:1], alone):
        return "FBGEMM's fp16 product gave a row another result among other rows"
    if not torch.allclose(together, F.linear(rows, weight.half().float()), rtol=1e-4, atol=1e-4):
        return "FBGEMM's fp16 product differed from the fp32 product of the fp16 weights"
    return None
