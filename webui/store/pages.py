"""Page marks for newest-first lists (jobs, request history): ``<epoch>_<id>``, the time and id of
the row a page ended on. The next page lists what comes after that place, so paging holds when the
row itself is deleted meanwhile and misses no row stored at the same time."""

from __future__ import annotations

import math


def page_mark(time: float, row_id: str) -> str:
    return f"{time!r}_{row_id}"


def read_page_mark(text: str) -> tuple[float, str] | None:
    """The time and id ``text`` marks, or None when it is no page mark (the ids marked, job ids
    and request ids, are hex: the last ``_`` parts them from the time)."""
    stamp, mark, row_id = text.rpartition("_")
    if not (mark and row_id):
        return None
    try:
        when = float(stamp)
    except ValueError:
        return None
    return (when, row_id) if math.isfinite(when) else None
