"""Freed memory goes back to the system when asked (glibc, as on Lambda and in CI)."""

from __future__ import annotations

import json
import subprocess
import sys

# In a fresh interpreter: the suite's own heap (what earlier tests freed, glibc's mmap threshold
# as they left it) would decide where the blocks land.
_CHILD = """
import json
import numpy as np
from common.heap import release_freed_memory

def resident_mb():
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024

blocks, alive = [], []
for _ in range(1500):
    blocks.append(np.ones(100_000 // 8))  # below the mmap threshold: on the heap
    alive.append(np.ones(64))
held = resident_mb()
del blocks
kept = resident_mb()
released = release_freed_memory()
print(json.dumps({"held": held, "kept": kept, "released": released, "after": resident_mb()}))
"""


def test_freed_blocks_between_live_ones_are_given_back() -> None:
    """Blocks freed between small arrays that live on are holes glibc keeps (the heap's top
    cannot shrink past the live ones) until ``release_freed_memory``."""
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], capture_output=True, text=True, check=True
    ).stdout
    mb = json.loads(out)
    assert mb["held"] - mb["kept"] < 50, "glibc gave the blocks back on its own: shows nothing"
    assert mb["released"] is True
    assert mb["kept"] - mb["after"] > 100
