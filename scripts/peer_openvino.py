"""A second public engine for scripts/bench_peer.py: OpenVINO, Intel's inference engine, running
one SeqGPT-560M (BLOOM) decode step built from the same safetensors file.

The step is the whole of one: the token's embedding and its norm, then in each of the 24 blocks
the norm, the fused query-key-value product, ALiBi attention over the cached keys and values, the
attention's output product, the norm and the MLP; the final norm, the output projection (the
embedding's matrix) and the argmax. The cache of earlier positions is an input, as a serving
engine holds it. Two forms of the weights:

- ``16bit``: the stored fp16 matrices, which OpenVINO's CPU plugin multiplies in bf16 where the
  processor has fast bf16 products (its default there) and in fp32 elsewhere;
- ``int8``: every matrix of the blocks and the output projection as int8 with one fp32 scale per
  output row (``max|row| / 127``), in the form OpenVINO documents for compressed weights (an int8
  constant, converted, times its scales), which its CPU plugin multiplies without widening the
  matrix in memory.

``check_against_transformers`` runs the step in fp32, on the stored weights exactly, over a short
prompt's cache and compares its logits with ``transformers``' for the same prompt, so that the
times measured are of a step that computes BLOOM, not of some other graph of the same size.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _repo import ROOT  # noqa: F401  (first: puts the repository on sys.path)
from safetensors import safe_open

from model_loader.model.bloom import alibi_slopes  # noqa: E402
from model_loader.model.int8_weights import quantized_rows  # noqa: E402

VERSION = "2026.4.1"  # pinned: the graph below is written against its opset-13 Python API
FORMS = ("16bit", "int8")
STORED = "stored"  # the stored values exactly, in fp32: the form the check against transformers takes


def openvino_module(folder: Path):
    """The ``openvino`` package: the one installed, or else one installed once into ``folder`` from
    the Python package index."""
    try:  # the development requirements carry it
        import openvino

        return openvino
    except ImportError:
        pass
    target = folder / f"openvino-{VERSION}"
    if not (target / "openvino").is_dir():
        print(f"installing openvino=={VERSION} into {target} ...", flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
             f"openvino=={VERSION}"],
            check=True,
        )
    sys.path.insert(0, str(target))
    import openvino

    return openvino


class _Weights:
    """The model's tensors as the graph takes them: fp16 constants, int8 ones with their scales, or
    (STORED) the stored values in fp32."""

    def __init__(self, ops, ov, model_dir: Path, form: str) -> None:
        self.ops, self.ov, self.form = ops, ov, form
        self.file = safe_open(str(model_dir / "model.safetensors"), "pt")
        self.prefix = "transformer." if "transformer.ln_f.weight" in self.file.keys() else ""  # noqa: SIM118

    def tensor(self, name: str) -> torch.Tensor:
        return self.file.get_tensor(self.prefix + name)

    def vector(self, name: str):
        """A norm's or a bias's values, fp32."""
        return self.ops.constant(self.tensor(name).float().numpy())

    def matrix(self, name: str):
        """A ``[out, in]`` matrix as fp32 for the graph, stored in the form's bytes."""
        ops, ov = self.ops, self.ov
        weight = self.tensor(name)
        if self.form == "16bit":
            return ops.convert(ops.constant(weight.half().numpy()), ov.Type.f32)
        if self.form == STORED:
            return ops.constant(weight.float().numpy())
        codes, scales = quantized_rows(weight)
        return ops.multiply(ops.convert(ops.constant(codes.numpy()), ov.Type.f32), ops.constant(scales.numpy()))


def build_step(ov, model_dir: Path, form: str, config: dict):
    """The decode-step graph: inputs ``token`` ``[1]`` and, per layer, ``keys_i`` / ``values_i``
    ``[heads, past, head_dim]``; outputs the logits ``[1, vocab]`` and the argmax ``[1, 1]``."""
    import openvino.opset13 as ops

    hidden, heads, layers = config["hidden_size"], config["n_head"], config["n_layer"]
    head_dim, eps = hidden // heads, config["layer_norm_epsilon"]
    weights = _Weights(ops, ov, model_dir, form)

    def norm(x, name: str):
        axis = ops.constant(np.array([-1], dtype=np.int64))
        normed = ops.mvn(x, axis, True, eps, "inside_sqrt")
        return ops.add(ops.multiply(normed, weights.vector(f"{name}.weight")), weights.vector(f"{name}.bias"))

    def linear(x, name: str):
        product = ops.matmul(x, weights.matrix(f"{name}.weight"), False, True)
        return ops.add(product, weights.vector(f"{name}.bias"))

    def constant(values, dtype=np.int64):
        return ops.constant(np.array(values, dtype=dtype))

    token = ops.parameter([1], ov.Type.i64, name="token")
    # The output projection is the embedding's matrix; the lookup takes a constant of its own, or
    # OpenVINO folds the shared one to an fp32 matrix that the projection then reads at 4 bytes.
    lookup = ops.constant(weights.tensor("word_embeddings.weight").float().numpy())
    x = norm(ops.gather(lookup, token, constant(0)), "word_embeddings_layernorm")  # [1, hidden]
    slopes = ops.constant(alibi_slopes(heads).numpy().reshape(heads, 1, 1))
    inputs = [token]
    for layer in range(layers):
        past_keys = ops.parameter([heads, -1, head_dim], ov.Type.f32, name=f"keys_{layer}")
        past_values = ops.parameter([heads, -1, head_dim], ov.Type.f32, name=f"values_{layer}")
        inputs += [past_keys, past_values]
        block = f"h.{layer}"
        qkv = ops.reshape(linear(norm(x, f"{block}.input_layernorm"), f"{block}.self_attention.query_key_value"),
                          constant([heads, 3, 1, head_dim]), False)
        query, key, value = (ops.squeeze(ops.gather(qkv, constant([i]), constant(1)), constant([1])) for i in range(3))
        keys = ops.concat([past_keys, key], 1)  # [heads, positions, head_dim]
        values = ops.concat([past_values, value], 1)
        positions = ops.gather(ops.shape_of(keys), constant(1), constant(0))
        distances = ops.convert(ops.range(constant(0), positions, constant(1), "i64"), ov.Type.f32)
        scores = ops.multiply(ops.matmul(query, keys, False, True), ops.constant(np.float32(1 / math.sqrt(head_dim))))
        probabilities = ops.softmax(ops.add(scores, ops.multiply(slopes, distances)), -1)  # [heads, 1, positions]
        context = ops.reshape(ops.matmul(probabilities, values, False, False), constant([1, hidden]), False)
        x = ops.add(x, linear(context, f"{block}.self_attention.dense"))
        up = ops.gelu(linear(norm(x, f"{block}.post_attention_layernorm"), f"{block}.mlp.dense_h_to_4h"), "tanh")
        x = ops.add(x, linear(up, f"{block}.mlp.dense_4h_to_h"))
    logits = ops.matmul(norm(x, "ln_f"), weights.matrix("word_embeddings.weight"), False, True)
    best = ops.topk(logits, 1, 1, "max", "none").output(1)
    return ov.Model([logits.output(0), best], inputs, f"bloom-decode-step-{form}")


