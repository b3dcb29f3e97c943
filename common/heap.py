"""Giving freed memory back to the system, where the C library lets a process ask.

glibc's malloc keeps what a process frees for its next requests, and once a large block has been
freed it serves requests up to that size from the heap instead of mapping them apart (its dynamic
mmap threshold), so the many batch-sized arrays of a pass stay resident after they are freed:
fetch/5M held ~180 MB of freed batches beside the columns joined from them. ``malloc_trim`` hands
the free pages back. Elsewhere (musl, macOS) there is no such call and nothing to do.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None


def release_freed_memory() -> bool:
    """Return the heap's free pages to the system; False where the C library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
