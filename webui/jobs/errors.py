"""The jobs' own errors, which webui/outcomes.py turns into HTTP statuses and words like every other error."""

from __future__ import annotations

from model_loader.errors import SeqGPTError


class JobLimitError(SeqGPTError):
    """As many jobs are waiting as SEQGPT_JOBS_MAX_QUEUED allows; the caller should try later."""


class StorageError(SeqGPTError):
    """The workspace cannot take the write (full disk, read-only folder); the message names the place."""


class JobNotFoundError(SeqGPTError):
    """No job has this id (never created, or purged)."""
