"""BLOOM's forward pass in our hands: KV caches laid out for shared prompts, ALiBi
positions that ignore padding, and output scores for a chosen set of tokens only.

It reads the weights of a loaded ``transformers`` BloomForCausalLM and does the
same arithmetic; tests hold it to token-identical greedy output.

Layout: a request's prompt is run once into a ``Prefix``. The sequences that
continue it (one per label, per field, or the generated answer) are ``Rows``
that own only their own keys and values and attend to their prompt's prefix
in place, so ten fields over one text keep one copy of the text's cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """The per-head ALiBi slopes BLOOM was trained with."""
    closest = 2 ** math.floor(math.log2(num_heads))
    base = 2 ** (-(2 ** -(math.log2(closest) - 3)))
    slopes = [base**power for power in range(1, closest + 1)]
    if closest != num_heads:
        extra = 2 ** (-(2 ** -(math.log2(2 * closest) - 3)))
        slopes += [extra**power for power in range(1, 1 + 2 * min(closest, num_heads - closest), 2)]
    return torch.tensor(slopes, dtype=torch.float32)


@dataclass
class Prefix:
    """Prompts already run: keys and values per layer ``[prompts, heads, width, head_dim]``."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    mask: torch.Tensor  # [prompts, width] bool; False on left padding

    @property
    def count(self) -> int:
        return self.mask.shape[0]


@dataclass
class Rows:
    """Sequences being extended; each continues the prompt ``owners[i]`` of a Prefix (or none).

    ``slots`` place the rows in a ``[prompts, group_width]`` grid so that all rows
    of one prompt attend to its prefix in one matrix product.
    """

    keys: list[torch.Tensor]  # [rows, heads, capacity, head_dim]
    values: list[torch.Tensor]
    mask: torch.Tensor  # [rows, capacity] bool
    owners: torch.Tensor  # [rows] long
    slots: torch.Tensor  # [rows] long
    group_width: int
    length: int = 0

    @property
    def count(self) -> int:
        return self.mask.shape[0]

    @property
    def capacity(self) -> int:
        return self.mask.shape[1]

    def select(self, keep: torch.Tensor) -> Rows:
        """Only the rows in ``keep`` (copies their cache; used to drop finished rows)."""
        owners = self.owners[keep]
        slots, width = _slots(owners)
        return Rows(
            [k[keep] for k in self.keys],
            [v[keep] for v in self.values],
            self.mask[keep],
            owners,
            slots,
            width,
            self.length,
        )


def _slots(owners: torch.Tensor) -> tuple[torch.Tensor, int]:
    seen: dict[int, int] = {}
    places = []
    for owner in owners.tolist():
        places.append((owner, seen.get(owner, 0)))
        seen[owner] = seen.get(owner, 0) + 1
    width = max(seen.values(), default=1)
    slots = torch.tensor([owner * width + k for owner, k in places], dtype=torch.long, device=owners.device)
    return slots, width


