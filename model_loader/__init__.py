"""The SeqGPT-560M engine: settings, loading, prompts and parsers, decoding. Knows nothing of HTTP."""

from .engine import Engine
from .errors import InvalidInputError, ModelLoadError, ModelNotReadyError, SeqGPTError
from .results import Classification, EngineStatus, Extraction, Generation, Mention
from .settings import Settings

__all__ = [
    "Classification",
    "Engine",
    "EngineStatus",
    "Extraction",
    "Generation",
    "InvalidInputError",
    "Mention",
    "ModelLoadError",
    "ModelNotReadyError",
    "SeqGPTError",
    "Settings",
]
