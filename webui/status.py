"""GPU health through NVML, and the pure function that turns a reading and the model state into the status bar."""

from __future__ import annotations

import html
import logging
import os
import threading
from dataclasses import dataclass

import pynvml

from model_loader.results import EngineStatus

log = logging.getLogger(__name__)

HOT_CELSIUS = 85
_GIB = 1024**3

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
    """Reads the model's GPU through NVML. Without a driver every read returns None, quietly."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handle: object | None = None
        self._unavailable: str | None = None
        self._warned = False

    @property
    def unavailable_reason(self) -> str | None:
        return self._unavailable

    def read(self) -> GpuReading | None:
        with self._lock:
            handle = self._open()
            if handle is None:
                return None
            try:
                return _sample(handle)
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
        return self._handle


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


def format_status(model: EngineStatus, gpu: GpuReading | None) -> StatusView:
    """Pure: the status bar for a model state and a GPU reading (None where there is no NVIDIA driver)."""
    parts: list[str] = []
    level = "ok"
    if model.state == "ready":
        parts.append("模型 Model: 就绪 ready")
    elif model.state == "error":
        level = "error"
        parts.append(f"模型错误 Model error: {model.error or 'unknown error, see the server log'}")
    else:
        level = "warn"
        parts.append("模型加载中 Model loading…")

    on_cpu = gpu is None or not model.device.startswith("cuda")
    parts.append("设备 Device: CPU" if on_cpu else f"设备 Device: GPU {gpu.name}")
    if gpu is not None:
        if on_cpu:
            parts.append(f"GPU {gpu.name}")
        if gpu.utilization_pct is not None:
            parts.append(f"利用率 Util: {gpu.utilization_pct}%")
        parts.append(
            f"显存 Memory: {gpu.memory_used_bytes / _GIB:.1f} / {gpu.memory_total_bytes / _GIB:.1f} GiB"
        )
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
