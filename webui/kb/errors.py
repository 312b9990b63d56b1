"""The knowledge base's own errors, which webui/outcomes.py turns into HTTP statuses and words."""

from __future__ import annotations

from model_loader.errors import SeqGPTError


class DocumentNotFoundError(SeqGPTError):
    """No document has this id (never added, or deleted)."""
