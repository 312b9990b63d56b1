"""The history's own errors, which webui/outcomes.py turns into HTTP statuses and words like every other error."""

from __future__ import annotations

from model_loader.errors import SeqGPTError


class HistoryOffError(SeqGPTError):
    """History is not kept (SEQGPT_HISTORY is off, or its store could not be opened); the message says which."""


class RequestNotFoundError(SeqGPTError):
    """No stored request has this id (never stored, purged, or erased)."""
