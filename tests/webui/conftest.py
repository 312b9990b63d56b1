"""Fixtures of the webui tests: one shared server on demo weights, and an engine on them in this process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import RunningServer, start_server, stop_server

from model_loader import Engine, Settings


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory: pytest.TempPathFactory, demo_model_dir: Path) -> Iterator[RunningServer]:
    """One server on demo weights, shared by the HTTP, gradio_client and browser tests."""
    server = start_server(tmp_path_factory.mktemp("demo-server"), demo_model_dir)
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def engine(demo_model_dir: Path) -> Iterator[Engine]:
    """An engine on demo weights in the test's own process, for the rooms tested without a server."""
    eng = Engine(Settings(model_dir=demo_model_dir, device="cpu"))
    eng.load()
    yield eng
    eng.close()