def compiled_step(ov, model_dir: Path, form: str, config: dict, threads: int, fp32: bool = False):
    """The step compiled for this CPU with ``threads`` threads, tuned for one request's latency."""
    settings = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    if fp32:
        settings["INFERENCE_PRECISION_HINT"] = "f32"
    compiled = ov.Core().compile_model(build_step(ov, model_dir, form, config), "CPU", settings)
    return compiled, compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()


def _cache_inputs(keys: list[np.ndarray], values: list[np.ndarray]) -> dict[str, np.ndarray]:
    named = {}
    for layer, (layer_keys, layer_values) in enumerate(zip(keys, values, strict=True)):
        named[f"keys_{layer}"], named[f"values_{layer}"] = layer_keys, layer_values
    return named


def time_step(compiled, config: dict, depth: int, repetitions: int) -> float:
    """The median milliseconds of a step after ``depth`` cached positions (random keys and values:
    a step reads them whatever they hold), over ``repetitions`` batches of 8 steps."""
    heads, head_dim = config["n_head"], config["hidden_size"] // config["n_head"]
    generator = np.random.default_rng(0)
    shape = (heads, depth, head_dim)
    cache = [generator.standard_normal(shape, dtype=np.float32) for _ in range(2 * config["n_layer"])]
    inputs = {"token": np.array([5], dtype=np.int64), **_cache_inputs(cache[0::2], cache[1::2])}
    request = compiled.create_infer_request()
    for _ in range(3):  # first runs: kernels built, memory taken
        request.infer(inputs)
    times = []
    for _ in range(repetitions):
        started = time.perf_counter()
        for _ in range(8):
            request.infer(inputs)
        times.append((time.perf_counter() - started) / 8)
    return 1000 * statistics.median(times)


def check_against_transformers(ov, model_dir: Path, config: dict, threads: int) -> float:
    """The relative error of the fp32 step's logits against ``transformers``' fp32 logits for the
    last token of a 24-token prompt (the step given the cache of the 23 before it)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tokens = torch.randint(4, min(5000, config["vocab_size"]), (1, 24), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = model(tokens).logits[0, -1]
        cache = model(tokens[:, :-1], use_cache=True).past_key_values
        keys = [layer.keys[0].numpy() for layer in cache.layers]
        values = [layer.values[0].numpy() for layer in cache.layers]
    del model
    compiled, _ = compiled_step(ov, model_dir, STORED, config, threads, fp32=True)
    inputs = {"token": tokens[0, -1:].numpy(), **_cache_inputs(keys, values)}
    got = torch.from_numpy(compiled.create_infer_request().infer(inputs)[0][0].copy())
    return float((got - expected).norm() / expected.norm())


def openvino_timings(folder: Path, model_dir: Path, depth: int, threads: int, repetitions: int) -> dict:
    """OpenVINO's decode step in both forms after ``depth`` cached positions, once the fp32 step
    is checked against ``transformers``; a form's entry says the precision OpenVINO computed in."""
    ov = openvino_module(folder)
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    error = check_against_transformers(ov, model_dir, config, threads)
    if error > 1e-4:
        raise SystemExit(f"OpenVINO's step gave logits {error:.2e} (relative) from transformers' in fp32: "
                         "its graph does not compute this model, so its times would say nothing")
    timings = {}
    for form in FORMS:
        compiled, precision = compiled_step(ov, model_dir, form, config, threads)
        timings[f"OpenVINO {form}"] = {"ms_per_token": time_step(compiled, config, depth, repetitions),
                                       "dtype": precision, "fp32_logits_error": error}
        del compiled
    return timings
