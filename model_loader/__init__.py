"""The SeqGPT-560M engine: settings, loading, prompts and parsers, decoding. Knows nothing of HTTP."""

from .model import allocator

# At import, before torch runs anything and before any thread allocates: the kernel caches
# read their size once, at first use, and glibc fixes its arena cap for good once a ninth
# arena exists, which the libraries imported next (a tokenizer's thread pool, OpenMP) may make
# before an Engine is built. See allocator.py.
allocator.bound_kernel_caches()
allocator.bound_arenas()

from .engine import Engine  # noqa: E402
from .errors import InvalidInputError, ModelLoadError, ModelNotReadyError, SeqGPTError, SettingsError  # noqa: E402
from .interface import EngineAPI  # noqa: E402
from .results import Classification, EngineStatus, Extraction, Generation, Mention  # noqa: E402
from .settings import Settings  # noqa: E402

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
