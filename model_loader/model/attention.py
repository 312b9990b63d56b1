"""Kernels for a whole sequence attending to itself, and the check that picks one on the device at load.

A prompt attending to itself is the largest attention a request runs. Four kernels can do it:
eager (our own matrix products, the reference the fidelity tests hold to ``transformers``),
PyTorch's SDPA on fp32 copies or on the 16-bit operands themselves, and on CUDA flash-attn's
ALiBi kernel. A kernel that is fast on paper may be
wrong on a given device, driver or build, so none is trusted untried: at load each candidate
runs a short known-answer check against eager on the actual device, and the first that agrees
is used. Status and log say which one runs and why the others do not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .cpu_dtype import processor_flags, sdpa_on_16bit

log = logging.getLogger(__name__)

# Attention arithmetic is done in fp32 whatever the weights' dtype: it costs little next
# to the matrix products, and keeps a request's result the same whichever other requests
# share its batch (bf16 rounding would amplify the tiny differences that padding to a
# different width makes in the reductions). The caches keep keys and values in the
# weights' dtype, in which they were computed, so widening them at use loses nothing;
# it halves their memory, and reading half the bytes beats reading fp32 ones. A decode
# step, one sequence at a time with nothing padded, need not widen them at all: its kernel
# (step_sdpa) sums their 16-bit products in fp32.
ATTENTION_DTYPE = torch.float32

# A kernel is given: query [1, heads, q, head_dim], keys and values [1, heads, k, head_dim]
# in the weights' dtype, the queries being the last q of the k positions; ``bias``
# [1, heads, q, k] (ALiBi plus the causal mask, fp32); the per-head ALiBi ``slopes`` (fp32)
# and the score ``scale``. It returns the context [1, heads, q, head_dim]. A kernel of ANY_BIAS
# may also be given any q of the positions with any mask in ``bias`` (a token tree's), and a
# bias its AttentionChoice.prepared (padded: at least q by k).
Kernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor]


def widened(cached: torch.Tensor) -> torch.Tensor:
    return cached.to(ATTENTION_DTYPE)


# Queries that eager attention takes at a time. All of a 1,024-token prompt's queries at once
# held their scores, the fp32 scores with the bias added, the probabilities and their half copy
# together: about 190 MB beside the 64 MB bias. In slices of 128 queries that is 24 MB, and no
# number changes: each query's scores and probabilities come from its own row alone.
QUERY_SLICE = 128


def eager(query, keys, values, bias, slopes, scale: float) -> torch.Tensor:
    """Matrix products in the weights' dtype with the softmax and ALiBi in fp32: a sequence
    alone depends on nothing else in a batch, so it may use the faster dtype."""
    queries = query.shape[2]
    if queries <= QUERY_SLICE or bias.shape[2] != queries:
        return _eager(query, keys, values, bias, scale)
    slices = [slice(first, first + QUERY_SLICE) for first in range(0, queries, QUERY_SLICE)]
    return torch.cat([_eager(query[:, :, part], keys, values, bias[:, :, part], scale) for part in slices], dim=2)


def _eager(query, keys, values, bias, scale: float) -> torch.Tensor:
    # One pass: the bf16 scores widen exactly (and SeqGPT's scale, 1/8, multiplies exactly).
    scores = torch.add(bias, torch.matmul(query, keys.transpose(-1, -2)), alpha=scale)
    return torch.matmul(torch.softmax(scores, dim=-1).to(values.dtype), values)


def eager_on_int8(query, keys, values, key_scales, value_scales, bias, scale: float) -> torch.Tensor:
    """Eager attention over an int8 cache (kv_cache.SequenceCache): ``keys`` and ``values`` are its
    codes widened to fp32, ``[1, heads, n, head_dim]``, and each position's scale ``[1, heads, n, 1]``
    multiplies its score and its probability instead of its vector, since s·(q·k) = q·(s·k): n numbers
    scaled where the vectors would take 64 times more (a decode step over 400 cached positions took
    157 µs a layer to scale the vectors, 2.3 ms over 24 layers, on a 2-core Xeon)."""
    scores = torch.matmul(query, keys.transpose(-1, -2)).mul_(key_scales.transpose(-1, -2))
    probabilities = torch.softmax(torch.add(bias, scores, alpha=scale), dim=-1)
    return torch.matmul(probabilities.mul_(value_scales.transpose(-1, -2)), values)


def sdpa(query, keys, values, bias, slopes, scale: float) -> torch.Tensor:
    """PyTorch's fused attention, in fp32 so that the bias keeps its precision."""
    return F.scaled_dot_product_attention(
        widened(query), widened(keys), widened(values), attn_mask=bias, scale=scale
    ).to(values.dtype)


