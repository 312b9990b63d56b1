"""BLOOM's forward pass in our hands: ALiBi positions that ignore padding, prompts cached once
for all the sequences that continue them (see kv_cache), and output scores for a chosen set
of tokens only.

It does the same arithmetic as ``transformers``' BloomForCausalLM on the same
weights; tests hold it to token-identical greedy output.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from . import allocator
from .attention import (
    ATTENTION_DTYPE,
    AttentionChoice,
    Kernel,
    causal_bias,
    choose_attention,
    choose_step_attention,
    eager,
    eager_on_int8,
    widened,
)
from .bloom_weights import Block, BloomWeights, Linear, Norm, OutputProjection
from .cpu_dtype import packed_bf16_projection, processor_flags
from .half_kernel import HalfLinear, half_kernel_problem
from .int8_weights import Int8Linear
from .kv_cache import CacheLayout, PromptCache, PromptRoom, RowCache, SequenceCache
from .row_products import linear_by_rows, matmul_by_rows

# A long prompt's pass leaves tens of megabytes of freed activations in malloc's arena, and the
# next prompt, of another length, fits only partly into them: eight free prompts of 106 to 396
# tokens left the int8 engine 350 MB above its resting level with 223 MB of keys and values
# (2-core Xeon with AMX). Handed back after each prompt of at least this many tokens, that was
# 223 MB, and the batch's peak fell from 380 to 289 MB above rest, for 3 to 6 ms a prompt
# against the 80 to 300 ms its pass takes; shorter prompts leave little and pay relatively more.
# Once more after the last prompt, where the prompts together reached this many tokens.
HAND_BACK_AFTER_TOKENS = 128


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """The per-head ALiBi slopes BLOOM was trained with."""
    closest = 2 ** math.floor(math.log2(num_heads))
    base = 2 ** (-(2 ** -(math.log2(closest) - 3)))
    slopes = [base**power for power in range(1, closest + 1)]
    if closest != num_heads:
        extra = 2 ** (-(2 ** -(math.log2(2 * closest) - 3)))
        slopes += [extra**power for power in range(1, 1 + 2 * min(closest, num_heads - closest), 2)]
    return torch.tensor(slopes, dtype=torch.float32)


class BloomRunner:
    """Runs a loaded BLOOM model over prompt and row caches (see kv_cache)."""

    def __init__(self, weights: BloomWeights, attention: AttentionChoice | None = None) -> None:
        self.weights = weights
        self.num_heads = weights.num_heads
        self.hidden_size = weights.embedding.shape[1]
        self.head_dim = self.hidden_size // self.num_heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.eps = weights.eps
        self.layers = len(weights.blocks)
        self.output_weight = weights.output
        self.device = weights.embedding.device
        first = weights.blocks[0].qkv
        self.int8 = isinstance(first, Int8Linear)
        self.dtype = first.dtype
        # A decode step carries at least this many rows (zero rows after its sequences') through
        # its blocks, so that no product pads them one by one: on a 2-core Xeon with AMX the 96
        # block products of one sequence took 38.7 ms padded each, 35.7 given two rows, and a
        # whole step 74.7 ms against 72.9 (medians of six alternating runs).
        self.step_rows = first.fewest_rows
        self.slopes = alibi_slopes(self.num_heads).to(self.device)
        self.layout = CacheLayout(self.layers, self.num_heads, self.head_dim, self.dtype, self.device)
        pack = isinstance(first, Linear) and first.weight.is_mkldnn
        # Chosen rows (label scoring, extraction) through FBGEMM's fp16 kernel where it serves;
        # the whole projection too, unless this processor's packed bf16 product is faster.
        self.fp16_scores = self._fp16_kernel_serves()
        dtype_name = str(self.dtype).removeprefix("torch.")
        half = self.fp16_scores and not packed_bf16_projection(dtype_name, pack, processor_flags())
        self.output = OutputProjection(weights, self.dtype, pack=pack, int8=self.int8, half=half)
        # The kernel for a sequence attending to itself, checked on this device (see attention).
        self.attention = attention or choose_attention(self.slopes, self.head_dim, self.dtype)
        # And the decode steps' kernel, one sequence at a time over its 16-bit cache (checked likewise).
        self.step_attention_name, self.step_attention = choose_step_attention(self.slopes, self.head_dim, self.dtype)

    def _fp16_kernel_serves(self) -> bool:
        """Whether output rows may run as fp16 through FBGEMM (see half_kernel): on a CPU in 16-bit
        weights, where fp16 holds the matrix at least as exactly as the compute dtype does (it is
        16-bit, or the stored matrix is fp16 as SeqGPT's is) and the kernel is there."""
        if self.int8 or self.device.type != "cpu":
            return False
        if self.dtype == torch.float32 and self.output_weight.dtype != torch.float16:
            return False
        return half_kernel_problem() is None

    def _norm(self, x: torch.Tensor, norm: Norm) -> torch.Tensor:
        return F.layer_norm(x, (self.hidden_size,), norm.weight, norm.bias, self.eps)

    # ---- prompts ----------------------------------------------------------------------

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
        rows = RowCache.empty(self.layout, [0], count)
        ids = torch.tensor([tokens], dtype=torch.long, device=self.device)
        hidden = self.forward(ids, torch.ones_like(ids, dtype=torch.bool), rows, tree_bias=bias, outputs=wanted)[0]
        return hidden[0], list(hidden[1:].split([len(b) for b in branches]))

    def prefill(
        self, prompts: list[list[int]], cache: PromptRoom, between: Callable[[], None] | None = None
    ) -> torch.Tensor:
        """Run whole prompts into ``cache`` (a left-padded PromptCache that rows will continue, or a
        SequenceCache whose sequences will grow); returns each prompt's last hidden state.

        Each prompt runs on its own, writing straight into its place in the cache: a prompt is
        long enough to keep the matrix units busy alone, and padding prompts of different
        lengths to one width would only add work. ``between`` is called between two prompts (a
        caller's chance to run other work there: several long prompts take seconds).

        The longest prompt runs first: its pass takes the most scratch memory, and a cache's pages
        become resident as they are written, so the scratch then comes while little of the cache
        is. Last, it came on top of the whole cache (the int8 engine's peak over eight free prompts
        of 106 to 396 tokens, on a 2-core Xeon with AMX: 1,168 MB with the longest last, 1,119 to
        1,127 MB with it first).
        """
        last: list[torch.Tensor] = [torch.empty(0)] * len(prompts)
        order = sorted(range(len(prompts)), key=lambda index: -len(prompts[index]))
        for done, index in enumerate(order):
            if done and between is not None:
                between()
            keys, values = cache.reserve(index, len(prompts[index]))
            last[index] = self._run_alone(prompts[index], keys, values)
            del keys, values  # the cache holds them; an int8 cache lets them go as it quantizes them
            if len(prompts[index]) >= HAND_BACK_AFTER_TOKENS:
                allocator.release_freed()
            cache.filled(index)
        if sum(map(len, prompts)) >= HAND_BACK_AFTER_TOKENS:
            allocator.release_freed()  # what the last passes left, before the steps that follow
        return torch.stack(last)

    def sequence_cache(self, capacities: list[int]) -> SequenceCache:
        """An empty cache for sequences of up to ``capacities[i]`` positions, its keys and values in
        int8 where the weights are (see SequenceCache)."""
        return SequenceCache.empty(self.layout, capacities, int8=self.int8)

    def _run_alone(self, prompt: list[int], keys: list[torch.Tensor], values: list[torch.Tensor]) -> torch.Tensor:
        """Run one whole prompt, storing its keys and values in ``keys`` / ``values`` (per layer,
        ``[1, heads, len(prompt), head_dim]`` views into a larger cache); its last hidden state."""
        one = torch.zeros(1, dtype=torch.long, device=self.device)
        own = RowCache(
            keys,
            values,
            torch.zeros((1, len(prompt)), dtype=torch.bool, device=self.device),
            owners=one,
            slots=one,
            group_width=1,
        )
        tokens = torch.tensor([prompt], dtype=torch.long, device=self.device)
        return self.forward(tokens, torch.ones_like(tokens, dtype=torch.bool), own, last_only=True)[0, -1]

    # ---- forward ----------------------------------------------------------------------

    def _bias(self, rows: RowCache, new: int, prompts: PromptCache | None) -> torch.Tensor:
        """ALiBi plus causal and padding masks for the newest ``new`` columns of ``rows``:
        ``[rows, heads, new, prompt width + row columns]``."""
        end = rows.length
        row_mask = rows.mask[:, :end]
        key_cols = torch.arange(end, device=self.device)
        query_cols = torch.arange(end - new, end, device=self.device)
        visible = row_mask[:, None, :] & (key_cols[None, None, :] <= query_cols[None, :, None])
        positions = row_mask.cumsum(-1) - 1
        if prompts is not None:
            prompt_mask = prompts.mask[rows.owners]
            prompt_positions = prompt_mask.cumsum(-1) - 1
            positions = positions + prompt_mask.sum(-1, keepdim=True)
            positions = torch.cat([prompt_positions, positions], dim=-1)
            visible = torch.cat([prompt_mask[:, None, :].expand(-1, new, -1), visible], dim=-1)
        bias = self.slopes[None, :, None] * positions.clamp(min=0)[:, None, :].to(torch.float32)
        bias = bias[:, :, None, :]
        return bias.masked_fill(~visible[:, None, :, :], torch.finfo(ATTENTION_DTYPE).min)

    @torch.inference_mode()
    def forward(
        self,
        tokens: torch.Tensor,
        is_token: torch.Tensor,
        rows: RowCache,
        prompts: PromptCache | None = None,
        tree_bias: torch.Tensor | None = None,
        outputs: torch.Tensor | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """Feed ``tokens`` ``[rows, new]`` (``is_token`` False on padding) into ``rows``, whose
        sequences continue the cached ``prompts``; returns final-norm hidden states ``[rows, new, hidden]``.

        Only some columns may be wanted back: ``outputs`` (their indices) or ``last_only``; the last
        layer then skips the others' attention and MLP. ``tree_bias`` replaces the causal ALiBi bias,
        for token trees."""
        count, new = tokens.shape
        start = rows.length
        if start + new > rows.capacity:
            raise ValueError(f"row cache full: {start}+{new} > {rows.capacity}")
        rows.mask[:, start : start + new] = is_token
        rows.length = start + new
        bias = self._bias(rows, new, prompts) if tree_bias is None else tree_bias
        if last_only:
            outputs = torch.tensor([new - 1], device=self.device)
        # A sequence alone may take the kernel chosen at load: any such sequence where the kernel
        # applies any bias, else a causal one whose queries are all kept, or its last alone.
        alone = prompts is None and start == 0 and count == 1
        causal = tree_bias is None and (outputs is None or last_only)
        kernel = self.attention.kernel if alone and (causal or self.attention.any_bias) else eager
        if kernel is not eager:
            bias = self.attention.prepared(bias)
        x = self._norm(F.embedding(tokens, self.weights.embedding).to(self.dtype), self.weights.embedding_norm)
        last = self.layers - 1
        for layer, block in enumerate(self.weights.blocks):
            wanted = outputs if layer == last else None
            x = self._block(block, layer, x, bias, rows, prompts, start, wanted, kernel if alone else None)
        return self._norm(x, self.weights.final_norm)

    def _block(
        self,
        block: Block,
        layer: int,
        x: torch.Tensor,
        bias: torch.Tensor,
        rows: RowCache,
        prompts: PromptCache | None,
        start: int,
        outputs: torch.Tensor | None,
        kernel: Kernel | None,
    ) -> torch.Tensor:
        """One transformer block: attention (storing the new keys and values in ``rows``) and the MLP;
        with ``outputs``, only those columns go on past the cache writes."""
        count, new, _ = x.shape
        h = self._norm(x, block.input_norm)
        qkv = block.qkv(h).view(count, new, self.num_heads, 3, self.head_dim)
        end = start + new
        new_keys, new_values = qkv[..., 1, :].transpose(1, 2), qkv[..., 2, :].transpose(1, 2)
        rows.keys[layer][:, :, start:end] = new_keys
        rows.values[layer][:, :, start:end] = new_values
        if outputs is not None:  # every key and value is stored; only these queries go on
            qkv, x, bias = qkv[:, outputs], x[:, outputs], bias[:, :, outputs]
        query = qkv[..., 0, :].transpose(1, 2)
        context = self._attend(query, new_keys, new_values, layer, end, bias, rows, prompts, kernel)
        return self._after_attention(block, x, context)

    def _after_attention(self, block: Block, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """The rest of a block once its attention is done: ``context`` ``[rows, heads, new, head_dim]``."""
        count, new, _ = x.shape
        context = context.transpose(1, 2).reshape(count, new, self.hidden_size).to(self.dtype)
        x = x + block.dense(context)
        h = self._norm(x, block.post_attention_norm)
        h = F.gelu(block.up(h), approximate="tanh")
        return x + block.down(h)

    @torch.inference_mode()
    def extend(self, tokens: torch.Tensor, cache: SequenceCache, sequences: list[int]) -> torch.Tensor:
        """Append ``tokens[i]`` to sequence ``sequences[i]`` of ``cache``; returns their final-norm
        hidden states ``[len(sequences), hidden]``.

        The matrix products run over all the sequences at once; each sequence attends over its own
        stretch alone, with fp32 sums (of its 16-bit keys and values as they lie in the cache, or of
        its int8 codes widened), so what it writes is the same whichever others share its batch,
        and no work or memory goes to padding them to one length."""
        ends = [cache.lengths[index] + 1 for index in sequences]
        biases = [causal_bias(self.slopes, 1, end) for end in ends]  # the newest position sees all
        newest = cache.columns(sequences, [end - 1 for end in ends])
        x = self._norm(F.embedding(tokens[:, None], self.weights.embedding).to(self.dtype), self.weights.embedding_norm)
        count = len(sequences)
        # Rows beyond the sequences' (see step_rows): they attend to nothing and are dropped at
        # the end; what they hold cannot reach the sequences' rows, which the products keep apart.
        carried = max(count, self.step_rows)
        x = torch.cat([x, x.new_zeros(carried - count, *x.shape[1:])]) if carried > count else x
        for layer, block in enumerate(self.weights.blocks):
            h = self._norm(x, block.input_norm)
            qkv = block.qkv(h).view(carried, self.num_heads, 3, self.head_dim)
            cache.write(layer, newest, qkv[:count, :, 1], qkv[:count, :, 2])  # every sequence's in one copy
            contexts = []
            for row, (index, end, bias) in enumerate(zip(sequences, ends, biases, strict=True)):
                query = qkv[row, :, 0][None, :, None]
                if cache.int8:
                    keys, values = cache.widened(layer, index, end)
                    key_scales, value_scales = cache.scales(layer, index, end)
                    wide_query = query.to(ATTENTION_DTYPE)
                    contexts.append(eager_on_int8(wide_query, keys, values, key_scales, value_scales, bias, self.scale))
                else:
                    keys, values = cache.stretch(layer, index, end)
                    contexts.append(self.step_attention(query, keys, values, bias, self.scale))
            if carried > count:
                contexts.append(contexts[0].new_zeros(carried - count, *contexts[0].shape[1:]))
            x = self._after_attention(block, x, torch.cat(contexts))
        for index in sequences:
            cache.lengths[index] += 1
        return self._norm(x[:count], self.weights.final_norm)[:, -1]

    def _attend(
        self,
        query: torch.Tensor,
        new_keys: torch.Tensor,
        new_values: torch.Tensor,
        layer: int,
        end: int,
        bias: torch.Tensor,
        rows: RowCache,
        prompts: PromptCache | None,
        kernel: Kernel | None,
    ) -> torch.Tensor:
        """The one place an attention path is picked: ``kernel`` for one sequence over itself (its new
        keys are all its keys), grouped products for rows continuing cached prompts, SDPA for other rows."""
        if kernel is not None:
            return kernel(query, new_keys, new_values, bias, self.slopes, self.scale)
        keys, values = rows.keys[layer][:, :, :end], rows.values[layer][:, :, :end]
        query = query.to(ATTENTION_DTYPE)
        if prompts is None:
            return F.scaled_dot_product_attention(query, widened(keys), widened(values), attn_mask=bias)
        return self._attend_with_prompts(query, widened(keys), widened(values), bias, rows, prompts, layer)

    def _to_groups(self, t: torch.Tensor, rows: RowCache, groups: int) -> torch.Tensor:
        """``[rows, heads, q, n]`` -> ``[groups, heads, width * q, n]`` (empty slots are zero)."""
        count, heads, q, n = t.shape
        if count == groups * rows.group_width and rows.in_order:
            grid = t  # every slot is filled, in order: a reshape suffices
        else:
            grid = t.new_zeros((groups * rows.group_width, heads, q, n))
            grid[rows.slots] = t
        return grid.view(groups, rows.group_width, heads, q, n).transpose(1, 2).reshape(groups, heads, -1, n)

    def _from_groups(self, t: torch.Tensor, rows: RowCache, q: int) -> torch.Tensor:
        groups, heads, _, n = t.shape
        t = t.view(groups, heads, rows.group_width, q, n).transpose(1, 2).reshape(-1, heads, q, n)
        return t if t.shape[0] == rows.count and rows.in_order else t[rows.slots]

    def _attend_with_prompts(self, query, keys, values, bias, rows: RowCache, prompts: PromptCache, layer: int):
        """Attention over the owner's prompt (one product per prompt for all its rows) and the row's own tokens."""
        q = query.shape[2]
        width = prompts.mask.shape[1]
        grouped_query = self._to_groups(query, rows, prompts.count)
        prompt_scores = matmul_by_rows(grouped_query, widened(prompts.keys[layer]).transpose(-1, -2))
        prompt_scores = self._from_groups(prompt_scores, rows, q)
        own_scores = torch.matmul(query, keys.transpose(-1, -2))
        scores = torch.add(bias, torch.cat([prompt_scores, own_scores], dim=-1), alpha=self.scale)
        probs = torch.softmax(scores, dim=-1)
        prompt_probs, own_probs = probs.split([width, probs.shape[-1] - width], dim=-1)
        from_prompts = matmul_by_rows(
            self._to_groups(prompt_probs, rows, prompts.count), widened(prompts.values[layer])
        )
        return self._from_groups(from_prompts, rows, q) + torch.matmul(own_probs, values)

    def scores(self, hidden: torch.Tensor, token_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Output logits in fp32, for every vocabulary token or only for ``token_ids``."""
        if token_ids is not None:
            return self.scorer(token_ids)(hidden)
        return self.logits(hidden).float()

    def scorer(self, token_ids: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """fp32 logits for ``token_ids`` only, of hidden states given later: the rows are taken
        once for all the steps that score the same tokens. Where the fp16 kernel serves, they are
        scored by it (packed here), since an fp32 product
        of the fp16 rows would give a row's logits a last bit that depends on how many rows came
        with it (MKL picks its kernel by row count), and with it a near tie's winner."""
        rows = self.output_weight[token_ids]
        if self.fp16_scores:
            return HalfLinear(rows)
        rows = rows.to(self.dtype)
        return lambda hidden: linear_by_rows(hidden, rows).float()

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Output logits over the whole vocabulary in the compute dtype, or fp32 where the
        projection runs as fp16 (widening them to fp32 is exact, so an argmax over these picks
        what one over ``scores`` would, without copying 250,880 columns)."""
        return self.output(hidden)
