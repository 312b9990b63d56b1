"""BLOOM's forward pass in our hands: KV caches laid out for shared prompts, ALiBi
positions that ignore padding, and output scores for a chosen set of tokens only.

It does the same arithmetic as ``transformers``' BloomForCausalLM on the same
weights; tests hold it to token-identical greedy output.

Layout: a request's prompt is run once into a ``Prefix``. The sequences that
continue it (one per label, per field, or the generated answer) are ``Rows``
that own only their own keys and values and attend to their prompt's prefix
in place, so ten fields over one text keep one copy of the text's cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .bloom_weights import Block, BloomWeights, Norm, OutputProjection

# Attention arithmetic is done in fp32 whatever the weights' dtype: it costs little next
# to the matrix products, and keeps a request's result the same whichever other requests
# share its batch (bf16 rounding would amplify the tiny differences that padding to a
# different width makes in the reductions). The caches keep keys and values in the
# weights' dtype, in which they were computed, so widening them at use loses nothing;
# it halves their memory, and reading half the bytes beats reading fp32 ones.
ATTENTION_DTYPE = torch.float32


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """The per-head ALiBi slopes BLOOM was trained with."""
    closest = 2 ** math.floor(math.log2(num_heads))
    base = 2 ** (-(2 ** -(math.log2(closest) - 3)))
    slopes = [base**power for power in range(1, closest + 1)]
    if closest != num_heads:
        extra = 2 ** (-(2 ** -(math.log2(2 * closest) - 3)))
        slopes += [extra**power for power in range(1, 1 + 2 * min(closest, num_heads - closest), 2)]
    return torch.tensor(slopes, dtype=torch.float32)


def _widened(cached: torch.Tensor) -> torch.Tensor:
    return cached.to(ATTENTION_DTYPE)


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
    # True when row i sits in slot i, so grouping needs no gather or scatter.
    in_order: bool = field(init=False)

    def __post_init__(self) -> None:
        self.in_order = torch.equal(self.slots.cpu(), torch.arange(len(self.slots)))

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

    def __init__(self, weights: BloomWeights) -> None:
        self.weights = weights
        self.num_heads = weights.num_heads
        self.hidden_size = weights.embedding.shape[1]
        self.head_dim = self.hidden_size // self.num_heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.eps = weights.eps
        self.layers = len(weights.blocks)
        self.output_weight = weights.output
        self.device = weights.embedding.device
        self.dtype = weights.blocks[0].qkv.weight.dtype
        self.slopes = alibi_slopes(self.num_heads).to(self.device)
        self.output = OutputProjection(weights, self.dtype, pack=weights.blocks[0].qkv.weight.is_mkldnn)

    def _norm(self, x: torch.Tensor, norm: Norm) -> torch.Tensor:
        return F.layer_norm(x, (self.hidden_size,), norm.weight, norm.bias, self.eps)

    # ---- caches -----------------------------------------------------------------------

    def new_rows(self, owners: list[int], capacity: int) -> Rows:
        count = len(owners)
        shape = (count, self.num_heads, capacity, self.head_dim)
        layers = self.layers
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

    def run_tree(self, prompt: list[int], branches: list[list[int]]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One pass over a prompt and several continuations of it, each seeing the prompt and
        itself only; returns the prompt's last hidden state and each continuation's hidden states.

        Scoring labels this way rides the label tokens along the prompt's matrix products
        instead of reading all the weights once more for a separate pass.
        """
        length = len(prompt)
        tokens = prompt + [t for branch in branches for t in branch]
        count = len(tokens)
        positions = torch.tensor(
            list(range(length)) + [length + j for branch in branches for j in range(len(branch))],
            dtype=torch.float32,
            device=self.device,
        )
        visible = torch.ones((count, count), dtype=torch.bool, device=self.device).tril()
        offset = length
        for branch in branches:  # a continuation does not see the ones before it
            visible[offset : offset + len(branch), length:offset] = False
            offset += len(branch)
        bias = (self.slopes[:, None, None] * positions[None, None, :]).expand(-1, count, -1)
        bias = bias.masked_fill(~visible[None], torch.finfo(ATTENTION_DTYPE).min)[None]
        wanted = torch.tensor([length - 1, *range(length, count)], device=self.device)
        rows = self.new_rows([0], count)
        ids = torch.tensor([tokens], dtype=torch.long, device=self.device)
        hidden = self.forward(ids, torch.ones_like(ids, dtype=torch.bool), rows, bias=bias, outputs=wanted)[0]
        return hidden[0], list(hidden[1:].split([len(b) for b in branches]))

    def prefill(self, sequences: list[list[int]]) -> tuple[Prefix, torch.Tensor]:
        """Run whole prompts; returns them as one left-padded Prefix and each one's last hidden state.

        Each prompt runs on its own, writing straight into its row of the Prefix: a prompt
        is long enough to keep the matrix units busy alone, and padding prompts of
        different lengths to one width would only add work.
        """
        width, count = max(len(s) for s in sequences), len(sequences)
        shape = (count, self.num_heads, width, self.head_dim)
        # Zeros, not empty: padded keys are masked, but garbage there could be NaN.
        keys = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in range(self.layers)]
        values = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in range(self.layers)]
        mask = torch.zeros((count, width), dtype=torch.bool, device=self.device)
        last = []
        one = torch.zeros(1, dtype=torch.long, device=self.device)
        for row, seq in enumerate(sequences):
            start = width - len(seq)
            mask[row, start:] = True
            own = Rows(
                [k[row : row + 1, :, start:] for k in keys],
                [v[row : row + 1, :, start:] for v in values],
                torch.zeros((1, len(seq)), dtype=torch.bool, device=self.device),
                owners=one,
                slots=one,
                group_width=1,
            )
            tokens = torch.tensor([seq], dtype=torch.long, device=self.device)
            final = torch.tensor([len(seq) - 1], device=self.device)
            hidden = self.forward(tokens, torch.ones_like(tokens, dtype=torch.bool), own, outputs=final)
            last.append(hidden[0, -1])
        return Prefix(keys, values, mask), torch.stack(last)

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
        bias = bias[:, :, None, :]
        return bias.masked_fill(~visible[:, None, :, :], torch.finfo(ATTENTION_DTYPE).min)

    @torch.inference_mode()
    def forward(
        self,
        tokens: torch.Tensor,
        present: torch.Tensor,
        rows: Rows,
        prefix: Prefix | None = None,
        bias: torch.Tensor | None = None,
        outputs: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Feed ``tokens`` ``[rows, new]`` (``present`` False on padding) into ``rows``;
        returns final-norm hidden states ``[rows, new, hidden]``, or ``[rows, len(outputs), hidden]``
        for only the ``outputs`` columns (the last layer then skips the others' attention and MLP).
        ``bias`` replaces the causal ALiBi bias, for token trees."""
        count, new = tokens.shape
        start = rows.length
        if start + new > rows.capacity:
            raise ValueError(f"row cache full: {start}+{new} > {rows.capacity}")
        rows.mask[:, start : start + new] = present
        rows.length = start + new
        if bias is None:
            bias = self._bias(rows, new, prefix)
        x = self._norm(F.embedding(tokens, self.weights.embedding).to(self.dtype), self.weights.embedding_norm)
        last = self.layers - 1
        for layer, block in enumerate(self.weights.blocks):
            x = self._block(block, x, bias, rows, prefix, layer, start, outputs if layer == last else None)
        return self._norm(x, self.weights.final_norm)

    def _block(self, block: Block, x, bias, rows: Rows, prefix: Prefix | None, layer: int, start: int, outputs=None):
        count, new, _ = x.shape
        h = self._norm(x, block.input_norm)
        qkv = block.qkv(h).view(count, new, self.num_heads, 3, self.head_dim)
        end = start + new
        new_keys, new_values = qkv[..., 1, :].transpose(1, 2), qkv[..., 2, :].transpose(1, 2)
        rows.keys[layer][:, :, start:end] = new_keys
        rows.values[layer][:, :, start:end] = new_values
        if outputs is not None:  # every key and value is stored; only these queries go on
            qkv, x, bias = qkv[:, outputs], x[:, outputs], bias[:, :, outputs]
            count, new, _ = x.shape
        query = qkv[..., 0, :].transpose(1, 2)
        if prefix is None and start == 0 and count == 1:
            context = self._attend_alone(query, new_keys, new_values, bias)
        else:
            query = query.to(ATTENTION_DTYPE)
            keys, values = _widened(rows.keys[layer][:, :, :end]), _widened(rows.values[layer][:, :, :end])
            if prefix is None:
                context = F.scaled_dot_product_attention(query, keys, values, attn_mask=bias)
            else:
                context = self._attend_with_prefix(query, keys, values, bias, rows, prefix, layer)
        context = context.transpose(1, 2).reshape(count, new, self.hidden_size).to(self.dtype)
        x = x + block.dense(context)
        h = self._norm(x, block.post_attention_norm)
        h = F.gelu(block.up(h), approximate="tanh")
        return x + block.down(h)

    def _attend_alone(self, query, keys, values, bias) -> torch.Tensor:
        """Attention of one whole sequence over itself, in the weights' dtype with the softmax
        and ALiBi in fp32: it depends on nothing else in a batch, so it may use the faster dtype."""
        # One pass: the bf16 scores widen exactly (and SeqGPT's scale, 1/8, multiplies exactly).
        scores = torch.add(bias, torch.matmul(query, keys.transpose(-1, -2)), alpha=self.scale)
        return torch.matmul(torch.softmax(scores, dim=-1).to(values.dtype), values)

    def _to_groups(self, t: torch.Tensor, rows: Rows, groups: int) -> torch.Tensor:
        """``[rows, heads, q, n]`` -> ``[groups, heads, width * q, n]`` (empty slots are zero)."""
        count, heads, q, n = t.shape
        if count == groups * rows.group_width and rows.in_order:
            grid = t  # every slot is filled, in order: a reshape suffices
        else:
            grid = t.new_zeros((groups * rows.group_width, heads, q, n))
            grid[rows.slots] = t
        return grid.view(groups, rows.group_width, heads, q, n).transpose(1, 2).reshape(groups, heads, -1, n)

    def _from_groups(self, t: torch.Tensor, rows: Rows, q: int) -> torch.Tensor:
        groups, heads, _, n = t.shape
        t = t.view(groups, heads, rows.group_width, q, n).transpose(1, 2).reshape(-1, heads, q, n)
        return t if t.shape[0] == rows.count and rows.in_order else t[rows.slots]

    def _attend_with_prefix(self, query, keys, values, bias, rows: Rows, prefix: Prefix, layer: int):
        """Attention over the owner's prompt (one product per prompt for all its rows) and the row's own tokens."""
        q = query.shape[2]
        width = prefix.mask.shape[1]
        grouped_query = self._to_groups(query, rows, prefix.count)
        prefix_scores = torch.matmul(grouped_query, _widened(prefix.keys[layer]).transpose(-1, -2))
        prefix_scores = self._from_groups(prefix_scores, rows, q)
        own_scores = torch.matmul(query, keys.transpose(-1, -2))
        scores = torch.add(bias, torch.cat([prefix_scores, own_scores], dim=-1), alpha=self.scale)
        probs = torch.softmax(scores, dim=-1)
        prefix_probs, own_probs = probs.split([width, probs.shape[-1] - width], dim=-1)
        from_prefix = torch.matmul(self._to_groups(prefix_probs, rows, prefix.count), _widened(prefix.values[layer]))
        return self._from_groups(from_prefix, rows, q) + torch.matmul(own_probs, values)

    def scores(self, hidden: torch.Tensor, token_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Output logits in fp32, for every vocabulary token or only for ``token_ids``."""
        return self.logits(hidden, token_ids).float()

    def logits(self, hidden: torch.Tensor, token_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Output logits in the compute dtype (widening them to fp32 is exact, so an argmax
        over these picks what one over ``scores`` would, without copying 250,880 columns)."""
        if token_ids is not None:
            return F.linear(hidden, self.output_weight[token_ids].to(self.dtype))
        return self.output(hidden)
