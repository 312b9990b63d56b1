"""Products on the CPU whose rows come out the same whatever rows come with them.

A request's answer must not depend on which other requests share its batch. With torch 2.13's
CPU kernels, products of very few rows take other kernels than those of more, whose sums come out
a last bit apart; rounded to 16 bits, or decided by an argmax, that bit can tip a near tie. So
fewer rows than ``fewest_rows`` are padded with zero rows:

- fp32 (MKL): fewer than 4 rows. A row alone (1 row) and beside three others (4 rows) differed,
  for the blocks' matrices as for attention's products, on every processor measured (a Zen 4
  class EPYC with AVX-512, and with MKL held to AVX2). From 4 rows on, each row's result was the
  same for every count and position (up to 200 rows).
- bf16 and fp16 (oneDNN, packed or not): a single row. On the Zen 4 class EPYC, a row of the
  MLP's down projection (1,024 × 4,096) came out differently alone than beside others in 12 of 30
  random trials; from 2 rows on it was the same for every count and position (up to 700 rows).
  Matrices 1,024 wide showed no difference, but nothing promises that, so every one is padded.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MKL_FEWEST_ROWS = 4  # fp32
ONEDNN_FEWEST_ROWS = 2  # bf16, fp16


def fewest_rows(dtype: torch.dtype) -> int:
    """The fewest rows a CPU product in ``dtype`` is given, so that each row's result is its own."""
    return MKL_FEWEST_ROWS if dtype == torch.float32 else ONEDNN_FEWEST_ROWS


def _padded(rows: torch.Tensor, dim: int, count: int) -> torch.Tensor:
    """``rows`` with zero rows appended along ``dim`` up to ``count``."""
    missing = list(rows.shape)
    missing[dim] = count - rows.shape[dim]
    return torch.cat([rows, rows.new_zeros(missing)], dim=dim)


def matmul_by_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` with each row of ``a`` computed as in a product of any number of rows."""
    rows, fewest = a.shape[-2], fewest_rows(a.dtype)
    if rows >= fewest:
        return torch.matmul(a, b)
    return torch.matmul(_padded(a, -2, fewest), b)[..., :rows, :]


def by_rows(product, x: torch.Tensor, fewest: int) -> torch.Tensor:
    """``product`` of the rows of ``x`` (every index but the last), padded to ``fewest`` rows."""
    flat = x.reshape(-1, x.shape[-1])
    rows = flat.shape[0]
    if rows >= fewest:
        return product(x)
    out = product(_padded(flat, 0, fewest))[:rows]
    return out.reshape(*x.shape[:-1], out.shape[-1])


def linear_by_rows(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear`` with each row of ``x`` computed as in a product of any number of rows. In fp32,
    padding one row to four costs a decode step dearly (the blocks' products took 134 ms instead
    of 71 on the EPYC above), but one alone must decode as it would beside others."""
    return by_rows(lambda rows: F.linear(rows, weight, bias), x, fewest_rows(weight.dtype))


def packed_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """The product by a weight in oneDNN's packed layout (16-bit), unpadded: give it at least
    ONEDNN_FEWEST_ROWS rows (by_rows). Giving one row a second costs a batch-1 decode step's 96
    block products about 3 ms on the EPYC above (medians of 25 alternating passes: 29.4 ms for one
    row, 32.3 for two)."""
    # oneDNN reads its input as if it were contiguous, whatever its strides say.
    return torch.ops.mkldnn._linear_pointwise(x.contiguous(), weight, bias, "none", [], "")
