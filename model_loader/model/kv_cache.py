"""The key/value caches our BLOOM runner writes.

Extraction runs a request's prompt once into a ``PromptCache``. The sequences that continue it
(one per field, or per label) live in a ``RowCache`` that holds only their own keys and values
and attends to its prompt's cache in place, so ten fields over one text keep one copy of the
text's cache.

A free prompt is one sequence with nothing to share, so generation keeps each prompt and its
answer together in a ``SequenceCache``: one stretch per sequence, as long as that sequence may
grow and no longer, instead of every prompt left-padded to the batch's longest.

Whole prompts are run into either of the two through ``reserve`` (``BloomRunner.prefill``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

import torch

from .int8_weights import quantized_rows

Views = tuple[list[torch.Tensor], list[torch.Tensor]]  # per layer, keys and values of one sequence


@dataclass(frozen=True)
class CacheLayout:
    """What every cache of one model shares: layers, heads, head size, dtype and device."""

    layers: int
    heads: int
    head_dim: int
    dtype: torch.dtype
    device: torch.device

    def per_layer(self, rows: tuple[int, ...], columns: int, make=torch.empty) -> list[torch.Tensor]:
        """One new ``[*rows, heads, columns, head_dim]`` tensor per layer, made by ``make``."""
        shape = (*rows, self.heads, columns, self.head_dim)
        return [make(shape, dtype=self.dtype, device=self.device) for _ in range(self.layers)]


class PromptRoom(Protocol):
    """A cache that whole prompts are run into (BloomRunner.prefill)."""

    def reserve(self, index: int, length: int) -> Views:
        """Views ``[1, heads, length, head_dim]`` per layer where prompt ``index`` of ``length`` tokens
        is written, marked filled."""
        ...

    def filled(self, index: int) -> None:
        """Prompt ``index``'s keys and values are all written to the views ``reserve`` gave."""
        ...


@dataclass
class PromptCache:
    """Prompts already run: keys and values per layer ``[prompts, heads, width, head_dim]``."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    mask: torch.Tensor  # [prompts, width] bool; False on left padding

    @classmethod
    def left_padded(cls, layout: CacheLayout, prompts: list[list[int]]) -> PromptCache:
        """Room for ``prompts``, each left-padded to the longest (rows continuing them see one width)."""
        width = max(len(p) for p in prompts)
        rows = (len(prompts),)
        mask = torch.zeros((len(prompts), width), dtype=torch.bool, device=layout.device)
        # Zeros, not empty: padded keys are masked, but garbage there could be NaN, and NaN times a
        # zero weight is still NaN.
        return cls(layout.per_layer(rows, width, torch.zeros), layout.per_layer(rows, width, torch.zeros), mask)

    @property
    def count(self) -> int:
        return self.mask.shape[0]

    def reserve(self, index: int, length: int) -> Views:
        start = self.mask.shape[1] - length
        if start < 0:
            raise ValueError(f"prompt cache too narrow: {length} > {self.mask.shape[1]}")
        self.mask[index, start:] = True
        place = (slice(index, index + 1), slice(None), slice(start, None))
        return [k[place] for k in self.keys], [v[place] for v in self.values]

    def filled(self, index: int) -> None:
        """Nothing to do: the views were the cache itself."""


@dataclass
class RowCache:
    """Sequences being extended; row i continues prompt ``owners[i]`` of a PromptCache (or none).

    ``slots`` place the rows in a ``[prompts, group_width]`` grid so that all rows
    of one prompt attend to its cached prompt in one matrix product.
    """

    keys: list[torch.Tensor]  # [rows, heads, capacity, head_dim]
    values: list[torch.Tensor]
    mask: torch.Tensor  # [rows, capacity] bool; False where a column holds padding
    owners: torch.Tensor  # [rows] long
    slots: torch.Tensor  # [rows] long
    group_width: int
    length: int = 0
    # True when row i sits in slot i, so grouping needs no gather or scatter.
    in_order: bool = field(init=False)

    def __post_init__(self) -> None:
        self.in_order = torch.equal(self.slots.cpu(), torch.arange(len(self.slots)))

    @classmethod
    def empty(cls, layout: CacheLayout, owners: list[int], capacity: int) -> RowCache:
        """Room for ``capacity`` new tokens in each row, a row per entry of ``owners``."""
        count = len(owners)
        owner_tensor = torch.tensor(owners, dtype=torch.long, device=layout.device)
        slots, width = grid_slots(owner_tensor)
        return cls(
            layout.per_layer((count,), capacity),
            layout.per_layer((count,), capacity),
            torch.zeros((count, capacity), dtype=torch.bool, device=layout.device),
            owner_tensor,
            slots,
            width,
        )

    @property
    def count(self) -> int:
        return self.mask.shape[0]

    @property
    def capacity(self) -> int:
        return self.mask.shape[1]

    def select(self, keep: torch.Tensor) -> RowCache:
        """Only the rows in ``keep`` (copies their cache; used to drop finished rows)."""
        owners = self.owners[keep]
        slots, width = grid_slots(owners)
        return RowCache(
            [k[keep] for k in self.keys],
            [v[keep] for v in self.values],
            self.mask[keep],
            owners,
            slots,
            width,
            self.length,
        )


def grid_slots(owners: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Each row's place in a ``[prompts, width]`` grid, rows of one prompt side by side, and that width."""
    seen: dict[int, int] = {}
    places = []
    for owner in owners.tolist():
        places.append((owner, seen.get(owner, 0)))
        seen[owner] = seen.get(owner, 0) + 1
    width = max(seen.values(), default=1)
    slots = torch.tensor([owner * width + k for owner, k in places], dtype=torch.long, device=owners.device)
    return slots, width


