"""The threads ranking runs on: its own for the bootstrap's chunks, and one for BLAS.

The bootstrap spreads chunks of replicates over Python threads (numpy lets go of the GIL, and
the chunks' seeds make the result independent of how many threads there are). The linear algebra
inside (solves and products of at most a few hundred rows) goes through BLAS, which numpy's
OpenBLAS would run on as many threads as the machine has cores. At these sizes its threads cost
more than they give (the 20 category boards of ``make run``, style-controlled, one thread each:
9.9 s of CPU with OpenBLAS's threads, 8.5 s without), and they change the last bits of the scores
with the machine's core count: the same votes and seed gave other scores here with OpenBLAS on
two threads than on one, so a machine with other cores would publish other bytes. So every
ranking call first holds BLAS to one thread, in whatever process it runs.
"""

from __future__ import annotations

import functools
import os


@functools.cache
def single_threaded_blas() -> None:
    """Hold BLAS (OpenBLAS, MKL or BLIS, as loaded by numpy) to one thread in this process, once.
    A library that threadpoolctl does not know is left as it is."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def default_threads() -> int:
    """Bootstrap threads when the caller names none: the CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
