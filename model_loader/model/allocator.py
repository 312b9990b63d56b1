"""The process's memory policy: bounded kernel caches, few malloc arenas, freed memory handed back,
and the pages of memory-mapped weights let go between batches.

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
import os
import weakref
from functools import lru_cache

log = logging.getLogger(__name__)

# mallopt parameter numbers from glibc's malloc.h
_M_ARENA_MAX = -8
# madvise advice from the kernel's mman-common.h
_MADV_DONTNEED = 4

# Two arenas: the model worker allocates the large per-batch tensors, and every other thread
# is light; two keep the worker from contending for a lock with the request threads.
ARENA_MAX = 2


# oneDNN, which runs the CPU matrix products, keeps every primitive it builds (JIT-compiled
# kernels and their buffers) in a cache keyed by shape, and PyTorch's ideep layer keeps
# another; both hold 1,024 entries by default. Each new prompt length makes new shapes, so
# memory grew by about 4 MB per new length and did not level off (the demo engine: 391 MB
# to 1,008 MB over 160 prompts of random lengths; with 64 entries it stayed at 350-370 MB).
# A decode step uses 6 kernels (four block shapes, two of the output projection's slices), a
# prompt's pass about 10 (its products and attention at its length), so 16 entries hold a pass's
# and a step's together and every layer after the first reuses them. Prompts of new lengths fill
# the rest with kernels no later step uses: with 64 entries the int8 engine's peak over the
# bench's eight free prompts was 1,004-1,024 MB, with 16 961-970 MB (2-core Xeon with AMX), and a
# step at batch 8 took the same time with either (88-99 ms, alternating runs). With other prompts
# run between its steps, a step rebuilds its kernels (about 1 ms each): 2-4 ms more a step of
# about 100 ms there. A user's ONEDNN_PRIMITIVE_CACHE_CAPACITY / LRU_CACHE_CAPACITY wins.
KERNEL_CACHE_ENTRIES = 16


def bound_kernel_caches(entries: int = KERNEL_CACHE_ENTRIES) -> None:
    """Bound oneDNN's and ideep's caches of compiled kernels. Both read their variable when
    first used, so this must run before the first matrix product; a value the user set wins."""
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(entries))
    os.environ.setdefault("LRU_CACHE_CAPACITY", str(entries))


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
    release_mapped_pages()


# Read-only maps of weight files whose pages are let go by release_mapped_pages. Weak, so that
# a map that is closed (the engine closed, or moved to a GPU) is never advised: its addresses
# may by then hold other memory.
_file_maps: weakref.WeakSet = weakref.WeakSet()


def let_go_between_batches(mapped) -> None:
    """Register a tensor that is a read-only map of a file, for release_mapped_pages."""
    _file_maps.add(mapped)


def release_mapped_pages() -> None:
    """Drop the registered maps' pages from the process (``madvise(MADV_DONTNEED)``).

    Each row of the memory-mapped embedding that a batch reads makes its pages resident, and
    the kernel maps up to 64 KB around each one. Over many requests with many different
    tokens (a real vocabulary, or the random tokens that free prompts on random weights
    generate) that climbs towards the whole 514 MB matrix, beside the resident output
    projection. The pages are clean copies of the file: dropping them loses nothing, they stay
    in the page cache, and the next batch maps the few hundred rows it reads again at the
    cost of a minor fault each."""
    libc = _glibc()
    if libc is None or not hasattr(libc, "madvise"):
        return
    page = os.sysconf("SC_PAGE_SIZE")
    for mapped in list(_file_maps):
        start = mapped.data_ptr() & ~(page - 1)  # the map itself starts at a page boundary at or before
        length = mapped.data_ptr() + mapped.untyped_storage().nbytes() - start
        libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(length), _MADV_DONTNEED)
