"""What the benchmarks print about the machine they ran on: every figure comes with its processor."""

from __future__ import annotations

import platform
from pathlib import Path


def processor() -> str:
    """The processor's model name as /proc/cpuinfo gives it, else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