# PyTorch's fused attention on the CPU keeps what it builds for each shape of queries and keys it
# meets, and never lets it go: on a 2-core Xeon with AMX (torch 2.13) 0.5 to 1 MB for each new
# length of a prompt of about 1,000 tokens, 700 MB once every length from 2 to 1,600 had run, and
# an engine serving texts of all lengths grew 4 to 5 MB a batch. Padded to multiples of 64
# positions, the prompts of a 1,024-token window take 16 shapes, which kept 4 MB in all; shapes of
# 65 queries or fewer kept nothing measurable.
PADDED_POSITIONS = 64


def _padded_count(count: int) -> int:
    return -(-count // PADDED_POSITIONS) * PADDED_POSITIONS


def padded_bias(bias: torch.Tensor) -> torch.Tensor:
    """``bias`` ``[1, heads, q, k]`` grown to multiples of PADDED_POSITIONS in both sizes: the added
    keys hidden from every query, the added queries (whose results are dropped) seeing every key."""
    queries, keys = bias.shape[-2:]
    rows, columns = _padded_count(queries), _padded_count(keys)
    if columns > keys:
        bias = F.pad(bias, (0, columns - keys), value=torch.finfo(ATTENTION_DTYPE).min)
    if rows > queries:
        bias = F.pad(bias, (0, 0, 0, rows - queries), value=0.0)
    return bias


def _grown(positions: torch.Tensor, count: int) -> torch.Tensor:
    """``positions`` ``[1, heads, n, head_dim]`` with zero rows appended up to ``count``."""
    return positions if positions.shape[2] == count else F.pad(positions, (0, 0, 0, count - positions.shape[2]))


def sdpa_16bit(query, keys, values, bias, slopes, scale: float) -> torch.Tensor:
    """PyTorch's fused attention on the operands as they are: on the CPU it multiplies 16-bit
    queries and keys into fp32 sums, takes the fp32 bias as it is and runs the softmax in fp32, so
    the bias keeps its precision without widened copies. Where AMX multiplies bf16 it is 2 to 3
    times faster than eager (cpu_dtype.sdpa_on_16bit); a prompt runs alone, so its result is its own.
    Queries, keys and values are padded to the padded bias (see PADDED_POSITIONS), which a runner
    pads once for all its layers (AttentionChoice.prepared)."""
    queries = query.shape[2]
    bias = padded_bias(bias)
    rows, columns = bias.shape[-2:]
    context = F.scaled_dot_product_attention(
        _grown(query, rows), _grown(keys, columns), _grown(values, columns), attn_mask=bias, scale=scale
    )
    return context[:, :, :queries]


def flash(query, keys, values, bias, slopes, scale: float) -> torch.Tensor:
    """flash-attn's ALiBi kernel (CUDA, fp16 or bf16). It adds ``-slope * distance`` to each score,
    which differs from BLOOM's ``slope * key position`` by a constant per query, so the softmax is
    the same; with fewer queries than keys its causal mask aligns them to the last keys, as here."""
    from flash_attn import flash_attn_varlen_func  # not installable everywhere, so imported here

    q, k = query.shape[2], keys.shape[2]
    offsets = torch.tensor([0, q], dtype=torch.int32, device=query.device), torch.tensor(
        [0, k], dtype=torch.int32, device=query.device
    )
    context = flash_attn_varlen_func(
        query[0].transpose(0, 1).contiguous(),
        keys[0].transpose(0, 1).contiguous(),
        values[0].transpose(0, 1).contiguous(),
        cu_seqlens_q=offsets[0],
        cu_seqlens_k=offsets[1],
        max_seqlen_q=q,
        max_seqlen_k=k,
        softmax_scale=scale,
        causal=True,
        alibi_slopes=slopes.to(torch.float32),
    )
    return context.transpose(0, 1)[None]


KERNELS: dict[str, Kernel] = {"flash-attn": flash, "sdpa": sdpa, "sdpa-16bit": sdpa_16bit, "eager": eager}
# The kernels that apply whatever bias they are given, so that they may also serve a token tree (a
# prompt and label continuations that do not see one another) and a pass that keeps only some
# queries (check_kernel checks them on such a mask too). flash-attn makes its own ALiBi and causal
# mask from positions, so it serves whole causal sequences only.
ANY_BIAS = frozenset({"eager", "sdpa", "sdpa-16bit"})


def candidates_for(device: torch.device, dtype: torch.dtype) -> tuple[str, ...]:
    """The kernels to try for a sequence attending to itself, in order. On a GPU the fastest
    first. On the CPU eager, the path the fidelity tests hold token for token to ``transformers``,
    except that SDPA on the 16-bit operands goes first where AMX multiplies bf16 (measured faster
    there: cpu_dtype.sdpa_on_16bit)."""
    if device.type != "cpu":
        return ("flash-attn", "sdpa", "eager")
    if sdpa_on_16bit(str(dtype).removeprefix("torch."), processor_flags()):
        return ("sdpa-16bit", "eager")
    return ("eager",)

# Largest difference from eager a kernel may show on the check, by dtype: a few units in the
# last place of the dtype the matrix products run in, scaled to outputs of about one.
TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 5e-2, torch.float16: 1e-2}


