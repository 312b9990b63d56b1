"""Demo weights: `scripts/make_demo_model.py` works with no network and writes a directory the real loader reads."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from model_loader import Engine, Settings
from model_loader.model.demo import DEMO_MARKER
from model_loader.model.loading import load_model
from model_loader.text.tokenizer_files import FileTokenizer

REPO = Path(__file__).resolve().parents[2]


def offline_env() -> dict[str, str]:
    """The environment of a machine without network: hub calls off, any proxy leads nowhere."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "http_proxy", "https_proxy")}
    dead_end = "http://127.0.0.1:9"
    env.update(
        HF_HUB_OFFLINE="1",
        no_proxy="",
        NO_PROXY="",
        http_proxy=dead_end,
        https_proxy=dead_end,
        HTTP_PROXY=dead_end,
        HTTPS_PROXY=dead_end,
        ALL_PROXY=dead_end,
        all_proxy=dead_end,
        PYTHONPATH="",
    )
    return env


@pytest.fixture(scope="module")
def script_output(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("script") / "demo-model"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_demo_model.py"), str(out)],
        cwd=tmp_path_factory.getbasetemp(),
        env=offline_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    return out, done


def test_make_demo_model_script_succeeds_offline(script_output):
    out, done = script_output
    assert done.returncode == 0, done.stderr
    assert str(out) in done.stdout and "meaningless" in done.stdout


def test_make_demo_model_writes_the_hugging_face_layout_and_the_demo_marker(script_output):
    out, _ = script_output
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", DEMO_MARKER):
        assert (out / name).is_file(), name
    assert "download_model.py" in (out / DEMO_MARKER).read_text(encoding="utf-8")


def test_script_demo_weights_load_through_the_real_loader(script_output):
    out, _ = script_output
    loaded = load_model(Settings(model_dir=out, device="cpu", dtype="float32"))
    assert loaded.is_demo is True
    assert loaded.device == "cpu" and loaded.dtype == "float32"
    assert loaded.config["model_type"] == "bloom"
    assert loaded.config["tie_word_embeddings"]
    assert loaded.weights.output is loaded.weights.embedding  # tied: one matrix serves both
    assert loaded.weights.embedding.shape == (loaded.config["vocab_size"], loaded.config["hidden_size"])
    assert isinstance(loaded.tokenizer, FileTokenizer)  # tokenizer.json says all: no transformers needed
    assert loaded.tokenizer.eos_id is not None


def test_script_demo_weights_serve_every_task(script_output):
    out, _ = script_output
    engine = Engine(Settings(model_dir=out))
    engine.load()
    try:
        assert engine.status.ready and engine.status.is_demo
        engine.health_check()
        assert engine.classify("温格的球队终于又踢了一场经典的比赛。", "体育，财经").label in ("体育", "财经")
        assert list(engine.extract("阿里巴巴在杭州发布了财报。", "公司名称，地点").fields) == ["公司名称", "地点"]
        assert engine.generate("输入: 你好\n分类: 正面，负面\n输出:", 4).new_tokens >= 1
    finally:
        engine.close()


def test_demo_weights_are_built_the_same_way_every_time(script_output, demo_dir):
    out, _ = script_output
    assert (out / "model.safetensors").read_bytes() == (demo_dir / "model.safetensors").read_bytes()
    assert (out / "tokenizer.json").read_bytes() == (demo_dir / "tokenizer.json").read_bytes()


def test_weights_without_the_demo_marker_are_not_reported_as_demo(demo_dir, tmp_path):
    real_looking = tmp_path / "model"
    shutil.copytree(demo_dir, real_looking)
    (real_looking / DEMO_MARKER).unlink()
    assert load_model(Settings(model_dir=real_looking, device="cpu")).is_demo is False


def test_demo_files_are_readable_by_every_user(demo_model_dir: Path) -> None:
    # Mounted into a container or read by a service account, owner-only weights would not load.
    for path in demo_model_dir.iterdir():
        assert path.stat().st_mode & 0o444 == 0o444, f"{path.name} is {oct(path.stat().st_mode & 0o777)}"
