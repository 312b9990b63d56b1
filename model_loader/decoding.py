"""Decoding on our BLOOM runner: greedy generation, label scoring and per-field extraction.

Each function takes a batch of independent requests and runs them together,
so requests that arrive at the same time share every forward pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from . import allocator
from .bloom import BloomRunner


def split_by_sizes(items: list, sizes: list[int]) -> list[list]:
    """Cut a flat list back into consecutive groups of the given sizes."""
    groups, start = [], 0
    for size in sizes:
        groups.append(items[start : start + size])
        start += size
    return groups


# Sequences decoded together share every forward pass, but their caches add up: one
# 20,000-character text is 17 pieces of about 860 tokens, whose prompts and field rows
# would cache about 2.6 GB of keys and values in fp16, and a batch holds up to 16 such
# requests. Batches are decoded in groups of at most this many cached positions (96 KB
# each in fp16: 24 layers of keys and values), counting also the scratch that running
# the group's longest prompt takes (``prompt_scratch``), so that the process stays within
# the weights plus about 400 MB however many long texts arrive together. The usual batch
# of eight short requests (about 2,300 positions) is still one group.
GROUP_CACHE_TOKENS = 4096


def prompt_scratch(length: int) -> int:
    """The attention scratch of running one prompt of ``length`` tokens, in cached positions:
    per head, a ``length`` x ``length`` bias, scores and probabilities (about 16 bytes an
    entry over fp32 and fp16 copies, 16 heads), against 96 KB a cached position. A prompt
    of 1,024 tokens takes about 260 MB, as much as 2,700 cached positions."""
    return length * length // 384


def bounded_groups(lengths: list[int], cost: Callable[[list[int]], int], budget: int) -> list[list[int]]:
    """Indices of the items, shortest first, cut into consecutive groups whose ``cost`` stays
    within ``budget`` (a single item over budget is a group of its own). Sorting by length
    keeps the padding to the longest prompt of a group small."""
    groups: list[list[int]] = []
    for index in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        if groups and cost([*groups[-1], index]) <= budget:
            groups[-1].append(index)
        else:
            groups.append([index])
    return groups


def in_groups(
    items: list, lengths: list[int], cost: Callable[[list[int]], int], run: Callable[[list], list]
) -> list:
    """``run`` over bounded groups of ``items``; the results come back in the items' order."""
    results: list = [None] * len(items)

    def with_scratch(group: list[int]) -> int:
        return cost(group) + prompt_scratch(max(lengths[i] for i in group))

    groups = bounded_groups(lengths, with_scratch, GROUP_CACHE_TOKENS)
    for number, group in enumerate(groups):
        if number:
            # The last group's caches are freed: hand them back before this group allocates
            # its own, of other shapes, so that a batch holds one group's memory, not the union.
            allocator.release_freed()
        for index, result in zip(group, run([items[i] for i in group]), strict=True):
            results[index] = result
    return results


def greedy_generate(
    runner: BloomRunner, prompts: list[list[int]], max_new_tokens: list[int], eos_id: int
) -> list[list[int]]:
    """Full-vocabulary greedy decoding, identical to ``generate(do_sample=False)``; eos is kept."""
    lengths = [len(p) for p in prompts]

    def cost(group: list[int]) -> int:
        return len(group) * (max(lengths[i] for i in group) + max(max_new_tokens[i] for i in group))

    def run(group: list[tuple[list[int], int]]) -> list[list[int]]:
        return _generate_group(runner, [p for p, _ in group], [n for _, n in group], eos_id)

    return in_groups(list(zip(prompts, max_new_tokens, strict=True)), lengths, cost, run)


def _generate_group(
    runner: BloomRunner, prompts: list[list[int]], max_new_tokens: list[int], eos_id: int
) -> list[list[int]]:
    steps = max(max_new_tokens)
    prefix, last = runner.prefill(prompts)
    rows = runner.new_rows(list(range(len(prompts))), steps)
    outputs: list[list[int]] = [[] for _ in prompts]
    done = [limit == 0 for limit in max_new_tokens]
    everyone = torch.ones((len(prompts), 1), dtype=torch.bool, device=runner.device)
    for _ in range(steps):
        next_tokens = runner.logits(last).argmax(-1)
        for row, token in enumerate(next_tokens.tolist()):
            if not done[row]:
                outputs[row].append(token)
                done[row] = token == eos_id or len(outputs[row]) >= max_new_tokens[row]
        if all(done):
            break
        last = runner.forward(next_tokens[:, None], everyone, rows, prefix)[:, -1]
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
    suffix_width = max(len(s) for s in suffixes)
    prefix, _ = runner.prefill([r.prefix for r in requests])
    rows = runner.new_rows(owners, suffix_width + steps)
    tokens = torch.zeros((len(suffixes), suffix_width), dtype=torch.long)
    present = torch.zeros((len(suffixes), suffix_width), dtype=torch.bool)
    for row, suffix in enumerate(suffixes):
        tokens[row, suffix_width - len(suffix) :] = torch.tensor(suffix)
        present[row, suffix_width - len(suffix) :] = True
    last = runner.forward(tokens.to(device), present.to(device), rows, prefix)[:, -1]

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
    for step in range(steps):
        logits = runner.scores(last, weight_rows).masked_fill(forbidden, float("-inf"))
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
        last = runner.forward(weight_rows[best][:, None], everyone, rows, prefix)[:, -1]
    return split_by_sizes(answers, [len(r.suffixes) for r in requests])
