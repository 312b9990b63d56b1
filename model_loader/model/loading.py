"""Load SeqGPT weights and tokenizer from a local directory only: no hub calls, no remote code."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelLoadError, SettingsError
from ..settings import Settings
from ..text.tokenizer_files import ModelTokenizer, load_tokenizer
from .bloom_weights import EMBEDDING, BloomWeights
from .cpu_dtype import auto_cpu_dtype
from .demo import DEMO_MARKER
from .half_kernel import fp16_blocks_as_read, half_kernel_problem
from .int8_weights import gpu_refusal, quantize_blocks, quantizing_as_read
from .weights import RowReader, map_tensor, read_pickle_state_dict, read_state_dict, safetensors_files, stored_dtypes

log = logging.getLogger(__name__)

HOW_TO_INSTALL = (
    "run `.venv/bin/python scripts/download_model.py` in the project folder (`python scripts/download_model.py` "
    "in the Docker image), or set SEQGPT_MODEL_DIR to a folder holding SeqGPT-560M (for a quick try without it: "
    "`.venv/bin/python scripts/make_demo_model.py DIR`)"
)
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


@dataclass
class LoadedModel:
    weights: BloomWeights  # on its device, in its dtype
    config: dict  # the model's config.json
    tokenizer: ModelTokenizer
    device: str
    dtype: str
    is_demo: bool
    weights_mode: str = "16bit"  # SEQGPT_WEIGHTS: 16bit or int8


def resolve_device(requested: str) -> str:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(
            "SEQGPT_DEVICE=cuda but no CUDA device is visible: check `nvidia-smi` and that the "
            "container runs with `--gpus all`, or set SEQGPT_DEVICE=cpu"
        )
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def resolve_dtype(requested: str, device: str) -> str:
    if requested != "auto":
        return requested
    if device == "cuda":
        return "float16"
    return auto_cpu_dtype()


def check_model_dir(model_dir: Path) -> Path:
    """Raise ModelLoadError unless the directory holds a BLOOM config and a weight file."""
    if not model_dir.is_dir():
        raise ModelLoadError(f"no model at {model_dir}: {HOW_TO_INSTALL}")
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise ModelLoadError(f"{model_dir} has no config.json, so it is not a model folder: {HOW_TO_INSTALL}")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{config_path} is not valid JSON ({exc}): download the model again") from exc
    if config.get("model_type") != "bloom":
        raise ModelLoadError(
            f"{model_dir} holds a {config.get('model_type')!r} model, not BLOOM: SeqGPT-560M is a "
            f"BloomForCausalLM; {HOW_TO_INSTALL}"
        )
    weights = [model_dir / name for name in _WEIGHT_FILES if (model_dir / name).is_file()]
    if not weights:
        raise ModelLoadError(
            f"{model_dir} has no weights (looked for {', '.join(_WEIGHT_FILES)}): {HOW_TO_INSTALL}"
        )
    if not (model_dir / "tokenizer.json").is_file() and not (model_dir / "tokenizer_config.json").is_file():
        raise ModelLoadError(f"{model_dir} has no tokenizer files: {HOW_TO_INSTALL}")
    return weights[0]


def _converting_blocks(files: list[Path], dtype, int8: bool, official: bool):
    """How the blocks' matrices are held as they are read on a CPU: as int8 with SEQGPT_WEIGHTS=int8;
    where the engine computes in fp32, as fp16 for FBGEMM's kernel if the files hold them in fp16
    and the kernel is here (half_kernel); else as read, in the compute dtype. Not with the
    official settings (``official``): transformers' model would need fp32 copies of them all,
    where it shares the fp32 matrices as read."""
    import torch

    if int8:
        return quantizing_as_read(dtype)
    if dtype != torch.float32 or official or half_kernel_problem() is not None:
        return None
    stored = stored_dtypes(files)
    if not any(name.startswith("h.") and kind == torch.float16 for name, kind in stored.items()):
        return None
    log.info("blocks' matrices stored as fp16 held as fp16 for FBGEMM's fp16 kernel (fp32 arithmetic)")
    return fp16_blocks_as_read(stored)


def _read_weights(
    model_dir: Path, weight_file: Path, dtype, device: str, int8: bool = False, official: bool = False
) -> tuple[dict, BloomWeights]:
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if weight_file.suffix == ".bin":
        state = read_pickle_state_dict(weight_file, dtype)
    elif device == "cpu":
        # On the CPU the embedding (half of all weights) stays memory-mapped in its stored
        # dtype and its rows are converted as they are used; see BloomRunner.
        files = safetensors_files(model_dir)
        convert = _converting_blocks(files, dtype, int8, official)
        state = read_state_dict(files, dtype, skip=(EMBEDDING,), convert=convert)
        embedding = map_tensor(files, EMBEDDING)
        if embedding is None:
            raise ValueError(f"the weights have no tensor {EMBEDDING}")
        state[EMBEDDING] = embedding
    else:
        state = read_state_dict(safetensors_files(model_dir), dtype)
    num_heads = config.get("n_head", config.get("num_attention_heads"))
    weights = BloomWeights.from_state_dict(state, num_heads, config.get("layer_norm_epsilon", 1e-5))
    if device == "cpu" and weight_file.suffix != ".bin" and weights.output is weights.embedding:
        # The output projection is built from plain reads when first needed (see OutputProjection).
        weights.read_output_rows = RowReader(safetensors_files(model_dir), EMBEDDING)
    hidden = weights.embedding.shape[1]
    if hidden != config.get("hidden_size", config.get("n_embed")) or len(weights.blocks) != config.get("n_layer"):
        raise ValueError(f"the weights do not match config.json (hidden {hidden}, {len(weights.blocks)} layers)")
    return config, weights


def load_model(settings: Settings, device: str | None = None) -> LoadedModel:
    """Load weights and tokenizer; every failure is a ModelLoadError that says how to fix it."""
    import torch

    weight_file = check_model_dir(settings.model_dir)
    device = resolve_device(device or settings.device)
    dtype = resolve_dtype(settings.dtype, device)
    refusal = gpu_refusal(device, settings.weights)
    if refusal is not None:
        raise SettingsError(refusal)
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    try:
        tokenizer = load_tokenizer(settings.model_dir)
    except Exception as exc:
        raise ModelLoadError(
            f"the tokenizer in {settings.model_dir} could not be read ({exc}): {HOW_TO_INSTALL}"
        ) from exc
    int8 = device == "cpu" and settings.weights == "int8"
    try:
        official = settings.decoding == "official"
        config, weights = _read_weights(settings.model_dir, weight_file, getattr(torch, dtype), device, int8, official)
    except Exception as exc:
        raise ModelLoadError(
            f"the weights in {weight_file} could not be read ({type(exc).__name__}: {exc}); the file may be "
            f"truncated or corrupt: download it again with `python scripts/download_model.py`"
        ) from exc
    try:
        weights = weights.to(device)
    except torch.OutOfMemoryError as exc:
        raise ModelLoadError(f"CUDA out of memory while moving the model to the GPU: {exc}") from exc
    if int8:
        quantize_blocks(weights, getattr(torch, dtype))
    elif device == "cpu" and dtype in ("bfloat16", "float16"):
        weights.pack_linears()
    if tokenizer.eos_id is None:
        raise ModelLoadError(f"the tokenizer in {settings.model_dir} has no end-of-sequence token")
    log.info("loaded %s on %s as %s, weights %s", settings.model_dir, device, dtype, settings.weights)
    is_demo = (settings.model_dir / DEMO_MARKER).exists()
    return LoadedModel(weights, config, tokenizer, device, dtype, is_demo, settings.weights)
