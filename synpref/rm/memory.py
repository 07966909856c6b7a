"""Hand freed heap memory back to the operating system between chunks of a long stream.

glibc keeps the memory of freed tensors in its arenas, fragmented by the varying shapes of
length-bucketed batches: scoring a shard without a trim, RSS crept up about 5 MB per 1,000
pairs (so a shard's peak grew with its size); with a trim after each chunk it stays flat
(benchmarks/README.md, Stage 2 in bounded memory).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache


@cache
def _libc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None  # glibc only


def trim_heap() -> None:
    """malloc_trim(0) where the C library has it (glibc); elsewhere nothing."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