@dataclass(frozen=True)
class AttentionChoice:
    """The kernel in use, and why each candidate before it was passed over."""

    name: str
    kernel: Kernel
    rejected: tuple[tuple[str, str], ...] = ()

    @property
    def any_bias(self) -> bool:
        """Whether the kernel may serve any bias, not only a causal sequence's (ANY_BIAS)."""
        return self.name in ANY_BIAS

    def prepared(self, bias: torch.Tensor) -> torch.Tensor:
        """``bias`` as the kernel takes it, made once for all the layers of a pass."""
        return padded_bias(bias) if self.kernel is sdpa_16bit else bias

    def describe(self) -> str:
        """One line for the status and the log: ``sdpa (flash-attn: not installed …)``."""
        if not self.rejected:
            return self.name
        return f"{self.name} ({'; '.join(f'{name}: {why}' for name, why in self.rejected)})"


# A decode step's kernel: one new query of one sequence over that sequence's cached keys and values,
# all in the cache's dtype, with ``bias`` [1, heads, 1, k] in fp32; returns [1, heads, 1, head_dim].
StepKernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor]


def step_widened(query, keys, values, bias, scale: float) -> torch.Tensor:
    """Eager's products on fp32 copies of the cached keys and values: exact, and the fallback."""
    return eager(widened(query), widened(keys), widened(values), bias, None, scale)


def step_sdpa(query, keys, values, bias, scale: float) -> torch.Tensor:
    """PyTorch's fused kernel straight on the cache: on the CPU it multiplies 16-bit operands
    into fp32 sums, takes the fp32 bias as it is, and runs the softmax in fp32, so no widened copy
    of the keys and values is made. Those copies wrote twice the cache's bytes at every layer
    of every step; over eight sequences of about 280 positions that was 435 MB a step, which
    also slowed the weights' reads beside it (2-core Xeon with AMX: a layer's attention for one
    sequence took 26 µs against 161, and the step's matrix products 57 ms against 78)."""
    return F.scaled_dot_product_attention(query, keys, values, attn_mask=bias, scale=scale)


