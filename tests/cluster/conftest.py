"""Fixtures of the cluster tier: the web app in front of 2 local Ray Serve replicas, and one without Ray to compare."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The webui tests' helper that runs ``python -m webui`` on a free port; shared, not copied.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "webui"))

from servers import RunningServer, free_port, start_server, stop_server  # noqa: E402


@pytest.fixture(scope="session")
def replicas_server(tmp_path_factory: pytest.TempPathFactory, demo_model_dir: Path) -> Iterator[RunningServer]:
    """SEQGPT_REPLICAS=2: the app starts a local Ray cluster with 2 CPU replicas (1 CPU each) on demo weights."""
    env = {
        "SEQGPT_REPLICAS": "2",
        "SEQGPT_REPLICA_CPUS": "1",
        "SEQGPT_SERVE_PORT": str(free_port()),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    server = start_server(tmp_path_factory.mktemp("replicas-server"), demo_model_dir, env)
    yield server
    stop_server(server)


@pytest.fixture(scope="session")
def single_server(tmp_path_factory: pytest.TempPathFactory, demo_model_dir: Path) -> Iterator[RunningServer]:
    """The same app and weights with the engine in-process: the reference the replicas must match.

    One torch thread, as each replica has (SEQGPT_REPLICA_CPUS=1): a sum split over more threads
    may round differently in its last bit, on one process as much as across several."""
    server = start_server(tmp_path_factory.mktemp("single-server"), demo_model_dir, {"SEQGPT_TORCH_THREADS": "1"})
    yield server
    stop_server(server)
