"""Read safetensors weights straight into a model of the target dtype, a slice at a time.

Plain file reads instead of a memory map, and a bounded conversion buffer, keep
the process's peak memory near the size of the converted model: loading fp16
SeqGPT-560M as bf16 on a CPU would otherwise hold both copies at once.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch

_DTYPES = {
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F64": torch.float64,
    "I64": torch.int64,
    "I32": torch.int32,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
_BUFFER_BYTES = 32 * 1024 * 1024


class CorruptWeightsError(ValueError):
    """The file is not a complete safetensors file."""


def read_header(path: Path) -> tuple[dict, int]:
    """The safetensors header (tensor name -> dtype, shape, offsets) and where the data starts."""
    size = path.stat().st_size
    with path.open("rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise CorruptWeightsError(f"{path} is {size} bytes, too short for a safetensors file")
        (length,) = struct.unpack("<Q", raw)
        if length > size - 8:
            raise CorruptWeightsError(f"{path}: header length {length} exceeds the file size {size}")
        try:
            header = json.loads(f.read(length))
        except ValueError as exc:
            raise CorruptWeightsError(f"{path}: the header is not valid JSON") from exc
    header.pop("__metadata__", None)
    data_start = 8 + length
    for name, entry in header.items():
        if entry.get("dtype") not in _DTYPES:
            raise CorruptWeightsError(f"{path}: tensor {name} has unsupported dtype {entry.get('dtype')}")
        if data_start + entry["data_offsets"][1] > size:
            raise CorruptWeightsError(f"{path} is truncated: tensor {name} runs past the end of the file")
    return header, data_start


def safetensors_files(model_dir: Path) -> list[Path]:
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        return [model_dir / name for name in names]
    return [model_dir / "model.safetensors"]


def load_into(model: torch.nn.Module, files: list[Path]) -> None:
    """Copy every tensor of ``files`` into the same-named parameter of ``model``, converting dtype."""
    targets = dict(model.state_dict(keep_vars=True))
    prefix = getattr(model, "base_model_prefix", "")
    loaded: set[str] = set()
    buffer = bytearray(_BUFFER_BYTES)
    for path in files:
        header, data_start = read_header(path)
        with path.open("rb", buffering=0) as f:
            for name, entry in header.items():
                key = name if name in targets else f"{prefix}.{name}"
                if key not in targets:
                    continue
                target = targets[key].data
                source_dtype = _DTYPES[entry["dtype"]]
                if list(target.shape) != entry["shape"]:
                    raise CorruptWeightsError(
                        f"{path}: tensor {name} has shape {entry['shape']}, the model expects {list(target.shape)}"
                    )
                begin, end = entry["data_offsets"]
                flat = target.view(-1)
                item = torch.empty((), dtype=source_dtype).element_size()
                step = max(1, len(buffer) // item)
                f.seek(data_start + begin)
                for first in range(0, (end - begin) // item, step):
                    count = min(step, flat.numel() - first)
                    view = memoryview(buffer)[: count * item]
                    if f.readinto(view) != count * item:
                        raise CorruptWeightsError(f"{path} ended early while reading {name}")
                    chunk = torch.frombuffer(view, dtype=source_dtype, count=count)
                    flat[first : first + count].copy_(chunk)
                loaded.add(key)
    tied = {"lm_head.weight"} if getattr(model.config, "tie_word_embeddings", False) else set()
    missing = [k for k in targets if k not in loaded and k not in tied and not k.endswith("attn.masked_bias")]
    if missing:
        raise CorruptWeightsError(f"the weights lack {len(missing)} tensors the model needs, e.g. {missing[:3]}")
