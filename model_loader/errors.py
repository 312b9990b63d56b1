"""The engine's own error types; the web layer translates them into HTTP and UI messages."""


class SeqGPTError(Exception):
    """Base class for every error the engine raises on purpose."""


class InvalidInputError(SeqGPTError, ValueError):
    """The request itself is wrong (empty text, too many labels, ...); the message says how to fix it."""


class ModelLoadError(SeqGPTError):
    """The weights could not be loaded; the message names the directory and the way out."""


class ModelNotReadyError(SeqGPTError):
    """The model is still loading, failed to load, or failed its health check."""


class SettingsError(SeqGPTError, ValueError):
    """A ``SEQGPT_*`` setting has a value that cannot be used; the message names it and the values that can."""


class OverloadedError(SeqGPTError):
    """The work queued ahead of a request would keep it waiting too long; try again after ``retry_after_s``."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class AbandonedError(SeqGPTError):
    """Nobody waits for the answer any more (the client went away): the request's work was dropped."""
