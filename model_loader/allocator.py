"""The process's memory allocator policy: few malloc arenas, and freed memory handed back after a batch.

glibc's malloc gives every thread that allocates under contention an arena of its own, up
to eight per core, and keeps what is freed in an arena for reuse instead of returning it.
The appliance's threads all allocate: the HTTP server's worker threads tokenise and parse,
the model worker builds each batch's caches, and the matrix products' OpenMP threads take
scratch space. Each arena then keeps the high-water mark of whatever ran on it, so the
process's memory grows with every new mix of request lengths and never comes back down.

Set in the process rather than by ``MALLOC_ARENA_MAX`` in a launcher, so that it holds however
the engine is started: scripts/start.sh, Supervisor, the Docker image, the tests, a notebook.
Elsewhere than glibc (musl, macOS) both calls do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from functools import lru_cache

log = logging.getLogger(__name__)

# mallopt parameter numbers from glibc's malloc.h
_M_ARENA_MAX = -8

# Two arenas: the model worker allocates the large per-batch tensors, and every other thread
# is light; two keep the worker from contending for a lock with the request threads.
ARENA_MAX = 2


@lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    if libc is None or not hasattr(libc, "mallopt") or not hasattr(libc, "malloc_trim"):
        return None
    return libc


def bound_arenas(arenas: int = ARENA_MAX) -> bool:
    """Cap the number of malloc arenas. glibc fixes the cap when its ninth arena is made, so
    this must run early, before many threads have allocated. True where it took effect."""
    libc = _glibc()
    if libc is None:
        return False
    ok = bool(libc.mallopt(_M_ARENA_MAX, arenas))
    log.debug("malloc arenas capped at %d: %s", arenas, ok)
    return ok


def release_freed() -> None:
    """Hand the pages of freed memory in every arena back to the system (``malloc_trim``).

    A batch's caches are freed when it ends, but freed memory stays in its arena, and the
    next batch of other shapes fits only partly into the holes: without this, memory
    creeps up batch after batch."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
