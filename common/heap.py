"""How a pass over millions of rows holds memory: arrays that grow in place, freed pages given back.

A column is built a batch at a time without being held twice (``GrowingArray``). Joining a list
of batches (``np.concatenate``) holds every batch beside the joined copy; growing one array by
each batch (``ndarray.resize``, which is ``realloc``) does not: glibc moves a large block's pages
to their new addresses (``mremap``) instead of copying them, and numpy zeroes only the rows added,
which the batch then fills.

glibc's malloc keeps what a process frees for its next requests, and once a large block has been
freed it serves requests up to that size from the heap instead of mapping them apart (its dynamic
mmap threshold), so the many batch-sized arrays of a pass stay resident after they are freed:
fetch/5M held ~180 MB of freed batches beside its columns. ``malloc_trim`` hands the free pages
back. Elsewhere (musl, macOS) there is no such call and nothing to do. Arrow's allocations (index
lookups, a Parquet writer's batches and pages) come from its own pool, mimalloc in the wheels,
which keeps freed pages too (46 MB after fetch/5M's pass) until its ``release_unused``.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Callable

import numpy as np
from numpy.typing import DTypeLike


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None


def release_freed_memory() -> bool:
    """Return the heap's (and Arrow's pool's) free pages to the system; False where the C library
    cannot."""
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None:
        pyarrow.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class GrowingArray:
    """Rows appended a batch at a time to one array that grows in place (see the module)."""

    def __init__(self, dtype: DTypeLike, width: int | None = None) -> None:
        self._tail = () if width is None else (width,)
        self._data: np.ndarray | None = np.empty((0, *self._tail), dtype=dtype)

    def append(self, rows: np.ndarray) -> None:
        if self._data is None:
            raise ValueError("appended to after array()")
        start = len(self._data)
        # No view of the data is handed out before array(): nothing refers to what realloc moves.
        self._data.resize((start + len(rows), *self._tail), refcheck=False)
        self._data[start:] = rows

    def array(self) -> np.ndarray:
        """The rows appended, as one array; nothing more can be appended afterwards."""
        if self._data is None:
            raise ValueError("array() taken already")
        data, self._data = self._data, None
        return data
