"""Where tokens are chosen: greedy generation, label scoring and per-field extraction on our BLOOM runner.

Generation and extraction run the requests of a batch together, so requests that arrive at the
same time share every forward pass (within the cache budget, see cache_groups). Label scoring
runs one token tree per request: a tree already rides all of a request's labels along its
prompt's matrix products.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .batching.cache_groups import in_groups, split_by_sizes
from .batching.scheduling import between_steps
from .model.bloom import BloomRunner
from .model.kv_cache import PromptCache, RowCache


def greedy_generate(
    runner: BloomRunner, prompts: list[list[int]], max_new_tokens: list[int], eos_id: int
) -> list[list[int]]:
    """Full-vocabulary greedy decoding, identical to ``generate(do_sample=False)``; eos is kept."""
    lengths = [len(p) for p in prompts]

    def cost(group: list[int]) -> int:  # each prompt and its answer, nothing padded
        return sum(lengths[i] + max_new_tokens[i] for i in group)

    def run(group: list[tuple[list[int], int]]) -> list[list[int]]:
        return _generate_group(runner, [p for p, _ in group], [n for _, n in group], eos_id)

    return in_groups(list(zip(prompts, max_new_tokens, strict=True)), lengths, cost, run)


def _generate_group(
    runner: BloomRunner, prompts: list[list[int]], max_new_tokens: list[int], eos_id: int
) -> list[list[int]]:
    capacities = [len(p) + n for p, n in zip(prompts, max_new_tokens, strict=True)]
    cache = runner.sequence_cache(capacities)
    last = runner.prefill(prompts, cache, between=between_steps)
    outputs: list[list[int]] = [[] for _ in prompts]
    writing = [i for i, limit in enumerate(max_new_tokens) if limit > 0]  # sequences still writing
    last = last[writing]
    while writing:
        # The first index of the largest logit, as argmax gives it (torch.max documents the same
        # choice among equal maxima), but 4 to 5 times faster over 250,880 16-bit logits (0.17
        # against 0.80 ms a row on a 2-core Xeon), where argmax took 2% of an int8 decode step.
        next_tokens = runner.logits(last).max(-1).indices
        going_on = []  # rows of next_tokens whose sequence writes on
        for row, (index, token) in enumerate(zip(writing, next_tokens.tolist(), strict=True)):
            outputs[index].append(token)
            if token != eos_id and len(outputs[index]) < max_new_tokens[index]:
                going_on.append(row)
        if not going_on:
            break
        # A finished sequence drops out: the others' answers do not depend on it.
        writing = [writing[row] for row in going_on]
        between_steps()
        last = runner.extend(next_tokens[going_on], cache, writing)
    return outputs


@dataclass
class LabelSet:
    """One classification request: its prompt and the token ids of each label."""

    prompt: list[int]
    labels: list[list[int]]


def _label_trie_children(sequences: list[list[int]]) -> dict[tuple[int, ...], set[int]]:
    children: dict[tuple[int, ...], set[int]] = {}
    for seq in sequences:
        for i, token in enumerate(seq):
            children.setdefault(tuple(seq[:i]), set()).add(token)
    return children


def score_labels(runner: BloomRunner, requests: list[LabelSet], eos_id: int) -> list[list[float]]:
    """Log-probability of each label as the whole answer, end-of-sequence included.

    Each request's prompt and all its labels run as one token tree: every label
    continues the prompt and sees nothing of the other labels. At every step the
    model may only continue some label, so each step's distribution is taken over
    those tokens (constrained decoding): the label probabilities then sum to one,
    and 财经 is told from 财经新闻 by whether end-of-sequence or 新闻 follows 财经.
    """
    results: list[list[float]] = []
    for request in requests:
        between_steps()
        last, branches = runner.run_tree(request.prompt, request.labels)
        sequences = [label + [eos_id] for label in request.labels]
        children = _label_trie_children(sequences)
        union = sorted(set().union(*children.values()))
        column = {token: i for i, token in enumerate(union)}
        contexts, allowed, targets, which = [], [], [], []
        for index, seq in enumerate(sequences):
            for i, token in enumerate(seq):
                contexts.append(last if i == 0 else branches[index][i - 1])
                allowed.append([column[t] for t in children[tuple(seq[:i])]])
                targets.append(column[token])
                which.append(index)
        logits = runner.scores(torch.stack(contexts), torch.tensor(union, device=runner.device))
        mask = torch.ones_like(logits, dtype=torch.bool)
        for i, columns in enumerate(allowed):
            mask[i, columns] = False
        logprobs = torch.log_softmax(logits.masked_fill(mask, float("-inf")), dim=-1)
        picked = logprobs[torch.arange(len(targets)), torch.tensor(targets)].double()
        totals = torch.zeros(len(sequences), dtype=torch.float64).index_add_(0, torch.tensor(which), picked.cpu())
        results.append(totals.tolist())
    return results


# Fields' own prompt ends are left-padded to a common width, a multiple of this. A field's
# attention then sums its own columns at the same place modulo 16 (the fp32 lanes of a 512-bit
# vector) whatever the longest field beside it: other padding shifted them, and a sum taken in
# another order came out a last bit apart, which bf16 rounding could turn into another token.
SUFFIX_ALIGN = 16


@dataclass
class FieldRequest:
    """One extraction request: the prompt's shared start, and per field its prompt end and allowed tokens."""

    prefix: list[int]
    suffixes: list[list[int]]
    allowed: list[torch.Tensor]  # per field, sorted token ids its answer may use


