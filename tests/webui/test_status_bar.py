"""The status bar: NVML readings degrade cleanly, and formatting is a pure function of the readings."""

from __future__ import annotations

from model_loader.results import EngineStatus
from webui.service.status import GpuMonitor, GpuReading, format_status, gpu_memory_text

GIB = 1024**3
READY_GPU = EngineStatus(state="ready", device="cuda:0", dtype="float16", model_dir="/m")
READY_CPU = EngineStatus(state="ready", device="cpu", dtype="float32", model_dir="/m")
HEALTHY = GpuReading("NVIDIA L4", 37, 3 * GIB, 24 * GIB, 61)
HOT = GpuReading("NVIDIA L4", 99, 20 * GIB, 24 * GIB, 93)


def test_healthy_gpu_is_green_with_name_utilisation_memory_and_temperature():
    view = format_status(READY_GPU, HEALTHY)
    assert view.level == "ok" and view.healthy
    for part in ("NVIDIA L4", "37%", "3.0 / 24.0 GiB", "61°C", "ready"):
        assert part in view.text
    assert 'data-level="ok"' in view.html


def test_hot_gpu_turns_red_and_says_why():
    view = format_status(READY_GPU, HOT)
    assert view.level == "error"
    assert "93°C" in view.text and "too hot" in view.text


def test_no_driver_reads_cpu_and_stays_green():
    view = format_status(READY_CPU, None)
    assert view.level == "ok"
    assert "CPU" in view.text
    assert "GiB" not in view.text


def test_model_error_is_red_with_the_exact_error_text():
    failed = EngineStatus(state="error", device="cuda:0", dtype="float16", model_dir="/m",
                          error="CUDA out of memory. Tried to allocate 2.00 GiB")
    view = format_status(failed, HEALTHY)
    assert view.level == "error"
    assert "CUDA out of memory. Tried to allocate 2.00 GiB" in view.text


def test_loading_model_is_amber_not_red():
    loading = EngineStatus(state="loading", device="", dtype="", model_dir="/m")
    assert format_status(loading, None).level == "warn"


def test_error_text_is_escaped_in_the_html():
    failed = EngineStatus(state="error", device="cpu", dtype="", model_dir="/m", error="<script>alert(1)</script>")
    view = format_status(failed, None)
    assert "<script>" not in view.html
    assert "&lt;script&gt;" in view.html


def test_cpu_model_on_a_gpu_machine_reads_cpu_and_still_shows_the_gpu():
    view = format_status(READY_CPU, HEALTHY)
    assert "Device: CPU" in view.text and "NVIDIA L4" in view.text


def test_gpu_memory_text_for_request_logs():
    assert gpu_memory_text(None) == "-"
    assert gpu_memory_text(HEALTHY) == "3072MiB/24576MiB"


def test_nvml_reading_on_this_machine_does_not_raise():
    monitor = GpuMonitor()
    first, second = monitor.read(), monitor.read()
    # No driver here: both reads are None and the reason is kept; with a GPU both are readings.
    if first is None:
        assert second is None and monitor.unavailable_reason
    else:
        assert isinstance(second, GpuReading) and second.memory_total_bytes > 0


def test_a_bad_engine_setting_turns_the_bar_red_with_the_setting_named():
    from model_loader import Engine

    view = format_status(Engine.from_env({"SEQGPT_DEVICE": "gpu"}).status, None)
    assert view.level == "error" and not view.healthy
    assert "SEQGPT_DEVICE='gpu'" in view.text and "auto, cpu, cuda" in view.text
