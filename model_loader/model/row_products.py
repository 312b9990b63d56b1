"""fp32 products on the CPU whose rows come out the same whatever rows come with them.

A request's answer must not depend on which other requests share its batch. With torch 2.13's
CPU kernels (MKL), an fp32 product of fewer than FEW_ROWS_KERNEL rows takes another kernel than
one of more, and its sums come out a last bit apart: a row alone (1 row) and beside three others
(4 rows) differed, for the blocks' matrices as for attention's products, on every processor
measured (a Zen 4 class EPYC with AVX-512, and with MKL held to AVX2). From 4 rows on, each
row's result was the same for every count and position (up to 200 rows). Rounded to bf16, or
decided by an argmax, that bit can tip a near tie. So fewer rows are padded with zero rows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FEW_ROWS_KERNEL = 4


def _padded(rows: torch.Tensor, dim: int) -> torch.Tensor:
    """``rows`` with zero rows appended along ``dim`` up to FEW_ROWS_KERNEL."""
    missing = list(rows.shape)
    missing[dim] = FEW_ROWS_KERNEL - rows.shape[dim]
    return torch.cat([rows, rows.new_zeros(missing)], dim=dim)


def matmul_by_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` with each row of ``a`` computed as in a product of any number of rows."""
    rows = a.shape[-2]
    if rows >= FEW_ROWS_KERNEL:
        return torch.matmul(a, b)
    return torch.matmul(_padded(a, -2), b)[..., :rows, :]


def linear_by_rows(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear`` with each row of ``x`` (every index but the last) computed as in a product
    of any number of rows. Padding one row to four costs a decode step dearly in fp32 (the
    blocks' products took 134 ms instead of 71 on the EPYC above), but one alone must decode
    as it would beside others."""
    flat = x.reshape(-1, x.shape[-1])
    rows = flat.shape[0]
    if rows >= FEW_ROWS_KERNEL:
        return F.linear(x, weight, bias)
    out = F.linear(_padded(flat, 0), weight, bias)[:rows]
    return out.reshape(*x.shape[:-1], out.shape[-1])
