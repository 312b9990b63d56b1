"""The SeqGPT-560M engine: settings, loading, prompts and parsers, decoding. Knows nothing of HTTP."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .model import allocator

# At import, before torch runs anything and before any thread allocates: the kernel caches
# read their size once, at first use, and glibc fixes its arena cap for good once a ninth
# arena exists, which the libraries imported next (a tokenizer's thread pool, OpenMP) may make
# before an Engine is built. See allocator.py.
allocator.bound_kernel_caches()
allocator.bound_arenas()

# The public names resolve on first use (PEP 562), so the settings file and the settings can be
# checked in a fraction of a second, without importing torch: a bad settings line must stop the
# app before Supervisor's startsecs count a start as good (see webui/startup_check.py).
_EXPORTS = {
    "Engine": "engine",
    "InvalidInputError": "errors",
    "ModelLoadError": "errors",
    "ModelNotReadyError": "errors",
    "SeqGPTError": "errors",
    "SettingsError": "errors",
    "Classification": "results",
    "EngineAPI": "interface",
    "EngineStatus": "results",
    "Extraction": "results",
    "Generation": "results",
    "Mention": "results",
    "Settings": "settings",
}

if TYPE_CHECKING:
    from .engine import Engine
    from .errors import InvalidInputError, ModelLoadError, ModelNotReadyError, SeqGPTError, SettingsError
    from .interface import EngineAPI
    from .results import Classification, EngineStatus, Extraction, Generation, Mention
    from .settings import Settings


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


__all__ = [
    "Classification",
    "Engine",
    "EngineAPI",
    "EngineStatus",
    "Extraction",
    "Generation",
    "InvalidInputError",
    "Mention",
    "ModelLoadError",
    "ModelNotReadyError",
    "SeqGPTError",
    "Settings",
    "SettingsError",
]
