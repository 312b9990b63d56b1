"""GPU health through NVML, and the pure functions that turn readings and the model state into the status bar."""

from __future__ import annotations

import html
import logging
import os
import threading
from dataclasses import dataclass, replace

import pynvml
import torch

from model_loader.embedding import EmbedderStatus
from model_loader.results import EngineStatus
from serving.replicas import ClusterStatus

log = logging.getLogger(__name__)

HOT_CELSIUS = 85
_GIB = 1024**3

# The oldest Linux driver that runs every release of a CUDA major version (NVIDIA's "minor version
# compatibility" table in the CUDA release notes). torch's CUDA wheels need no more than this.
MIN_DRIVER_FOR_CUDA = {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}

_COLOURS = {
    "ok": ("#e7f6ec", "#1e8e3e"),
    "warn": ("#fff6e0", "#b06000"),
    "error": ("#fdecea", "#c5221f"),
}


@dataclass(frozen=True)
class GpuReading:
    """One NVML sample of the GPU the model uses."""

    name: str
    utilization_pct: int | None
    memory_used_bytes: int
    memory_total_bytes: int
    temperature_c: int | None
    # Set when the NVIDIA driver cannot run this torch build's CUDA (see driver_problem).
    driver_problem: str | None = None


@dataclass(frozen=True)
class StatusView:
    """What the status bar shows: a level (ok / warn / error), a plain-text line and its HTML."""

    level: str
    text: str
    html: str

    @property
    def healthy(self) -> bool:
        return self.level == "ok"


class GpuMonitor:
    """Reads the model's GPU through NVML. Without a driver every read returns None, quietly.

    ``device_setting`` is SEQGPT_DEVICE: with ``cpu`` the CPU is a choice, so a driver too old
    for torch's CUDA is no problem; otherwise it is one, because torch would fall back to the CPU.
    """

    def __init__(self, device_setting: str = "auto", torch_cuda: str | None = torch.version.cuda) -> None:
        self._lock = threading.Lock()
        self._handle: object | None = None
        self._unavailable: str | None = None
        self._warned = False
        self._device_setting = device_setting
        self._torch_cuda = torch_cuda
        self._driver_problem: str | None = None

    @property
    def unavailable_reason(self) -> str | None:
        return self._unavailable

    def driver_problem(self) -> str | None:
        """Why the GPU cannot be used by this build (the driver is too old), or None."""
        with self._lock:
            self._open()
            return self._driver_problem

    def read(self) -> GpuReading | None:
        with self._lock:
            handle = self._open()
            if handle is None:
                return None
            try:
                return replace(_sample(handle), driver_problem=self._driver_problem)
            except pynvml.NVMLError as exc:
                if not self._warned:
                    log.warning("NVML read failed, status bar falls back to the model state: %s", exc)
                    self._warned = True
                return None

    def _open(self) -> object | None:
        if self._handle is not None or self._unavailable is not None:
            return self._handle
        try:
            pynvml.nvmlInit()
            self._handle = _visible_gpu_handle()
        except pynvml.NVMLError as exc:
            self._unavailable = str(exc)
            log.info("no NVIDIA GPU readable through NVML (%s): the status bar shows CPU", exc)
            return None
        if self._device_setting != "cpu":
            self._driver_problem = driver_problem(*_driver_versions(), self._torch_cuda)
            if self._driver_problem:
                log.error("%s", self._driver_problem)
        return self._handle


def _driver_versions() -> tuple[str | None, int | None]:
    """The driver's version ("575.57.08") and the newest CUDA it runs (12090 for 12.9), where NVML says."""
    try:
        version = pynvml.nvmlSystemGetDriverVersion()
        version = version.decode() if isinstance(version, bytes) else str(version)
    except pynvml.NVMLError:
        return None, None
    try:
        cuda = int(pynvml.nvmlSystemGetCudaDriverVersion())
    except pynvml.NVMLError:
        cuda = None
    return version, cuda


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def driver_problem(driver_version: str | None, driver_cuda: int | None, torch_cuda: str | None) -> str | None:
    """Pure: why an NVIDIA driver cannot run torch's CUDA, or None when it can or there is nothing to tell.

    ``driver_version`` and ``driver_cuda`` are NVML's readings (``nvmlSystemGetDriverVersion``,
    ``nvmlSystemGetCudaDriverVersion``: 12090 means CUDA 12.9); ``torch_cuda`` is ``torch.version.cuda``
    (None for a CPU build of torch). A driver runs every minor release of the CUDA major versions it
    supports, so only the major version is compared.
    """
    if not driver_version or not torch_cuda:
        return None
    need_major = _version_tuple(torch_cuda)[0]
    need_driver = MIN_DRIVER_FOR_CUDA.get(need_major)
    if driver_cuda:
        if driver_cuda // 1000 >= need_major:
            return None
        runs = f"runs CUDA up to {driver_cuda // 1000}.{driver_cuda % 1000 // 10}"
    elif need_driver is None or _version_tuple(driver_version) >= _version_tuple(need_driver):
        return None
    else:
        runs = "is too old"
    needed = f"driver {need_driver} or newer" if need_driver else f"a driver for CUDA {need_major}"
    return (
        f"NVIDIA驱动过旧，GPU不可用 NVIDIA driver too old: driver {driver_version} {runs}, "
        f"but this build of torch uses CUDA {torch_cuda} and needs {needed}. "
        "Update the host's NVIDIA driver, or use an image built for an older CUDA; "
        "SEQGPT_DEVICE=cpu runs on the CPU on purpose"
    )