class BloomRunner:
    """Runs a loaded BLOOM model over Prefix and Rows caches."""

    def __init__(self, model: torch.nn.Module) -> None:
        core = model.transformer
        config = model.config
        self.num_heads = config.n_head
        self.hidden_size = config.hidden_size
        self.head_dim = self.hidden_size // self.num_heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.embedding = core.word_embeddings.weight
        self.embedding_norm = core.word_embeddings_layernorm
        self.blocks = list(core.h)
        self.final_norm = core.ln_f
        self.output_weight = model.lm_head.weight  # tied to the embedding in SeqGPT
        self.device = self.embedding.device
        self.dtype = self.embedding.dtype
        self.slopes = alibi_slopes(self.num_heads).to(self.device)

    # ---- caches -----------------------------------------------------------------------

    def new_rows(self, owners: list[int], capacity: int) -> Rows:
        count = len(owners)
        shape = (count, self.num_heads, capacity, self.head_dim)
        layers = len(self.blocks)
        owner_tensor = torch.tensor(owners, dtype=torch.long, device=self.device)
        slots, width = _slots(owner_tensor)
        return Rows(
            [torch.empty(shape, dtype=self.dtype, device=self.device) for _ in range(layers)],
            [torch.empty(shape, dtype=self.dtype, device=self.device) for _ in range(layers)],
            torch.zeros((count, capacity), dtype=torch.bool, device=self.device),
            owner_tensor,
            slots,
            width,
        )

    def prefill(self, sequences: list[list[int]]) -> tuple[Prefix, torch.Tensor]:
        """Run whole prompts (left-padded together); returns them as a Prefix and each one's last hidden state."""
        width = max(len(s) for s in sequences)
        tokens = torch.zeros((len(sequences), width), dtype=torch.long)
        present = torch.zeros((len(sequences), width), dtype=torch.bool)
        for row, seq in enumerate(sequences):
            tokens[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            present[row, width - len(seq) :] = True
        rows = self.new_rows(list(range(len(sequences))), width)
        hidden = self.forward(tokens.to(self.device), present.to(self.device), rows)
        return Prefix(rows.keys, rows.values, rows.mask), hidden[:, -1]

    # ---- forward ----------------------------------------------------------------------

    def _bias(self, rows: Rows, new: int, prefix: Prefix | None) -> torch.Tensor:
        """ALiBi plus causal and padding masks for the newest ``new`` columns of ``rows``:
        ``[rows, heads, new, prefix width + row columns]``."""
        end = rows.length
        row_mask = rows.mask[:, :end]
        key_cols = torch.arange(end, device=self.device)
        query_cols = torch.arange(end - new, end, device=self.device)
        visible = row_mask[:, None, :] & (key_cols[None, None, :] <= query_cols[None, :, None])
        positions = row_mask.cumsum(-1) - 1
        if prefix is not None:
            prefix_mask = prefix.mask[rows.owners]
            prefix_positions = prefix_mask.cumsum(-1) - 1
            positions = positions + prefix_mask.sum(-1, keepdim=True)
            positions = torch.cat([prefix_positions, positions], dim=-1)
            visible = torch.cat([prefix_mask[:, None, :].expand(-1, new, -1), visible], dim=-1)
        bias = self.slopes[None, :, None] * positions.clamp(min=0)[:, None, :].to(torch.float32)
        bias = bias[:, :, None, :].to(self.dtype)
        return bias.masked_fill(~visible[:, None, :, :], torch.finfo(self.dtype).min)

    @torch.inference_mode()
    def forward(
        self, tokens: torch.Tensor, present: torch.Tensor, rows: Rows, prefix: Prefix | None = None
    ) -> torch.Tensor:
        """Feed ``tokens`` ``[rows, new]`` (``present`` False on padding) into ``rows``;
        returns final-norm hidden states ``[rows, new, hidden]``."""
        count, new = tokens.shape
        start = rows.length
        if start + new > rows.capacity:
            raise ValueError(f"row cache full: {start}+{new} > {rows.capacity}")
        rows.mask[:, start : start + new] = present
        rows.length = start + new
        bias = self._bias(rows, new, prefix)
        x = self.embedding_norm(F.embedding(tokens, self.embedding))
        for layer, block in enumerate(self.blocks):
            x = self._block(block, x, bias, rows, prefix, layer, start)
        return self.final_norm(x)

    def _block(self, block, x, bias, rows: Rows, prefix: Prefix | None, layer: int, start: int) -> torch.Tensor:
        count, new, _ = x.shape
        attn = block.self_attention
        h = block.input_layernorm(x)
        qkv = F.linear(h, attn.query_key_value.weight, attn.query_key_value.bias)
        qkv = qkv.view(count, new, self.num_heads, 3, self.head_dim)
        end = start + new
        rows.keys[layer][:, :, start:end] = qkv[..., 1, :].transpose(1, 2)
        rows.values[layer][:, :, start:end] = qkv[..., 2, :].transpose(1, 2)
        query = qkv[..., 0, :].transpose(1, 2)
        keys, values = rows.keys[layer][:, :, :end], rows.values[layer][:, :, :end]
        if prefix is None:
            context = F.scaled_dot_product_attention(query, keys, values, attn_mask=bias)
        else:
            context = self._attend_with_prefix(query, keys, values, bias, rows, prefix, layer)
        context = context.transpose(1, 2).reshape(count, new, self.hidden_size)
        x = x + F.linear(context, attn.dense.weight, attn.dense.bias)
        h = block.post_attention_layernorm(x)
        mlp = block.mlp
        h = F.gelu(F.linear(h, mlp.dense_h_to_4h.weight, mlp.dense_h_to_4h.bias), approximate="tanh")
        return x + F.linear(h, mlp.dense_4h_to_h.weight, mlp.dense_4h_to_h.bias)

    def _to_groups(self, t: torch.Tensor, rows: Rows, groups: int) -> torch.Tensor:
        """``[rows, heads, q, n]`` -> ``[groups, heads, width * q, n]`` (empty slots are zero)."""
        _, heads, q, n = t.shape
        grid = t.new_zeros((groups * rows.group_width, heads, q, n))
        grid[rows.slots] = t
        return grid.view(groups, rows.group_width, heads, q, n).transpose(1, 2).reshape(groups, heads, -1, n)

    def _from_groups(self, t: torch.Tensor, rows: Rows, q: int) -> torch.Tensor:
        groups, heads, _, n = t.shape
        t = t.view(groups, heads, rows.group_width, q, n).transpose(1, 2).reshape(-1, heads, q, n)
        return t[rows.slots]

    def _attend_with_prefix(self, query, keys, values, bias, rows: Rows, prefix: Prefix, layer: int):
        """Attention over the owner's prompt (one product per prompt for all its rows) and the row's own tokens."""
        q = query.shape[2]
        width = prefix.mask.shape[1]
        grouped_query = self._to_groups(query, rows, prefix.count)
        prefix_scores = torch.matmul(grouped_query, prefix.keys[layer].transpose(-1, -2))
        prefix_scores = self._from_groups(prefix_scores, rows, q)
        own_scores = torch.matmul(query, keys.transpose(-1, -2))
        scores = torch.cat([prefix_scores, own_scores], dim=-1) * self.scale + bias
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(self.dtype)
        prefix_probs, own_probs = probs.split([width, probs.shape[-1] - width], dim=-1)
        from_prefix = torch.matmul(self._to_groups(prefix_probs, rows, prefix.count), prefix.values[layer])
        return self._from_groups(from_prefix, rows, q) + torch.matmul(own_probs, values)

    def scores(self, hidden: torch.Tensor, token_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Output logits in fp32, for every vocabulary token or only for ``token_ids``."""
        weight = self.output_weight if token_ids is None else self.output_weight[token_ids]
        return F.linear(hidden, weight).float()
