"""The shared pass's layout (``common.fetch``): its (time, id) order, each leaderboard's rows listed
in it, the model codes' type."""

from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa

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


def test_a_leaderboards_rows_are_listed_in_the_pass_order_a_row_group_at_a_time() -> None:
    n = 2 * fetch.BATCH_ROWS + 999
    rng = np.random.default_rng(7)
    order = rng.permutation(n).astype(np.int32)
    member = rng.random(n) < 0.3
    for size in (1000, fetch.BATCH_ROWS, 10 * n):
        groups = list(fetch.in_order(member, order, size))
        assert all(len(g) == size for g in groups[:-1]) and 0 < len(groups[-1]) <= size
        assert {g.dtype for g in groups} == {np.dtype(np.int32)}
        assert np.array_equal(np.concatenate(groups), order[member[order]])
    assert list(fetch.in_order(np.zeros(n, dtype=bool), order, 1000)) == []


def test_positions_widen_to_int64_past_int32_and_list_the_same_rows() -> None:
    limit = np.iinfo(np.int32).max
    assert fetch.positions_dtype(limit) is np.int32
    assert fetch.positions_dtype(limit + 1) is np.int64
    # A pass that long is 2^31 rows; the listing takes int64 positions as it takes int32 ones.
    rng = np.random.default_rng(8)
    order = rng.permutation(5000)
    member = rng.random(5000) < 0.5
    wide = list(fetch.in_order(member, order.astype(np.int64), 700))
    narrow = list(fetch.in_order(member, order.astype(np.int32), 700))
    assert {g.dtype for g in wide} == {np.dtype(np.int64)}
    assert [g.tolist() for g in wide] == [g.tolist() for g in narrow]


def _catalogue(models: int) -> fetch.Catalogue:
    ids = [str(uuid.UUID(int=i + 1)) for i in range(models)]
    table = pa.table(
        {"id": ids, "slug": ids, "name": ids, "active": [True] * models},
        schema=fetch.MODELS_SCHEMA,
    )
    return fetch.Catalogue.from_table(table)


def test_model_codes_are_kept_in_the_narrowest_type_that_holds_them() -> None:
    small, large = _catalogue(3), _catalogue(40_000)
    assert small.code_dtype == np.int16 and large.code_dtype == np.int32
    probe = np.frombuffer(uuid.UUID(int=39_999).bytes + uuid.UUID(int=0).bytes, dtype="V16")
    assert large.codes(probe).tolist() == [39_998, -1]