@dataclass
class SequenceCache:
    """Sequences each in a stretch of its own: per layer ``[heads, total, head_dim]`` keys and
    values, sequence i in columns ``starts[i]`` to ``starts[i] + capacities[i]``, the first
    ``lengths[i]`` of them filled.

    With ``int8`` (the engine's int8 mode) keys and values are held as int8, each head's vector at
    each position with an fp32 scale of its own (``max|x| / 127``, in ``key_scales`` and
    ``value_scales``, ``[heads, total, 1]`` per layer): 68 bytes where 16 bits take 128. Eight free
    prompts of 106 to 396 tokens held 223 MB of keys and values in 16 bits. Each vector is quantized
    alone, so what a sequence reads back does not depend on the other sequences of its batch."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    starts: list[int]
    capacities: list[int]
    lengths: list[int]
    key_scales: list[torch.Tensor] | None = None
    value_scales: list[torch.Tensor] | None = None
    compute: torch.dtype = torch.float32  # what prompts' passes write, before an int8 cache quantizes it
    # An int8 cache's prompts are written to 16-bit views first, quantized when filled.
    _unfilled: dict[int, Views] = field(default_factory=dict)

    @classmethod
    def empty(cls, layout: CacheLayout, capacities: list[int], int8: bool = False) -> SequenceCache:
        """Room for ``capacities[i]`` positions in sequence i (its prompt and its answer)."""
        starts = [sum(capacities[:i]) for i in range(len(capacities))]
        total, lengths = sum(capacities), [0] * len(capacities)
        if not int8:
            keys, values = layout.per_layer((), total), layout.per_layer((), total)
            return cls(keys, values, starts, list(capacities), lengths, compute=layout.dtype)
        codes, scales = replace(layout, dtype=torch.int8), replace(layout, dtype=torch.float32, head_dim=1)
        return cls(
            codes.per_layer((), total),
            codes.per_layer((), total),
            starts,
            list(capacities),
            lengths,
            scales.per_layer((), total),
            scales.per_layer((), total),
            layout.dtype,
        )

    @property
    def int8(self) -> bool:
        return self.key_scales is not None

    def _columns(self, sequence: int, end: int) -> slice:
        if end > self.capacities[sequence]:
            raise ValueError(f"sequence cache full: {end} > {self.capacities[sequence]}")
        return slice(self.starts[sequence], self.starts[sequence] + end)

    def stretch(self, layer: int, sequence: int, end: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of ``sequence``'s first ``end`` positions at ``layer``, ``[1, heads, end, head_dim]``
        (views; a 16-bit cache's only: an int8 cache is read with ``widened`` and ``scales``)."""
        if self.int8:
            raise TypeError("an int8 sequence cache has no 16-bit views: read it with widened() and scales()")
        columns = self._columns(sequence, end)
        return self.keys[layer][None, :, columns], self.values[layer][None, :, columns]

    def widened(self, layer: int, sequence: int, end: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``sequence``'s first ``end`` keys and values at ``layer`` in fp32, ``[1, heads, end, head_dim]``:
        a 16-bit cache's as they are; an int8 cache's codes, to be scaled by ``scales``."""
        columns = self._columns(sequence, end)
        return self.keys[layer][None, :, columns].float(), self.values[layer][None, :, columns].float()

    def scales(self, layer: int, sequence: int, end: int) -> tuple[torch.Tensor, torch.Tensor]:
        """An int8 cache's scales of ``sequence``'s first ``end`` keys and values, ``[1, heads, end, 1]``."""
        if self.key_scales is None or self.value_scales is None:
            raise TypeError("a 16-bit sequence cache has no scales")
        columns = self._columns(sequence, end)
        return self.key_scales[layer][None, :, columns], self.value_scales[layer][None, :, columns]

    def columns(self, sequences: list[int], positions: list[int]) -> torch.Tensor:
        """Where position ``positions[i]`` of sequence ``sequences[i]`` is held, for ``write``."""
        for sequence, position in zip(sequences, positions, strict=True):
            self._columns(sequence, position + 1)
        places = [self.starts[sequence] + position for sequence, position in zip(sequences, positions, strict=True)]
        return torch.tensor(places, dtype=torch.long, device=self.keys[0].device)

    def write(self, layer: int, columns: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Store one key and value ``[count, heads, head_dim]`` per sequence at ``columns`` (from ``columns``)."""
        if self.key_scales is None or self.value_scales is None:
            self.keys[layer].index_copy_(1, columns, keys.transpose(0, 1))
            self.values[layer].index_copy_(1, columns, values.transpose(0, 1))
            return
        count, heads, head_dim = keys.shape
        codes, scales = quantized_rows(torch.stack([keys, values]).reshape(-1, head_dim))
        codes, scales = codes.view(2, count, heads, head_dim), scales.view(2, count, heads, 1)
        self.keys[layer].index_copy_(1, columns, codes[0].transpose(0, 1))
        self.values[layer].index_copy_(1, columns, codes[1].transpose(0, 1))
        self.key_scales[layer].index_copy_(1, columns, scales[0].transpose(0, 1))
        self.value_scales[layer].index_copy_(1, columns, scales[1].transpose(0, 1))

    def reserve(self, index: int, length: int) -> Views:
        self.lengths[index] = length
        if not self.int8:
            stretches = [self.stretch(layer, index, length) for layer in range(len(self.keys))]
            return [k for k, _ in stretches], [v for _, v in stretches]
        self._columns(index, length)
        heads, _, head_dim = self.keys[0].shape
        shape, device = (1, heads, length, head_dim), self.keys[0].device
        views = (
            [torch.empty(shape, dtype=self.compute, device=device) for _ in self.keys],
            [torch.empty(shape, dtype=self.compute, device=device) for _ in self.values],
        )
        self._unfilled[index] = views
        return views

    def filled(self, index: int) -> None:
        """An int8 cache quantizes the prompt's keys and values into place, and lets the 16-bit ones go."""
        views = self._unfilled.pop(index, None)
        if views is None or self.key_scales is None or self.value_scales is None:
            return
        columns = self._columns(index, self.lengths[index])
        heads, _, head_dim = self.keys[0].shape
        pending_keys, pending_values = views
        for layer in range(len(self.keys)):
            # Taken out of the lists as quantized, so each 16-bit layer is freed as soon as it is done.
            keys, values = pending_keys.pop(0), pending_values.pop(0)
            for held, scales, new in ((self.keys, self.key_scales, keys), (self.values, self.value_scales, values)):
                codes, row_scales = quantized_rows(new[0].reshape(-1, head_dim))
                held[layer][:, columns] = codes.view(heads, -1, head_dim)
                scales[layer][:, columns] = row_scales.view(heads, -1, 1)
            del keys, values