@dataclass
class FieldAnswer:
    tokens: list[int] = field(default_factory=list)
    probabilities: list[float] = field(default_factory=list)


def decode_fields(
    runner: BloomRunner,
    requests: list[FieldRequest],
    stop_ids: list[int],
    max_new_tokens: int,
    exact_new_tokens: int | None = None,
) -> list[list[FieldAnswer]]:
    """Decode every field of every request in parallel, greedily, over the allowed tokens.

    Each field is its own short sequence sharing its request's prefilled text,
    so the number of decode steps is that of the longest answer, not their sum.
    A field stops at end-of-sequence or at a token holding a line break; with
    ``exact_new_tokens`` every field runs exactly that many steps (benchmarks).
    """
    steps = exact_new_tokens or max_new_tokens
    lengths = [len(r.prefix) for r in requests]

    def cost(group: list[int]) -> int:
        rows = sum(len(requests[i].suffixes) for i in group)
        suffix_width = max(len(s) for i in group for s in requests[i].suffixes)
        return len(group) * max(lengths[i] for i in group) + rows * (suffix_width + steps)

    def run(group: list[FieldRequest]) -> list[list[FieldAnswer]]:
        return _decode_field_group(runner, group, stop_ids, steps, exact_new_tokens is not None)

    return in_groups(requests, lengths, cost, run)


def _decode_field_group(
    runner: BloomRunner, requests: list[FieldRequest], stop_ids: list[int], steps: int, exact: bool
) -> list[list[FieldAnswer]]:
    device = runner.device
    owners = [i for i, r in enumerate(requests) for _ in r.suffixes]
    suffixes = [s for r in requests for s in r.suffixes]
    suffix_width = -(-max(len(s) for s in suffixes) // SUFFIX_ALIGN) * SUFFIX_ALIGN
    prefixes = [r.prefix for r in requests]
    prompt_cache = PromptCache.left_padded(runner.layout, prefixes)
    runner.prefill(prefixes, prompt_cache, between=between_steps)
    between_steps()
    rows = RowCache.empty(runner.layout, owners, suffix_width + steps)
    tokens = torch.zeros((len(suffixes), suffix_width), dtype=torch.long)
    is_token = torch.zeros((len(suffixes), suffix_width), dtype=torch.bool)
    for row, suffix in enumerate(suffixes):
        tokens[row, suffix_width - len(suffix) :] = torch.tensor(suffix)
        is_token[row, suffix_width - len(suffix) :] = True
    last = runner.forward(tokens.to(device), is_token.to(device), rows, prompt_cache)[:, -1]

    allowed = [a for r in requests for a in r.allowed]
    union = torch.unique(torch.cat(allowed))
    weight_rows = union.to(device)
    forbidden = torch.ones((len(suffixes), len(union)), dtype=torch.bool)
    for row, tokens_allowed in enumerate(allowed):
        forbidden[row] = ~torch.isin(union, tokens_allowed)
    forbidden = forbidden.to(device)
    stops = torch.isin(union, torch.tensor(stop_ids, dtype=torch.long)).to(device)

    answers = [FieldAnswer() for _ in suffixes]
    union_ids = union.tolist()
    active = list(range(len(suffixes)))  # original row of each current cache row
    everyone = torch.ones((len(suffixes), 1), dtype=torch.bool, device=device)
    score = runner.scorer(weight_rows)  # the same tokens at every step
    for step in range(steps):
        logits = score(last).masked_fill(forbidden, float("-inf"))
        probabilities = torch.softmax(logits, dim=-1)
        best_prob, best = probabilities.max(-1)
        finished = torch.zeros_like(best, dtype=torch.bool) if exact else stops[best]
        columns, probs, stopped = best.tolist(), best_prob.tolist(), finished.tolist()
        for i, (column, prob, stop) in enumerate(zip(columns, probs, stopped, strict=True)):
            if not stop:  # the stop token itself is not part of the answer
                answers[active[i]].tokens.append(union_ids[column])
                answers[active[i]].probabilities.append(prob)
        if step == steps - 1:
            break
        keep = (~finished).nonzero().flatten()
        if len(keep) == 0:
            break
        if len(keep) < len(active):
            # Drop finished fields so later steps only pay for the ones still writing.
            rows = rows.select(keep)
            active = [active[i] for i in keep.tolist()]
            best, forbidden, last = best[keep], forbidden[keep], last[keep]
            everyone = everyone[: len(active)]
        between_steps()
        last = runner.forward(weight_rows[best][:, None], everyone, rows, prompt_cache)[:, -1]
    return split_by_sizes(answers, [len(r.suffixes) for r in requests])
