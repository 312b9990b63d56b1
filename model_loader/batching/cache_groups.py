"""Cache-budget grouping: a batch's sequences cut into groups whose key/value caches fit a budget.

Request batching (request_batching) decides which requests run together; this module decides
how many of their sequences may hold a cache at the same time.
"""

from __future__ import annotations

from collections.abc import Callable

from ..model import allocator
from ..model.attention import QUERY_SLICE
from .scheduling import between_steps


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
# the weights plus about 300 MB however many long texts arrive together. The usual batch
# of eight short requests (about 2,300 positions) and eight free prompts of 100-400 tokens
# (about 2,600) are still one group each.
GROUP_CACHE_TOKENS = 3072

# What the scratch of a prompt's attention is measured in: one cached position's keys and
# values, 24 layers x 2 x 1,024 numbers in fp16.
_POSITION_BYTES = 24 * 2 * 1024 * 2


def prompt_scratch(length: int) -> int:
    """The attention scratch of running one prompt of ``length`` tokens, in cached positions:
    its fp32 bias over 16 heads (``length`` x ``length`` entries of 4 bytes, kept through the
    pass) and one slice of queries' scores and probabilities (``QUERY_SLICE`` x ``length``
    entries, 12 bytes over their fp32 and half copies). A prompt of 1,024 tokens takes about
    90 MB, as much as 950 cached positions."""
    held = 16 * length * length * 4
    one_slice = 16 * min(length, QUERY_SLICE) * length * 12
    return (held + one_slice) // _POSITION_BYTES


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
            between_steps()  # short work queued meanwhile runs here, with one group's memory free
        for index, result in zip(group, run([items[i] for i in group]), strict=True):
            results[index] = result
    return results