def _visible_gpu_handle() -> object:
    """The GPU that CUDA calls device 0, honouring CUDA_VISIBLE_DEVICES (an index or a UUID)."""
    first = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip() or "0"
    if first.isdigit():
        return pynvml.nvmlDeviceGetHandleByIndex(int(first))
    return pynvml.nvmlDeviceGetHandleByUUID(first)


def _sample(handle: object) -> GpuReading:
    name = pynvml.nvmlDeviceGetName(handle)
    memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
    try:
        utilization: int | None = int(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    except pynvml.NVMLError:
        utilization = None
    try:
        temperature: int | None = int(pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU))
    except pynvml.NVMLError:
        temperature = None
    return GpuReading(
        name=name.decode() if isinstance(name, bytes) else str(name),
        utilization_pct=utilization,
        memory_used_bytes=int(memory.used),
        memory_total_bytes=int(memory.total),
        temperature_c=temperature,
    )


def gpu_memory_text(reading: GpuReading | None) -> str:
    """Short GPU memory figure for request logs: ``1234MiB/81559MiB``, or ``-`` without a GPU."""
    if reading is None:
        return "-"
    return f"{reading.memory_used_bytes // 2**20}MiB/{reading.memory_total_bytes // 2**20}MiB"


def replicas_text(status: ClusterStatus) -> str:
    """Pure: ``副本 Replicas: 1/2 running (1 starting)``; the target is left out where autoscaling sets it."""
    running = status.running_replicas
    count = f"{running}/{status.target_replicas}" if status.target_replicas else str(running)
    others = ", ".join(
        f"{n} {state.lower()}" for state, n in sorted(status.replica_states.items()) if state != "RUNNING" and n
    )
    return f"副本 Replicas: {count} 运行 running" + (f" ({others})" if others else "")


def format_status(model: EngineStatus, gpu: GpuReading | None, embedding: EmbedderStatus | None = None) -> StatusView:
    """Pure: the status bar for a model state and a GPU reading (None where there is no NVIDIA driver),
    and the embedding model's state where there is one."""
    parts: list[str] = []
    level = "ok"
    if gpu is not None and gpu.driver_problem:
        level = "error"
        parts.append(gpu.driver_problem)
    if model.state == "ready":
        parts.append("模型 Model: 就绪 ready")
    elif model.state == "error":
        level = "error"
        parts.append(f"模型错误 Model error: {model.error or 'unknown error, see the server log'}")
    else:
        level = "error" if level == "error" else "warn"
        parts.append("模型加载中 Model loading…")
    if embedding is not None:
        parts.append(embedding_text(embedding))

    on_cpu = gpu is None or not model.device.startswith("cuda")
    if isinstance(model, ClusterStatus):
        parts.append(replicas_text(model))
        if model.ready and model.running_replicas < model.target_replicas and level == "ok":
            level = "warn"
        parts.append(f"设备 Device: {model.device or '-'}")
    else:
        parts.append("设备 Device: CPU" if on_cpu or gpu is None else f"设备 Device: GPU {gpu.name}")
        if model.weights == "int8":  # shown only when not the default
            parts.append("权重 Weights: int8")
    if gpu is not None:
        if on_cpu:
            parts.append(f"GPU {gpu.name}")
        if gpu.utilization_pct is not None:
            parts.append(f"利用率 Util: {gpu.utilization_pct}%")
        parts.append(f"显存 Memory: {gpu.memory_used_bytes / _GIB:.1f} / {gpu.memory_total_bytes / _GIB:.1f} GiB")
        if gpu.temperature_c is not None:
            parts.append(f"温度 Temp: {gpu.temperature_c}°C")
            if gpu.temperature_c >= HOT_CELSIUS:
                level = "error"
                parts.append(f"GPU过热 GPU too hot: {gpu.temperature_c}°C ≥ {HOT_CELSIUS}°C")

    text = " · ".join(parts)
    background, accent = _COLOURS[level]
    body = " · ".join(html.escape(part) for part in parts)
    markup = (
        f'<div class="seqgpt-status seqgpt-status-{level}" data-level="{level}" '
        f'style="background:{background};border-left:6px solid {accent};color:#202124;'
        f'padding:8px 12px;border-radius:6px;font-size:14px">'
        f'<span style="color:{accent};font-weight:bold">●</span> {body}</div>'
    )
    return StatusView(level=level, text=text, html=markup)


def embedding_text(status: EmbedderStatus) -> str:
    """Pure: the embedding model's part of the status bar; demo weights said as loudly as SeqGPT's."""
    if status.state == "ready":
        demo = " · 演示权重 DEMO weights (scores meaningless)" if status.is_demo else ""
        return f"嵌入 Embedding GTE: 就绪 ready ({status.dimensions}d){demo}"
    if status.state == "error":
        return f"嵌入模型错误 Embedding error: {status.error}"
    if status.state == "loading":
        return "嵌入模型加载中 Embedding loading…"
    return "嵌入 Embedding GTE: 首次使用时加载 loads on first use"