def check_step_kernel(kernel: StepKernel, slopes: torch.Tensor, head_dim: int, dtype: torch.dtype) -> str | None:
    """Why ``kernel`` cannot serve decode steps on this device and dtype, or None: it must agree
    with the widened products, and give a sequence the same result wherever its keys and values
    lie in the cache (a sequence's answer may not depend on which others share its batch)."""
    heads, length, scale = slopes.shape[0], 37, head_dim**-0.5
    generator = torch.Generator(device="cpu").manual_seed(4321)
    # A cache of two stretches, the sequence's keys and values at the start of it and again after them.
    cache = [
        torch.randn((heads, length, head_dim), generator=generator).to(dtype=dtype, device=slopes.device)
        .repeat(1, 2, 1)
        for _ in range(2)
    ]
    query = torch.randn((1, heads, 1, head_dim), generator=generator).to(dtype=dtype, device=slopes.device)
    bias = causal_bias(slopes, 1, length)
    keys, values = (part[None, :, :length] for part in cache)
    moved_keys, moved_values = (part[None, :, length:] for part in cache)
    expected = step_widened(query, keys, values, bias, scale)
    try:
        got = kernel(query, keys, values, bias, scale)
        elsewhere = kernel(query, moved_keys, moved_values, bias, scale)
    except Exception as exc:  # a kernel that cannot run here is passed over, never fatal
        return f"raised {type(exc).__name__}: {exc}"
    problem = _disagreement(got, expected, dtype, "the widened products")
    if problem is not None:
        return problem
    if not torch.equal(got, elsewhere):
        return "gave a sequence another result at another place in the cache"
    return None


def step_candidates(device: torch.device, dtype: torch.dtype) -> tuple[tuple[str, StepKernel], ...]:
    """The kernels to try for decode steps before the widened products: SDPA on a GPU, and on the
    CPU where the processor runs it faster (cpu_dtype.sdpa_on_16bit)."""
    if device.type != "cpu" or sdpa_on_16bit(str(dtype).removeprefix("torch."), processor_flags()):
        return (("sdpa", step_sdpa),)
    return ()


def choose_step_attention(
    slopes: torch.Tensor,
    head_dim: int,
    dtype: torch.dtype,
    candidates: Sequence[tuple[str, StepKernel]] | None = None,
) -> tuple[str, StepKernel]:
    """The decode steps' kernel for a cache of ``dtype``: the first candidate (by default
    step_candidates) whose check passes on ``slopes``' device, else the widened products."""
    if candidates is None:
        candidates = step_candidates(slopes.device, dtype)
    for name, kernel in candidates:
        problem = check_step_kernel(kernel, slopes, head_dim, dtype)
        if problem is None:
            log.info("decode steps' attention: %s", name)
            return name, kernel
        log.warning("decode steps' attention: %s not used: %s", name, problem)
    log.info("decode steps' attention: widened eager")
    return "widened eager", step_widened


def causal_bias(slopes: torch.Tensor, queries: int, keys: int) -> torch.Tensor:
    """BLOOM's ALiBi bias and causal mask for the last ``queries`` of ``keys`` positions, [1, heads, q, k]."""
    key_positions = torch.arange(keys, device=slopes.device)
    query_positions = torch.arange(keys - queries, keys, device=slopes.device)
    bias = slopes[:, None, None] * key_positions[None, None, :].to(torch.float32)
    hidden = key_positions[None, :] > query_positions[:, None]
    return bias.expand(-1, queries, -1).masked_fill(hidden[None], torch.finfo(ATTENTION_DTYPE).min)[None]


