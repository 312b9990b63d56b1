"""The embedding model's ``auto`` dtype on a CPU follows the engine's rule, and a hidden flag falls back;
before first use its status names what will load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model_loader.embedding import Embedder, EmbeddingSettings
from model_loader.embedding.embedder import embed_dir_problems
from model_loader.model.cpu_dtype import EXCLUDE_VARIABLE, auto_cpu_dtype

# Hiding these leaves no fast 16-bit product, so the engine's rule answers float32.
NO_HALF_FLAGS = "avx512_bf16,amx_bf16,amx_fp16,avx512_fp16"


def _embedder(tmp_path: Path, dtype: str = "auto") -> Embedder:
    settings = EmbeddingSettings(model_dir=tmp_path / "absent", demo_dir=tmp_path / "gte-demo", dtype=dtype)
    embedder = Embedder(settings, device=lambda: "cpu")
    embedder.load()
    return embedder


def test_auto_on_a_cpu_takes_the_engines_dtype(tmp_path: Path) -> None:
    embedder = _embedder(tmp_path)
    assert embedder.status.dtype == auto_cpu_dtype()
    vectors = embedder.embed(["硬件故障排查指南", "报销流程"])
    assert vectors.dtype == np.float32  # whatever the model computes in, callers get float32 unit vectors
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)


def test_auto_falls_back_to_float32_without_a_fast_half_type(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EXCLUDE_VARIABLE, NO_HALF_FLAGS)
    assert _embedder(tmp_path).status.dtype == "float32"


def test_an_explicit_dtype_is_kept(tmp_path: Path) -> None:
    assert _embedder(tmp_path, dtype="float32").status.dtype == "float32"


def test_before_first_use_the_status_names_what_will_load(tmp_path: Path) -> None:
    settings = EmbeddingSettings(model_dir=tmp_path / "absent", demo_dir=tmp_path / "gte-demo")
    idle = Embedder(settings, device=lambda: "cpu").status
    assert (idle.state, idle.model_dir, idle.is_demo) == ("idle", str(tmp_path / "gte-demo"), True)
    strict = Embedder(EmbeddingSettings(model_dir=tmp_path / "absent", demo_fallback=False)).status
    assert (strict.model_dir, strict.is_demo) == (str(tmp_path / "absent"), False)  # its first use fails, naming it
    assert not (tmp_path / "gte-demo").exists(), "nothing is built before first use"


def test_a_folder_that_cannot_be_read_is_a_problem_and_demo_weights_are_planned(tmp_path: Path) -> None:
    unreadable = tmp_path / ("x" * 300)  # a name too long: reading it raises, as a folder of root's does
    assert "cannot be read" in embed_dir_problems(unreadable)[0]
    status = Embedder(EmbeddingSettings(model_dir=unreadable, demo_dir=tmp_path / "gte-demo")).status
    assert (status.model_dir, status.is_demo) == (str(tmp_path / "gte-demo"), True)
