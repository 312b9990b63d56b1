"""A driver too old for torch's CUDA is named on the status bar and /health, not hidden by a CPU fallback."""

from __future__ import annotations

import pytest

from model_loader.results import EngineStatus
from webui.service.status import GpuReading, driver_problem, format_status

GIB = 1024**3
# What torch 2.13.0 from PyPI reports on Linux x86_64 (torch.version.cuda of the +cu130 wheel).
PYPI_TORCH_CUDA = "13.0"


@pytest.mark.parametrize(
    ("driver", "driver_cuda", "torch_cuda"),
    [
        ("580.65.06", 13000, "13.0"),  # the first CUDA 13 driver
        ("590.44.01", 13010, "13.0"),  # newer driver, newer minor
        ("575.57.08", 12090, "12.8"),  # a CUDA 12 driver runs every CUDA 12 minor release
        ("535.104.05", 12020, "12.6"),
        ("580.65.06", None, "13.0"),  # no CUDA reading: judged by the driver version alone
    ],
)
def test_driver_new_enough_for_torchs_cuda_is_no_problem(driver: str, driver_cuda: int | None, torch_cuda: str):
    assert driver_problem(driver, driver_cuda, torch_cuda) is None


def test_cuda_12_driver_with_the_pypi_cuda_13_build_names_both_versions_and_the_driver_needed():
    problem = driver_problem("575.57.08", 12090, PYPI_TORCH_CUDA)

    assert problem is not None
    for part in ("575.57.08", "CUDA up to 12.9", "CUDA 13.0", "580.65.06 or newer", "SEQGPT_DEVICE=cpu", "驱动"):
        assert part in problem


def test_old_driver_without_a_cuda_reading_is_judged_by_its_version():
    problem = driver_problem("550.54.14", None, "13.0")

    assert problem is not None and "550.54.14" in problem and "580.65.06" in problem


@pytest.mark.parametrize(
    ("driver", "driver_cuda", "torch_cuda"),
    [
        (None, None, "13.0"),  # no NVIDIA driver at all: plain CPU machine
        ("575.57.08", 12090, None),  # a CPU build of torch never needs the driver
        ("550.54.14", None, "14.0"),  # a CUDA this table does not know, and no CUDA reading
    ],
)
def test_nothing_to_judge_is_no_problem(driver: str | None, driver_cuda: int | None, torch_cuda: str | None):
    assert driver_problem(driver, driver_cuda, torch_cuda) is None


def test_future_cuda_major_unknown_to_the_table_still_compared_through_nvml():
    problem = driver_problem("580.65.06", 13000, "14.0")

    assert problem is not None and "CUDA 14.0" in problem and "a driver for CUDA 14" in problem


def test_status_bar_turns_red_with_the_driver_problem_while_the_model_runs_on_the_cpu():
    problem = driver_problem("575.57.08", 12090, PYPI_TORCH_CUDA)
    gpu = GpuReading("NVIDIA L4", 0, 1 * GIB, 24 * GIB, 40, driver_problem=problem)
    on_cpu = EngineStatus(state="ready", device="cpu", dtype="float32", model_dir="/m")

    view = format_status(on_cpu, gpu)

    assert view.level == "error" and not view.healthy
    assert "575.57.08" in view.text and "580.65.06" in view.text
    assert 'data-level="error"' in view.html


def test_status_bar_stays_red_while_loading_with_a_driver_problem():
    gpu = GpuReading("NVIDIA L4", 0, 1 * GIB, 24 * GIB, 40, driver_problem="NVIDIA driver too old")
    loading = EngineStatus(state="loading", device="cpu", dtype="float32", model_dir="/m")

    assert format_status(loading, gpu).level == "error"
