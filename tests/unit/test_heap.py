"""Freed memory goes back to the system when asked (glibc, as on Lambda and in CI)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

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


_ARROW_CHILD = """
import json
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from common.heap import release_freed_memory

def resident_mb():
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024

source = pa.array(np.arange(250_000, dtype=np.int64))
made = [pc.add(source, i) for i in range(100)]  # 2 MB each, from Arrow's pool
held = resident_mb()
del made
kept = resident_mb()
release_freed_memory()
print(json.dumps({"held": held, "kept": kept, "after": resident_mb()}))
"""


def test_arrows_pool_gives_back_what_it_freed() -> None:
    """Arrow's pool (mimalloc in the wheels) keeps the pages of freed arrays, as a Parquet
    writer's batches and pages, until ``release_freed_memory`` asks it for them."""
    out = subprocess.run(
        [sys.executable, "-c", _ARROW_CHILD], capture_output=True, text=True, check=True
    ).stdout
    mb = json.loads(out)
    assert mb["held"] - mb["kept"] < 50, "the pool gave the pages back on its own: shows nothing"
    assert mb["kept"] - mb["after"] > 150


_GROWTH = """
import json
import sys
import numpy as np
from common.heap import GrowingArray

def peak_mb():
    with open("/proc/self/status") as status:
        return int(next(l for l in status if l.startswith("VmHWM:")).split()[1]) / 1024

batch = np.arange(1 << 18, dtype=np.int64).astype(np.uint8).reshape(-1, 16).repeat(16, axis=0)
batches = 24  # 4 MiB a batch, 96 MiB in all
start = peak_mb()
if sys.argv[1] == "grow":
    grown = GrowingArray(np.uint8, 16)
    for _ in range(batches):
        grown.append(batch + 0)
    column = grown.array()
else:
    column = np.concatenate([batch + 0 for _ in range(batches)])
assert column.shape == (batches * len(batch), 16) and (column[-len(batch):] == batch).all()
print(json.dumps({"held": peak_mb() - start, "size": column.nbytes / 2**20}))
"""


def _held(way: str) -> dict[str, float]:
    # In a fresh interpreter each: VmHWM only ever rises.
    out = subprocess.run(
        [sys.executable, "-c", _GROWTH, way], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)


def test_a_growing_array_holds_its_rows_once() -> None:
    """Appending batches costs the rows themselves; joining a list of them holds them twice."""
    joined = _held("join")
    assert joined["held"] > 1.8 * joined["size"], "joining did not hold two copies: shows nothing"
    grown = _held("grow")
    assert grown["held"] < 1.25 * grown["size"]


def test_a_growing_array_keeps_rows_in_order_and_is_taken_once() -> None:
    from common.heap import GrowingArray

    grown = GrowingArray(np.int64, 2)
    for start in range(0, 10, 3):
        grown.append(np.zeros((0, 2), dtype=np.int64))  # an empty batch adds nothing
        grown.append(np.array([[i, -i] for i in range(start, min(start + 3, 10))]))
    column = grown.array()
    assert column.tolist() == [[i, -i] for i in range(10)]
    with pytest.raises(ValueError, match="taken"):
        grown.array()
    with pytest.raises(ValueError, match="after"):
        grown.append(np.zeros((1, 2), dtype=np.int64))
    assert GrowingArray(np.int8).array().shape == (0,)
