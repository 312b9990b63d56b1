"""Names from transformers, resolved by one thread at a time.

transformers resolves its names lazily, importing a submodule on first access. Two threads doing so
at once (the engine loading SeqGPT while a knowledge-base request loads GTE, right after a restart)
can meet a half-imported submodule and fail with "ImportError: cannot import name 'AutoModel' from
'transformers'" (six threads resolving names at once failed in about half of fresh interpreters).
"""

from __future__ import annotations

import threading
from typing import Any

_LOCK = threading.Lock()


def transformers_names(*names: str) -> tuple[Any, ...]:
    """``transformers.<name>`` for each of ``names``, in order."""
    with _LOCK:
        import transformers

        return tuple(getattr(transformers, name) for name in names)
