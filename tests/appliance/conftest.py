"""Fixtures for the appliance tests; demo weights come from the shared ``demo_model_dir``."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def download_model() -> ModuleType:
    """scripts/download_model.py imported as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("download_model", ROOT / "scripts" / "download_model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
