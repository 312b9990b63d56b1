"""The history's metrics, read at scrape time: stored requests, feedback by verdict, records dropped."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .room import HistoryRoom


def watch_history(registry: CollectorRegistry, room: HistoryRoom) -> None:
    registry.register(_HistoryCollector(room))


class _HistoryCollector:
    def __init__(self, room: HistoryRoom) -> None:
        self._room = room

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        stored = GaugeMetricFamily("seqgpt_history_requests", "Requests kept in the request history.")
        feedback = GaugeMetricFamily("seqgpt_history_feedback", "Stored requests with feedback, by verdict.",
                                     labels=("verdict",))
        dropped = CounterMetricFamily(
            "seqgpt_history_dropped", "Requests not stored in the history: queue full, or the workspace not writable."
        )
        if self._room.store is not None:
            try:
                counts = self._room.store.counts()
            except Exception:  # a scrape must answer even when the store cannot: the figures are then absent
                counts = None
            if counts is not None:
                stored.add_metric((), counts["requests"])
                for verdict in ("correct", "wrong"):
                    feedback.add_metric((verdict,), counts[verdict])
        dropped.add_metric((), self._room.recorder.dropped if self._room.recorder is not None else 0)
        yield stored
        yield feedback
        yield dropped
