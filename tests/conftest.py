"""Shared fixtures: offline, analytics-free environment and demo weights built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Set before any test imports gradio or transformers.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_OFFLINE"] = "1"

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def demo_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight SeqGPT-shaped model (scripts/make_demo_model.py), built once."""
    from model_loader.model.demo import build_demo_model

    return build_demo_model(tmp_path_factory.mktemp("demo-model"))
