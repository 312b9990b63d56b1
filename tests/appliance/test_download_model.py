"""scripts/download_model.py: checks, the one-time pickle-to-safetensors conversion, and failing fast offline."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "download_model.py"
# Generous against a loaded CI machine, yet far below what a hanging download would take.
FAIL_FAST_S = 20


def run_script(*args: str, env_overrides: dict[str, str | None] | None = None) -> tuple[int, str, float]:
    env = dict(os.environ)
    for key, value in (env_overrides or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started


def pickle_copy_of(demo: Path, dest: Path) -> dict[str, torch.Tensor]:
    """A copy of the demo model whose weights are a pickle, as the real SeqGPT-560M repository has."""
    from transformers import BloomForCausalLM

    shutil.copytree(demo, dest)
    (dest / "model.safetensors").unlink()
    state = BloomForCausalLM.from_pretrained(demo).state_dict()
    torch.save(state, dest / "pytorch_model.bin")
    return state


def test_check_accepts_demo_weights(download_model: ModuleType, demo_model_dir: Path) -> None:
    assert download_model.check_model_dir(demo_model_dir) == []


def test_check_names_each_missing_or_wrong_piece(
    download_model: ModuleType, demo_model_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(demo_model_dir, broken)
    config = json.loads((broken / "config.json").read_text())
    config["architectures"] = ["GPT2LMHeadModel"]
    (broken / "config.json").write_text(json.dumps(config))
    (broken / "model.safetensors").unlink()
    (broken / "tokenizer.json").unlink()

    problems = download_model.check_model_dir(broken)

    assert len(problems) == 3, problems
    assert any("BloomForCausalLM" in p for p in problems)
    assert any("no weights" in p for p in problems)
    assert any("tokenizer.json" in p for p in problems)
    assert download_model.check_model_dir(tmp_path / "absent") == [f"{tmp_path / 'absent'} does not exist"]


def test_pickle_checkpoint_becomes_equal_safetensors_once(
    download_model: ModuleType, demo_model_dir: Path, tmp_path: Path
) -> None:
    from transformers import BloomForCausalLM

    model_dir = tmp_path / "pickled"
    state = pickle_copy_of(demo_model_dir, model_dir)
    # The tied output projection shares memory with the embeddings, which safetensors refuses:
    # this is the case the conversion has to handle.
    assert state["lm_head.weight"].data_ptr() == state["transformer.word_embeddings.weight"].data_ptr()

    converted = download_model.convert_pickle_to_safetensors(model_dir)

    assert converted == model_dir / "model.safetensors"
    assert not (model_dir / "pytorch_model.bin").exists()
    assert download_model.check_model_dir(model_dir) == []
    assert download_model.convert_pickle_to_safetensors(model_dir) is None
    ids = torch.tensor([[5, 17, 42, 99, 3]])
    with torch.no_grad():
        expected = BloomForCausalLM.from_pretrained(demo_model_dir).eval()(ids).logits
        got = BloomForCausalLM.from_pretrained(model_dir).eval()(ids).logits
    assert torch.equal(got, expected)


def test_cli_prepares_a_copied_in_folder_and_checks_it(demo_model_dir: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "copied"
    pickle_copy_of(demo_model_dir, model_dir)

    code, output, _ = run_script("--source", "none", "--dest", str(model_dir))

    assert code == 0, output
    assert "converted pytorch_model.bin to model.safetensors" in output
    code, output, _ = run_script("--check", "--dest", str(model_dir))
    assert code == 0
    assert output.startswith(f"ok: DEMO weights (random, meaningless output) in {model_dir}: BloomForCausalLM")
    assert "model.safetensors" in output and "tokenizer.json" in output
    code, output, _ = run_script("--check", "--dest", str(tmp_path / "empty"))
    assert code == 1
    assert "does not exist" in output


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_download_fails_fast_with_a_way_out_when_the_hub_refuses(tmp_path: Path) -> None:
    dest = tmp_path / "model"
    code, output, elapsed = run_script(
        "--dest",
        str(dest),
        env_overrides={"HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}", "HF_HUB_OFFLINE": None},
    )

    assert code == 2, output
    assert elapsed < FAIL_FAST_S
    assert "cannot reach Hugging Face" in output
    assert "SEQGPT_MODEL_DIR" in output and "make_demo_model.py" in output
    assert not dest.exists(), "nothing should be created when nothing can be fetched"


def test_download_gives_up_after_its_timeout_when_the_hub_never_answers(tmp_path: Path) -> None:
    # A listening socket that never replies: the connection opens, the answer never comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        code, output, elapsed = run_script(
            "--dest",
            str(tmp_path / "model"),
            "--timeout",
            "2",
            env_overrides={"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HUB_OFFLINE": None},
        )

    assert code == 2, output
    assert elapsed < 2 + 10
    assert "cannot reach Hugging Face" in output


def test_download_from_the_real_hub_fails_fast_here_and_never_fetches_weights(tmp_path: Path) -> None:
    # The real endpoint. A revision that does not exist keeps a machine that is online from
    # downloading 1.1 GB: there it fails on the revision, offline it fails to connect.
    code, output, elapsed = run_script(
        "--dest",
        str(tmp_path / "model"),
        "--revision",
        "no-such-revision-for-tests",
        env_overrides={"HF_ENDPOINT": None, "HF_HUB_OFFLINE": None},
    )

    assert code == 2, output
    assert elapsed < FAIL_FAST_S
    assert "cannot reach Hugging Face at https://huggingface.co" in output or "no-such-revision" in output


def test_download_explains_that_hf_hub_offline_forbids_it(tmp_path: Path) -> None:
    code, output, elapsed = run_script("--dest", str(tmp_path / "model"), env_overrides={"HF_HUB_OFFLINE": "1"})

    assert code == 2
    assert "HF_HUB_OFFLINE" in output and "unset it" in output
    assert elapsed < FAIL_FAST_S


def test_modelscope_source_without_its_package_says_how_to_install_it(tmp_path: Path) -> None:
    # modelscope is deliberately not in the requirements; the message is what users without it see.
    assert importlib.util.find_spec("modelscope") is None, "modelscope is installed: this premise no longer holds"

    code, output, _ = run_script("--source", "modelscope", "--dest", str(tmp_path / "model"))

    assert code == 2
    assert "pip install modelscope" in output
