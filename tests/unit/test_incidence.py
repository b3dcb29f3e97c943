"""Per-model sums over items against scipy's sparse products (the code they replaced, a dev-only
reference here): the same bits, zeros' signs included, on pairs, skewed graphs and votes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from common.ranking._incidence import Incidence, Scatter
from common.ranking.scale import LN10


def wild(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Magnitudes over 26 decades, so that any other order of addition shows in the last bits;
    some exact zeros of both signs."""
    x = rng.standard_normal(shape) * np.exp(rng.uniform(-30.0, 30.0, shape))
    x[rng.random(shape) < 0.1] = 0.0
    x[rng.random(shape) < 0.05] = -0.0
    return x


def items(kind: str, m: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    first, second = np.triu_indices(m, 1)
    if kind == "pairs":
        keep = rng.random(len(first)) < rng.uniform(0.1, 1.0)
    elif kind == "star":  # model 0 in every pair it can be, the others in few
        keep = (first == 0) | (rng.random(len(first)) < 0.05)
    else:  # votes: pairs repeated, in pair order as the style fit lays them out, or not
        a = rng.integers(0, m, 2000)
        b = rng.integers(0, m - 1, 2000)
        b += b >= a
        low, high = np.minimum(a, b), np.maximum(a, b)
        order = np.argsort(low * m + high, kind="stable") if kind == "sorted votes" else slice(None)
        return low[order], high[order]
    return first[keep], second[keep]


def same(ours: np.ndarray, reference: np.ndarray) -> bool:
    return bool(
        ours.shape == reference.shape
        and np.array_equal(ours, reference)
        and np.array_equal(np.signbit(ours), np.signbit(reference))
    )


@pytest.mark.parametrize("kind", ["pairs", "star", "sorted votes", "votes"])
@pytest.mark.parametrize("seed", range(6))
def test_sums_are_the_sparse_products_bit_for_bit(kind: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = [2, 3, 9, 40, 57, 100][seed]
    first, second = items(kind, m, rng)
    n = len(first)
    incidence = Incidence.build(first, second, m)
    rows = np.repeat(np.arange(n), 2)
    cols = np.stack([first, second], axis=1).ravel()
    a = sparse.csr_array((np.tile([1.0, -1.0], n), (rows, cols)), shape=(n, m))
    design = sparse.csr_array((np.tile([LN10, -LN10], n), (rows, cols)), shape=(n, m))
    for width in (1, 2, 88):
        x = wild(rng, (width, n))
        assert same(incidence.signed(x.T).T, np.asarray(a.T.tocsr() @ x.T).T)
        assert same(incidence.signed(x.T).T, np.asarray(x @ a))
        assert same(incidence.touches(x.T).T, np.asarray(abs(a.T).tocsr() @ x.T).T)
        assert same(incidence.signed(x.T, LN10), design.T.tocsr() @ x.T)
    assert same(incidence.signed(x[0]), a.T.tocsr() @ x[0])
    assert same(incidence.touches(x[0]), abs(a.T).tocsr() @ x[0])
    if kind in ("pairs", "star"):
        w = np.abs(wild(rng, (n,)))
        reference = (a.T @ sparse.diags_array(w) @ a).toarray()
        ours = incidence.gram(w)
        assert same(ours, reference)
        assert ours.flags.f_contiguous == reference.flags.f_contiguous


def test_a_sum_starts_from_positive_zero() -> None:
    first, second = np.array([0, 0, 1]), np.array([1, 2, 2])
    a = sparse.csr_array((np.tile([1.0, -1.0], 3), ([0, 0, 1, 1, 2, 2], [0, 1, 0, 2, 1, 2])))
    x = np.full((3, 2), -0.0)
    assert same(Incidence.build(first, second, 3).touches(x), abs(a.T).tocsr() @ x)
    assert not np.signbit(Incidence.build(first, second, 3).touches(x)).any()


def test_no_items_sum_to_zero() -> None:
    incidence = Incidence.build(np.zeros(0, np.int64), np.zeros(0, np.int64), 3)
    assert same(incidence.signed(np.zeros((0, 4))), np.zeros((3, 4)))
    assert same(incidence.gram(np.zeros(0)), np.zeros((3, 3)))


@pytest.mark.parametrize("kind", ["pairs", "star", "sorted votes", "votes"])
def test_scatter_sums_are_the_signed_sums_to_rounding(kind: str) -> None:
    rng = np.random.default_rng(7)
    m = 40
    first, second = items(kind, m, rng)
    # A model with no item at all gets zeros; a stack of columns per item is summed as one.
    keep = (first != 5) & (second != 5)
    first, second = first[keep], second[keep]
    x = rng.standard_normal((len(first), 3, 7))
    ours = Scatter.build(first, second, m).signed(x, LN10)
    reference = Incidence.build(first, second, m).signed(x.reshape(len(first), 21), LN10)
    assert ours.shape == (m, 3, 7)
    np.testing.assert_allclose(ours.reshape(m, 21), reference, rtol=1e-12, atol=1e-12)
    assert (ours[5] == 0.0).all()
    assert (Scatter.build(first, second, m).first.order is None) == (kind != "votes")
