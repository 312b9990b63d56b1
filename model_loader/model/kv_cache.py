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

from dataclasses import dataclass, field
from typing import Protocol

import torch

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
    ``lengths[i]`` of them filled."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    starts: list[int]
    capacities: list[int]
    lengths: list[int]

    @classmethod
    def empty(cls, layout: CacheLayout, capacities: list[int]) -> SequenceCache:
        """Room for ``capacities[i]`` positions in sequence i (its prompt and its answer)."""
        starts = [sum(capacities[:i]) for i in range(len(capacities))]
        return cls(
            layout.per_layer((), sum(capacities)),
            layout.per_layer((), sum(capacities)),
            starts,
            list(capacities),
            [0] * len(capacities),
        )

    def stretch(self, layer: int, sequence: int, end: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of ``sequence``'s first ``end`` positions at ``layer``, ``[1, heads, end, head_dim]``."""
        start = self.starts[sequence]
        if end > self.capacities[sequence]:
            raise ValueError(f"sequence cache full: {end} > {self.capacities[sequence]}")
        return self.keys[layer][None, :, start : start + end], self.values[layer][None, :, start : start + end]

    def reserve(self, index: int, length: int) -> Views:
        stretches = [self.stretch(layer, index, length) for layer in range(len(self.keys))]
        self.lengths[index] = length
        return [k for k, _ in stretches], [v for _, v in stretches]