def check_kernel(
    kernel: Kernel, slopes: torch.Tensor, head_dim: int, dtype: torch.dtype, any_bias: bool = False
) -> str | None:
    """Why ``kernel`` cannot be used on this device and dtype, or None when it matches eager.

    The check covers what the runner asks of a kernel: every query of a sequence, and its last
    query alone (the final layer of a prefill computes only that one); with ``any_bias``, also
    some of a sequence's queries under a mask that is not causal, as a token tree's is."""
    heads, length, scale = slopes.shape[0], 37, head_dim**-0.5
    generator = torch.Generator(device="cpu").manual_seed(1234)
    q, k, v = (
        torch.randn((1, heads, length, head_dim), generator=generator).to(dtype=dtype, device=slopes.device)
        for _ in range(3)
    )
    cases = [(q[:, :, length - queries :], causal_bias(slopes, queries, length)) for queries in (length, 1)]
    if any_bias:
        picked = torch.tensor([3, 20, 21, 36], device=slopes.device)
        cases.append((q[:, :, picked], _tree_like_bias(slopes, length, generator)[:, :, picked]))
    for query, bias in cases:
        expected = eager(query, k, v, bias, slopes, scale).float()
        try:
            got = kernel(query, k, v, bias, slopes, scale)
        except ImportError as exc:
            return f"not installed ({exc})"
        except Exception as exc:  # a kernel that cannot run here is passed over, never fatal
            return f"raised {type(exc).__name__}: {exc}"
        problem = _disagreement(got, expected, dtype, "eager")
        if problem is not None:
            return problem
    return None


def _tree_like_bias(slopes: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    """ALiBi over ``length`` positions with a mask that is not causal: each query sees itself and
    about half the other keys, at random, [1, heads, length, length]."""
    positions = torch.arange(length, dtype=torch.float32)
    visible = (torch.rand((length, length), generator=generator) < 0.5) | torch.eye(length, dtype=torch.bool)
    bias = (slopes.cpu()[:, None, None] * positions).expand(-1, length, -1)
    return bias.masked_fill(~visible[None], torch.finfo(ATTENTION_DTYPE).min)[None].to(slopes.device)


def _disagreement(got: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, reference: str) -> str | None:
    """Why a kernel's output ``got`` is not ``expected`` (from ``reference``) within ``dtype``'s tolerance, or None."""
    if got.shape != expected.shape:
        return f"returned shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
    worst = (got.float() - expected.float()).abs().max().item()
    tolerance = TOLERANCE.get(dtype, 3e-2)
    if not worst <= tolerance:  # also catches NaN
        held = str(dtype).removeprefix("torch.")
        return f"differs from {reference} by {worst:.3g} (tolerance {tolerance:g} in {held})"
    return None


def choose_attention(
    slopes: torch.Tensor,
    head_dim: int,
    dtype: torch.dtype,
    candidates: Sequence[str | tuple[str, Kernel]] | None = None,
) -> AttentionChoice:
    """The first candidate that passes its check on ``slopes``' device; eager when none does.

    ``candidates`` are names from ``KERNELS`` or ``(name, kernel)`` pairs (tests inject kernels that way);
    by default, ``candidates_for`` the device and dtype."""
    if candidates is None:
        candidates = candidates_for(slopes.device, dtype)
    rejected: list[tuple[str, str]] = []
    for candidate in candidates:
        name, kernel = (candidate, KERNELS[candidate]) if isinstance(candidate, str) else candidate
        problem = None if kernel is eager else check_kernel(kernel, slopes, head_dim, dtype, name in ANY_BIAS)
        if problem is None:
            choice = AttentionChoice(name, kernel, tuple(rejected))
            log.info("attention: %s", choice.describe())
            return choice
        log.warning("attention kernel %s not used: %s", name, problem)
        rejected.append((name, problem))
    choice = AttentionChoice("eager", eager, tuple(rejected))
    log.info("attention: %s", choice.describe())
    return choice
