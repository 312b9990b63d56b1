"""scripts/peer_openvino.py times a decode step that computes the model: its fp32 logits are
transformers', its argmax is theirs, and its int8 form stays close to them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import openvino
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import peer_openvino  # noqa: E402


def test_the_peers_fp32_step_gives_the_logits_transformers_gives(demo_model_dir: Path) -> None:
    config = json.loads((demo_model_dir / "config.json").read_text(encoding="utf-8"))
    error = peer_openvino.check_against_transformers(openvino, demo_model_dir, config, threads=2)
    assert error < 1e-5


def test_the_peers_int8_step_picks_the_argmax_of_its_logits_and_stays_near_the_16bit_step(
    demo_model_dir: Path,
) -> None:
    config = json.loads((demo_model_dir / "config.json").read_text(encoding="utf-8"))
    heads, head_dim = config["n_head"], config["hidden_size"] // config["n_head"]
    generator = np.random.default_rng(3)
    inputs: dict[str, np.ndarray] = {"token": np.array([7], dtype=np.int64)}
    for layer in range(config["n_layer"]):
        for name in ("keys", "values"):
            inputs[f"{name}_{layer}"] = generator.standard_normal((heads, 5, head_dim), dtype=np.float32)
    outputs = {}
    for form in peer_openvino.FORMS:
        compiled, _ = peer_openvino.compiled_step(openvino, demo_model_dir, form, config, threads=2, fp32=True)
        logits, best = compiled.create_infer_request().infer(inputs).values()
        assert logits.shape == (1, config["vocab_size"]) and int(best[0, 0]) == int(logits[0].argmax())
        outputs[form] = torch.from_numpy(logits[0].copy())
    wide, int8 = outputs["16bit"], outputs["int8"]
    assert not torch.equal(wide, int8)  # the int8 form does hold other weights
    assert float((int8 - wide).norm() / wide.norm()) < 0.05
