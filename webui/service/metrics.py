"""Prometheus metrics of one app, kept in its own registry so that several apps can live in one process."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily

from .status import GpuReading

# Model calls take milliseconds on a GPU and seconds on a CPU with long texts.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Request counts and latency, plus gauges read at scrape time from the engine, the gate and NVML."""

    def __init__(
        self,
        queue_depth: Callable[[], float],
        load_seconds: Callable[[], float],
        gpu: Callable[[], GpuReading | None],
        answers_by_replica: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "seqgpt_requests",
            "Requests by task (classify, extract, generate, batch), source (api, ui) and outcome.",
            ("task", "source", "outcome"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "seqgpt_request_latency_seconds",
            "Time from admission to answer of successful requests, by task.",
            ("task",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        Gauge(
            "seqgpt_queue_depth",
            "Requests waiting for a model slot, in the server and inside the engine.",
            registry=self.registry,
        ).set_function(queue_depth)
        Gauge(
            "seqgpt_model_load_seconds",
            "Seconds the last model load took (0 until loaded).",
            registry=self.registry,
        ).set_function(load_seconds)
        Gauge(
            "seqgpt_gpu_memory_used_bytes",
            "GPU memory in use, read through NVML (0 without a GPU).",
            registry=self.registry,
        ).set_function(lambda: float(reading.memory_used_bytes) if (reading := gpu()) else 0.0)
        Gauge(
            "seqgpt_gpu_memory_total_bytes",
            "GPU memory in total, read through NVML (0 without a GPU).",
            registry=self.registry,
        ).set_function(lambda: float(reading.memory_total_bytes) if (reading := gpu()) else 0.0)

        if answers_by_replica is not None:
            self.registry.register(_ReplicaAnswers(answers_by_replica))

    def observe(self, task: str, source: str, outcome: str, seconds: float) -> None:
        self.requests.labels(task=task, source=source, outcome=outcome).inc()
        if outcome == "ok":
            self.latency.labels(task=task).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ReplicaAnswers:
    """Engine calls answered by each Ray Serve replica: shows how the load spreads (only behind replicas)."""

    def __init__(self, read: Callable[[], dict[str, int]]) -> None:
        self._read = read

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "seqgpt_replica_answers", "Engine calls answered, by Ray Serve replica.", labels=("replica",)
        )
        for replica, count in sorted(self._read().items()):
            family.add_metric((replica,), count)
        yield family
