"""Cutting a batch into groups whose caches stay within a budget."""

from __future__ import annotations

from model_loader.batching.cache_groups import bounded_groups


def padded(lengths: list[int]):
    """Cost of a group as a left-padded prefix: members times the longest member."""
    return lambda group: len(group) * max(lengths[i] for i in group)


def test_groups_take_the_shortest_first_and_stay_within_the_budget():
    lengths = [50, 10, 40, 20, 30]
    groups = bounded_groups(lengths, padded(lengths), budget=80)
    # 10, 20 (2 x 20 = 40); 30 would make 3 x 30 = 90, so it starts a group with 40 (2 x 40 = 80)
    assert groups == [[1, 3], [4, 2], [0]]
    assert all(padded(lengths)(g) <= 80 for g in groups)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))


def test_an_item_over_the_budget_is_a_group_of_its_own():
    lengths = [500, 10, 10]
    assert bounded_groups(lengths, padded(lengths), budget=100) == [[1, 2], [0]]


def test_everything_fits_in_one_group_under_a_large_budget():
    lengths = [3, 1, 2]
    assert bounded_groups(lengths, padded(lengths), budget=10**6) == [[1, 2, 0]]


def test_no_items_make_no_groups():
    assert bounded_groups([], padded([]), budget=10) == []
