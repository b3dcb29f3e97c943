"""The shared pass's (time, id) order and each leaderboard's rows listed in it (``common.fetch``)."""

from __future__ import annotations

import numpy as np

from common import fetch


def _pass(n: int, distinct_times: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Times with many ties, in roughly ascending scan order as a server sends them, and
    distinct 16-byte ids."""
    rng = np.random.default_rng(seed)
    times = np.sort(rng.integers(0, distinct_times, n)).astype(np.int64)
    times[rng.integers(0, n, n // 50)] = rng.integers(0, distinct_times, n // 50)
    ids = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    return times, ids


def _reference(times: np.ndarray, ids: np.ndarray) -> np.ndarray:
    halves = ids.view(">u8").reshape(-1, 2)
    return np.lexsort((halves[:, 1], halves[:, 0], times))


def test_the_order_is_time_then_id_across_chunk_boundaries() -> None:
    n = 2 * fetch.BATCH_ROWS + 12_345  # ties that straddle the chunks ties are found in
    times, ids = _pass(n, distinct_times=n // 3, seed=1)
    order = fetch.sort_order(times, ids)
    assert order.dtype == np.int32
    assert np.array_equal(order, _reference(times, ids))


def test_the_order_of_tiny_passes() -> None:
    for n in (0, 1, 2, 3):
        times, ids = _pass(n, distinct_times=1, seed=n)
        assert np.array_equal(fetch.sort_order(times, ids), _reference(times, ids))


def test_a_leaderboards_rows_are_listed_in_the_pass_order() -> None:
    n = fetch.BATCH_ROWS + 999
    rng = np.random.default_rng(7)
    order = rng.permutation(n).astype(np.int32)
    member = rng.random(n) < 0.3
    found = fetch.in_order(member, order)
    assert found.dtype == np.int32
    assert np.array_equal(found, order[member[order]])
    assert len(fetch.in_order(np.zeros(n, dtype=bool), order)) == 0
