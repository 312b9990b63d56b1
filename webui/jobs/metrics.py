"""The jobs' metrics: jobs by state (read from the store at scrape time) and rows processed by task and outcome."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily


class JobMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.rows = Counter(
            "seqgpt_job_rows",
            "Rows of durable jobs processed by this process, by task and outcome (ok, failed).",
            ("task", "outcome"),
            registry=registry,
        )
        self._registry = registry

    def count_rows(self, task: str, outcome: str, count: int) -> None:
        if count:
            self.rows.labels(task=task, outcome=outcome).inc(count)

    def watch(self, counts: Callable[[], dict[str, int]]) -> None:
        self._registry.register(_JobStates(counts))


class _JobStates:
    def __init__(self, read: Callable[[], dict[str, int]]) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("seqgpt_jobs", "Durable jobs in the store, by state.", labels=("state",))
        try:
            counts = self._read()
        except Exception:  # a scrape must answer even when the store cannot: the jobs are then simply absent
            counts = {}
        for state, count in counts.items():
            family.add_metric((state,), count)
        yield family
