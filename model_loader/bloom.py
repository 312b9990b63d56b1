"""BLOOM's forward pass in our hands: a preallocated KV cache, ALiBi through
scaled-dot-product attention, and output scores for a chosen set of tokens only.

It reads the weights of a loaded ``transformers`` BloomForCausalLM and does the
same arithmetic; tests hold it to token-identical greedy output.
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
class KVCache:
    """Keys and values per layer, ``[rows, heads, capacity, head_dim]``, and which columns hold tokens.

    Columns are shared by all rows; a row's padding columns are masked out, and
    ALiBi positions count only unmasked columns, so padding anywhere is harmless.
    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    mask: torch.Tensor  # [rows, capacity] bool
    length: int = 0

    @property
    def rows(self) -> int:
        return self.mask.shape[0]

    @property
    def capacity(self) -> int:
        return self.mask.shape[1]

    def select(self, rows: torch.Tensor, capacity: int) -> KVCache:
        """A new cache holding the given rows (repeats allowed), with room for ``capacity`` columns."""
        capacity = max(capacity, self.length)
        n = self.length

        def take(t: torch.Tensor) -> torch.Tensor:
            out = t.new_empty((len(rows), t.shape[1], capacity, t.shape[3]))
            out[:, :, :n] = t[rows, :, :n]
            return out

        mask = torch.zeros((len(rows), capacity), dtype=torch.bool, device=self.mask.device)
        mask[:, :n] = self.mask[rows, :n]
        return KVCache([take(k) for k in self.keys], [take(v) for v in self.values], mask, n)


class BloomRunner:
    """Runs a loaded BLOOM model step by step over a KVCache."""

    def __init__(self, model: torch.nn.Module) -> None:
        core = model.transformer
        config = model.config
        self.num_heads = config.n_head
        self.hidden_size = config.hidden_size
        self.head_dim = self.hidden_size // self.num_heads
        self.eps = config.layer_norm_epsilon
        self.embedding = core.word_embeddings.weight
        self.embedding_norm = core.word_embeddings_layernorm
        self.blocks = list(core.h)
        self.final_norm = core.ln_f
        self.output_weight = model.lm_head.weight  # tied to the embedding in SeqGPT
        self.device = self.embedding.device
        self.dtype = self.embedding.dtype
        self.slopes = alibi_slopes(self.num_heads).to(self.device)

    def new_cache(self, rows: int, capacity: int) -> KVCache:
        shape = (rows, self.num_heads, capacity, self.head_dim)
        layers = len(self.blocks)
        return KVCache(
            [torch.empty(shape, dtype=self.dtype, device=self.device) for _ in range(layers)],
            [torch.empty(shape, dtype=self.dtype, device=self.device) for _ in range(layers)],
            torch.zeros((rows, capacity), dtype=torch.bool, device=self.device),
        )

    def _attention_bias(self, cache: KVCache, new: int) -> torch.Tensor:
        """ALiBi plus causal and padding masks for the last ``new`` columns: ``[rows, heads, new, cols]``."""
        end = cache.length
        mask = cache.mask[:, :end]
        positions = (mask.cumsum(-1) - 1).clamp(min=0).to(torch.float32)
        bias = self.slopes[None, :, None] * positions[:, None, :]  # [rows, heads, cols]
        query_cols = torch.arange(end - new, end, device=self.device)
        key_cols = torch.arange(end, device=self.device)
        visible = mask[:, None, :] & (key_cols[None, None, :] <= query_cols[None, :, None])
        bias = bias[:, :, None, :].to(self.dtype)
        return bias.masked_fill(~visible[:, None, :, :], torch.finfo(self.dtype).min)

    @torch.inference_mode()
    def forward(self, tokens: torch.Tensor, present: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Feed ``tokens`` ``[rows, new]`` (``present`` False where padding) into the cache;
        returns final-norm hidden states ``[rows, new, hidden]``."""
        rows, new = tokens.shape
        start = cache.length
        if start + new > cache.capacity:
            raise ValueError(f"KV cache full: {start}+{new} > {cache.capacity}")
        cache.mask[:, start : start + new] = present
        cache.length = start + new
        bias = self._attention_bias(cache, new)
        x = F.embedding(tokens, self.embedding)
        x = self.embedding_norm(x)
        for layer, block in enumerate(self.blocks):
            x = self._block(block, x, bias, cache, layer, start)
        return self.final_norm(x)

    def _block(
        self, block: torch.nn.Module, x: torch.Tensor, bias: torch.Tensor, cache: KVCache, layer: int, start: int
    ) -> torch.Tensor:
        rows, new, _ = x.shape
        attn = block.self_attention
        h = block.input_layernorm(x)
        qkv = F.linear(h, attn.query_key_value.weight, attn.query_key_value.bias)
        qkv = qkv.view(rows, new, self.num_heads, 3, self.head_dim)
        query = qkv[..., 0, :].transpose(1, 2)
        end = start + new
        cache.keys[layer][:, :, start:end] = qkv[..., 1, :].transpose(1, 2)
        cache.values[layer][:, :, start:end] = qkv[..., 2, :].transpose(1, 2)
        context = F.scaled_dot_product_attention(
            query, cache.keys[layer][:, :, :end], cache.values[layer][:, :, :end], attn_mask=bias
        )
        context = context.transpose(1, 2).reshape(rows, new, self.hidden_size)
        x = x + F.linear(context, attn.dense.weight, attn.dense.bias)
        h = block.post_attention_layernorm(x)
        mlp = block.mlp
        h = F.gelu(F.linear(h, mlp.dense_h_to_4h.weight, mlp.dense_h_to_4h.bias), approximate="tanh")
        return x + F.linear(h, mlp.dense_4h_to_h.weight, mlp.dense_4h_to_h.bias)

    def scores(self, hidden: torch.Tensor, token_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Output logits in fp32, for every vocabulary token or only for ``token_ids``."""
        weight = self.output_weight if token_ids is None else self.output_weight[token_ids]
        return F.linear(hidden, weight).float()

    def prefill(self, sequences: list[list[int]], capacity: int) -> tuple[KVCache, torch.Tensor]:
        """Left-pad and run whole sequences; returns the cache and each row's last hidden state."""
        width = max(len(s) for s in sequences)
        tokens = torch.zeros((len(sequences), width), dtype=torch.long)
        present = torch.zeros((len(sequences), width), dtype=torch.bool)
        for row, seq in enumerate(sequences):
            tokens[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            present[row, width - len(seq) :] = True
        cache = self.new_cache(len(sequences), max(capacity, width))
        hidden = self.forward(tokens.to(self.device), present.to(self.device), cache)
        return cache, hidden[:, -1]
