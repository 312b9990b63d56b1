"""Read safetensors weights straight into a model of the target dtype, a slice at a time.

Plain file reads instead of a memory map, and a bounded conversion buffer, keep
the process's peak memory near the size of the converted model: loading fp16
SeqGPT-560M as bf16 on a CPU would otherwise hold both copies at once.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def stored_dtypes(files: list[Path]) -> dict[str, torch.dtype]:
    """Each tensor's dtype as the files hold it, by name without a leading ``transformer.``."""
    return {
        name.removeprefix("transformer."): _DTYPES[entry["dtype"]]
        for path in files
        for name, entry in read_header(path)[0].items()
    }


def safetensors_files(model_dir: Path) -> list[Path]:
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        return [model_dir / name for name in names]
    return [model_dir / "model.safetensors"]


def _read_into(f, target: torch.Tensor, source_dtype: torch.dtype, at: int, buffer: bytearray, what: str) -> None:
    """Fill ``target`` from the stored values at byte ``at`` of ``f``, converting through ``buffer``."""
    item = torch.empty((), dtype=source_dtype).element_size()
    flat, step = target.view(-1), max(1, len(buffer) // item)
    f.seek(at)
    for first in range(0, flat.numel(), step):
        count = min(step, flat.numel() - first)
        view = memoryview(buffer)[: count * item]
        if f.readinto(view) != count * item:
            raise CorruptWeightsError(f"{what} ended early")
        flat[first : first + count].copy_(torch.frombuffer(view, dtype=source_dtype, count=count))


def read_state_dict(
    files: list[Path],
    dtype: torch.dtype,
    skip: tuple[str, ...] = (),
    convert: Callable[[str, torch.Tensor], Any] | None = None,
) -> dict[str, Any]:
    """Every tensor of ``files`` but those named in ``skip``, converted to ``dtype``; names lose a
    leading ``transformer.``. ``convert`` (name, tensor) may replace each as soon as it is read."""
    tensors: dict[str, Any] = {}
    buffer = bytearray(_BUFFER_BYTES)
    for path in files:
        header, data_start = read_header(path)
        with path.open("rb", buffering=0) as f:
            for name, entry in header.items():
                if name.removeprefix("transformer.") in skip:
                    continue
                source_dtype = _DTYPES[entry["dtype"]]
                target = torch.empty(entry["shape"], dtype=dtype if source_dtype.is_floating_point else source_dtype)
                begin, end = entry["data_offsets"]
                item = torch.empty((), dtype=source_dtype).element_size()
                if target.numel() * item != end - begin:
                    raise CorruptWeightsError(
                        f"{path}: tensor {name} has {end - begin} bytes for shape {entry['shape']}"
                    )
                _read_into(f, target, source_dtype, data_start + begin, buffer, f"{path} while reading {name}")
                short = name.removeprefix("transformer.")
                tensors[short] = target if convert is None else convert(short, target)
    return tensors


class RowReader:
    """Reads rows of one stored matrix with plain file reads, converted to a dtype.

    For building a resident copy of a memory-mapped matrix: reading through the map
    would make its pages resident too, and the process would hold the matrix twice.
    """

    def __init__(self, files: list[Path], name: str) -> None:
        for path in files:
            header, data_start = read_header(path)
            entry = header.get(name) or header.get(f"transformer.{name}")
            if entry is not None:
                self.path, self.shape = path, entry["shape"]
                self.source_dtype = _DTYPES[entry["dtype"]]
                self.start = data_start + entry["data_offsets"][0]
                return
        raise KeyError(f"the weights have no tensor {name}")

    def __call__(self, first: int, stop: int, dtype: torch.dtype) -> torch.Tensor:
        target = torch.empty((stop - first, *self.shape[1:]), dtype=dtype)
        row_bytes = target[0].numel() * torch.empty((), dtype=self.source_dtype).element_size()
        with self.path.open("rb", buffering=0) as f:
            where = f"{self.path} while reading rows {first}-{stop}"
            if dtype == self.source_dtype:
                # Straight into the target: a conversion buffer would add its size to the peak
                # of building the output projection, beside the slice and its packed copy.
                f.seek(self.start + first * row_bytes)
                view, done = memoryview(target.view(torch.uint8).numpy()).cast("B"), 0  # type: ignore[arg-type]
                while done < len(view):
                    count = f.readinto(view[done:])
                    if not count:
                        raise CorruptWeightsError(f"{where} ended early")
                    done += count
                return target
            buffer = bytearray(min(_BUFFER_BYTES, (stop - first) * row_bytes))
            _read_into(f, target, self.source_dtype, self.start + first * row_bytes, buffer, where)
        return target


def read_pickle_state_dict(path: Path, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """A legacy ``pytorch_model.bin``, read without executing pickled code (``weights_only``)."""
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return {
        name.removeprefix("transformer."): tensor.to(dtype) if tensor.is_floating_point() else tensor
        for name, tensor in state.items()
    }


def map_tensor(files: list[Path], name: str) -> torch.Tensor | None:
    """A read-only memory map of one stored tensor, in its stored dtype; None when absent.

    Only the pages that are read become resident, and the kernel may drop them
    again under pressure: right for the 250,880-row embedding, of which a
    request touches a few thousand rows. The process lets them go after its
    batches too (see allocator.release_mapped_pages).
    """
    import warnings

    import numpy as np

    from . import allocator

    for path in files:
        header, data_start = read_header(path)
        for stored in (name, f"transformer.{name}"):
            entry = header.get(stored)
            if entry is None:
                continue
            begin, end = entry["data_offsets"]
            raw = np.memmap(path, dtype=np.uint8, mode="r", offset=data_start + begin, shape=(end - begin,))
            with warnings.catch_warnings():  # read-only on purpose: nothing writes to weights
                warnings.simplefilter("ignore", UserWarning)
                flat = torch.from_numpy(raw)
            mapped = flat.view(_DTYPES[entry["dtype"]]).view(entry["shape"])
            allocator.let_go_between_batches(mapped)
            return mapped
    return None
