"""SeqGPT's weights as plain tensors, named by their role in a BLOOM block."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from . import allocator
from .cpu_dtype import onednn_half_dtypes, packing_problem, processor_flags
from .half_kernel import HalfLinear
from .int8_weights import Int8Linear
from .row_products import ONEDNN_FEWEST_ROWS, by_rows, fewest_rows, packed_linear

log = logging.getLogger(__name__)


@dataclass
class Linear:
    weight: torch.Tensor  # [out, in]; on the CPU possibly held in oneDNN's packed layout
    bias: torch.Tensor | None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # Padded to fewest_rows, so a decode step that carries that many rows pads nothing.
        fewest = self.fewest_rows
        return self._product(x) if fewest == 1 else by_rows(self._product, x, fewest)

    def _product(self, rows: torch.Tensor) -> torch.Tensor:
        if self.weight.is_mkldnn:
            return packed_linear(rows, self.weight, self.bias)
        return F.linear(rows, self.weight, self.bias)

    @property
    def dtype(self) -> torch.dtype:
        return self.weight.dtype

    @property
    def fewest_rows(self) -> int:
        """The fewest rows a product by this matrix is given: fewer are padded with zero rows (see
        row_products), so a caller that gives it at least as many saves the padding."""
        if self.weight.is_mkldnn:
            return ONEDNN_FEWEST_ROWS
        if self.weight.device.type == "cpu":
            return fewest_rows(self.weight.dtype)
        return 1

    @property
    def plain_weight(self) -> torch.Tensor:
        """The weight as an ordinary strided tensor (a copy when it is packed)."""
        return self.weight.to_dense() if self.weight.is_mkldnn else self.weight

    def packed(self) -> Linear:
        return Linear(torch.ops.mkldnn._reorder_linear_weight(self.weight, 1), self.bias)

    def packing_problem(self) -> str | None:
        """Why this matrix is not to be packed here, or None. The processor is asked first, since
        oneDNN's private ops raise where it lacks the instructions; then a probe checks that
        the packed product is bit-identical to the plain one."""
        dtype = str(self.weight.dtype).removeprefix("torch.")
        problem = packing_problem(dtype, processor_flags(), onednn_half_dtypes())
        if problem is not None:
            return problem
        probe = torch.linspace(-1, 1, 3 * self.weight.shape[1], dtype=self.weight.dtype).view(3, -1)
        try:
            if torch.equal(self.packed()(probe), F.linear(probe, self.weight, self.bias)):
                return None
        except (AttributeError, RuntimeError) as exc:
            return f"this torch build cannot pack {dtype} ({exc})"
        return f"a packed {dtype} product differed from the plain one"

    def packs_exactly(self) -> bool:
        return self.packing_problem() is None


@dataclass
class Norm:
    weight: torch.Tensor
    bias: torch.Tensor


@dataclass
class Block:
    input_norm: Norm
    qkv: Linear
    dense: Linear
    post_attention_norm: Norm
    up: Linear
    down: Linear


# The one table of Hugging Face names: each part of a block, by its name in ``Block``, and the
# tensors outside the blocks (``transformer.`` omitted; a block's are under ``h.{layer}.``).
BLOCK_PARTS = {
    "input_norm": "input_layernorm",
    "qkv": "self_attention.query_key_value",
    "dense": "self_attention.dense",
    "post_attention_norm": "post_attention_layernorm",
    "up": "mlp.dense_h_to_4h",
    "down": "mlp.dense_4h_to_h",
}
EMBEDDING = "word_embeddings.weight"
EMBEDDING_NORM = "word_embeddings_layernorm"
FINAL_NORM = "ln_f"
OUTPUT = "lm_head.weight"  # absent from SeqGPT's files: the output projection is the tied embedding


@dataclass
class BloomWeights:
    embedding: torch.Tensor  # [vocab, hidden]
    output: torch.Tensor  # the output projection; the embedding itself when tied, as in SeqGPT
    embedding_norm: Norm
    blocks: list[Block]
    final_norm: Norm
    num_heads: int
    eps: float
    # Rows [first, stop) of ``output`` in a given dtype, read without touching ``output`` itself
    # (a memory map whose pages would otherwise become resident beside the copy); None: slice it.
    read_output_rows: Callable[[int, int, torch.dtype], torch.Tensor] | None = None

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor], num_heads: int, eps: float) -> BloomWeights:
        """Pick the tensors out of a BLOOM state dict (names without the ``transformer.`` prefix)."""

        def take(name: str) -> torch.Tensor:
            if name not in state:
                raise KeyError(f"the weights have no tensor {name}")
            return state[name]

        def pair(kind, name: str):
            weight, bias = take(f"{name}.weight"), take(f"{name}.bias")
            # Held otherwise as it was read (int8_weights.quantizing_as_read, half_kernel.fp16_blocks_as_read).
            if isinstance(weight, (Int8Linear, HalfLinear)):
                return weight.with_bias(bias)
            return kind(weight, bias)

        layers = 1 + max(int(name.split(".")[1]) for name in state if name.startswith("h."))
        kinds = {f.name: f.type for f in fields(Block)}
        blocks = [
            Block(
                **{
                    part: pair(Norm if kinds[part] == "Norm" else Linear, f"h.{i}.{name}")
                    for part, name in BLOCK_PARTS.items()
                }
            )
            for i in range(layers)
        ]
        embedding = take(EMBEDDING)
        return cls(
            embedding=embedding,
            output=state.get(OUTPUT, embedding),
            embedding_norm=pair(Norm, EMBEDDING_NORM),
            blocks=blocks,
            final_norm=pair(Norm, FINAL_NORM),
            num_heads=num_heads,
            eps=eps,
        )

    def pack_linears(self) -> bool:
        """Reorder every block's matrices into oneDNN's packed layout, in place and one matrix
        at a time, so that plain and packed copies of all weights never coexist. A bf16
        product with a plain weight reorders it on every call; packed, the few-row products
        of decoding run about 1.6 times faster and prompts about 6%, with bit-identical
        results (fp16 gains less, but also packs exactly). Returns False, leaving the
        matrices plain (same results, slower), where this processor or torch build cannot."""
        problem = self.blocks[0].qkv.packing_problem()
        if problem is not None:
            log.info("weights stay in the plain layout (same results): %s", problem)
            return False
        for block in self.blocks:
            for part in fields(Block):
                linear = getattr(block, part.name)
                if isinstance(linear, Linear):
                    setattr(block, part.name, linear.packed())
        return True

    def to(self, device: str) -> BloomWeights:
        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device)

        def moved(part):
            # Both are CPU layouts, made only where the weights are loaded for the CPU.
            if isinstance(part, (Int8Linear, HalfLinear)):
                return part
            return type(part)(move(part.weight), move(part.bias))

        embedding = move(self.embedding)
        return BloomWeights(
            embedding=embedding,
            output=embedding if self.output is self.embedding else move(self.output),
            read_output_rows=self.read_output_rows if device == "cpu" else None,
            embedding_norm=moved(self.embedding_norm),
            blocks=[
                Block(*(moved(getattr(block, f.name)) for f in fields(Block)))
                for block in self.blocks
            ],
            final_norm=moved(self.final_norm),
            num_heads=self.num_heads,
            eps=self.eps,
        )


# Rows of the output projection built at a time: building holds one slice twice (as read, and
# converted or packed), never the whole 514 MB matrix.
OUTPUT_SLICE_ROWS = 32768
# Rows of the output projection quantized at a time (16 MB in fp32) in SEQGPT_WEIGHTS=int8.
QUANTIZE_ROWS = 4096


def _row_ranges(first: int, stop: int, size: int) -> list[tuple[int, int]]:
    """Rows [first, stop) as consecutive ranges of at most ``size`` rows."""
    return [(start, min(start + size, stop)) for start in range(first, stop, size)]


class OutputProjection:
    """Logits over the whole vocabulary, with the output projection held in the compute dtype,
    packed like the blocks' matrices where they are packed; or, with ``half``, as fp16 for
    FBGEMM's fp16 kernel, which reads it faster and gives fp32 logits (see half_kernel).

    A decode step then reads the projection once, as it is multiplied. The stored matrix is
    fp16 and, on a CPU, memory-mapped: multiplying it in another dtype would convert it at
    every step, and even in fp16 a plain matrix multiplies slower than a packed one. Built
    on first use, so that an appliance serving only classification and extraction (which
    score a few hundred rows, read straight from the map) never holds it.
    """

    def __init__(
        self, weights: BloomWeights, dtype: torch.dtype, pack: bool, int8: bool = False, half: bool = False
    ) -> None:
        self._weights, self._dtype, self._pack, self._int8 = weights, dtype, pack, int8
        self.half = half
        self._slices: list | None = None

    @property
    def resident(self) -> bool:
        return self._slices is not None

    def _rows(self, first: int, stop: int, dtype: torch.dtype | None = None) -> torch.Tensor:
        read, dtype = self._weights.read_output_rows, dtype or self._dtype
        if read is not None:
            return read(first, stop, dtype)
        return self._weights.output[first:stop].to(dtype)

    def _build(self) -> list:
        if self._int8:
            return self._build_int8()
        if self.half:
            return self._build_half()
        output = self._weights.output
        if output.dtype == self._dtype and (self._weights.read_output_rows is None or not self._pack):
            # Already what a product reads (and where it is resident and tied, the embedding's
            # lookups read it too, so a packed copy would hold the matrix twice).
            return [Linear(output, None)]
        slices = []
        for first, stop in _row_ranges(0, output.shape[0], OUTPUT_SLICE_ROWS):
            linear = Linear(self._rows(first, stop), None)
            slices.append(linear.packed() if self._pack else linear)
        log.info("output projection held in %s%s", self._dtype, " (packed)" if self._pack else "")
        return slices

    def _build_int8(self) -> list:
        """Slices quantized from fp32 reads of the stored rows (SEQGPT_WEIGHTS=int8), a few thousand
        rows at a time: each row has its own scale, so the result is the same, while the fp32 rows
        and the quantizing's temporaries stay small (a whole slice at a time, they raised the int8
        engine's peak RSS by about 500 MB on the first free prompt)."""
        slices = []
        for first, stop in _row_ranges(0, self._weights.output.shape[0], OUTPUT_SLICE_ROWS):
            parts = []
            for start, end in _row_ranges(first, stop, QUANTIZE_ROWS):
                rows = self._rows(start, end, torch.float32)
                parts.append(Int8Linear.quantize(rows, None, self._dtype))
                del rows
                allocator.release_freed()  # see int8_weights.quantizing_as_read
            slices.append(Int8Linear.stacked(parts).for_kernel())
            del parts
            allocator.release_freed()  # the parts, and the stacked slice before packing
        log.info("output projection held as int8 with per-row scales")
        return slices

    def _build_half(self) -> list:
        """Slices packed for the fp16 kernel from fp32 reads of the stored rows."""
        ranges = _row_ranges(0, self._weights.output.shape[0], OUTPUT_SLICE_ROWS)
        slices = [HalfLinear(self._rows(first, stop, torch.float32)) for first, stop in ranges]
        log.info("output projection held as fp16 for FBGEMM's fp16 kernel (fp32 logits)")
        return slices

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits ``[..., vocab]`` in the compute dtype (fp32 with ``half``)."""
        if self._slices is None:
            self._slices = self._build()
        if len(self._slices) == 1:
            return self._slices[0](hidden)
        return torch.cat([part(hidden) for part in self._slices], dim=-1)
