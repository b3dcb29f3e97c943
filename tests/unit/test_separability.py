"""The existence checks (which models form the ranked component, which replicates have no MLE)
against scipy's strongly-connected-components search, graph by graph: same flags, same bits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse
from scipy.sparse import csgraph

from common.ranking import (
    Votes,
    _bootstrap,
    _components,
    _likelihood,
    aggregate,
    bradley_terry,
    rank_votes,
)


def skewed_arena(models: int, votes: int, spread: float, seed: int) -> Votes:
    """Random pairings, outcomes from hidden strengths spread widely: the strongest models lose
    only a few times, so replicates often miss a model's only losses (or wins)."""
    rng = np.random.default_rng(seed)
    elo = rng.normal(0.0, spread, models)
    a = rng.integers(0, models, votes)
    b = rng.integers(0, models - 1, votes)
    b += b >= a
    p_a = 1.0 / (1.0 + 10.0 ** ((elo[b] - elo[a]) / 400.0))
    outcome = np.where(rng.random(votes) < p_a, 0, 1)
    outcome[rng.random(votes) < 0.05] = 2
    names = tuple(f"m{i:03d}" for i in range(models))
    return Votes(names, a.astype(np.int32), b.astype(np.int32), outcome.astype(np.int8))


ARENAS = {
    "8 models, 80 votes": (8, 80, 250.0, 3),
    "20 models, 400 votes": (20, 400, 350.0, 1),
    "30 models, 600 votes": (30, 600, 450.0, 4),
    "60 models, 900 votes": (60, 900, 300.0, 5),
}


def reference_separable(pb: _likelihood.Problem, s: np.ndarray, n: np.ndarray) -> np.ndarray:
    """One csgraph strong-components search per replicate (the check as it was first written)."""
    lost = n - s
    out = np.zeros(len(s), dtype=bool)
    for b in range(len(s)):
        fwd, back = s[b] > 0, lost[b] > 0
        rows = np.concatenate([pb.first[fwd], pb.second[back]])
        cols = np.concatenate([pb.second[fwd], pb.first[back]])
        graph = sparse.csr_array(
            (np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(pb.m, pb.m)
        )
        k, _ = csgraph.connected_components(graph, directed=True, connection="strong")
        out[b] = k > 1
    return out


def _ranked_problem(votes: Votes) -> _likelihood.Problem:
    counts, names = bradley_terry._alphabetical(aggregate(votes), votes.models)
    return _likelihood.Problem.build(counts, _components.components(counts, names).main)


@pytest.mark.parametrize("name", ARENAS)
def test_separable_flags_match_a_per_replicate_search(name: str) -> None:
    pb = _ranked_problem(skewed_arena(*ARENAS[name]))
    cells = _bootstrap.Cells.build(pb)
    x = cells.draw(np.random.default_rng(11), 400)
    s, n = cells.per_pair(x)
    expected = reference_separable(pb, s, n)
    # The arenas are chosen so that both answers occur, and some replicates lost an edge of the
    # full graph without becoming separable (the case a shortcut could get wrong).
    lost_an_edge = ((s <= 0) & (pb.score > 0)).any(axis=1) | (
        (n - s <= 0) & (pb.total - pb.score > 0)
    ).any(axis=1)
    assert 0 < expected.sum() < len(expected)
    assert (lost_an_edge & ~expected).any()
    np.testing.assert_array_equal(_components.separable_replicates(pb, s, n), expected)


def test_separable_flags_are_the_same_searched_in_small_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pb = _ranked_problem(skewed_arena(*ARENAS["30 models, 600 votes"]))
    cells = _bootstrap.Cells.build(pb)
    x = cells.draw(np.random.default_rng(12), 300)
    s, n = cells.per_pair(x)
    monkeypatch.setattr(_components, "_SEARCH_CELLS", 7 * pb.m * pb.m)
    np.testing.assert_array_equal(
        _components.separable_replicates(pb, s, n), reference_separable(pb, s, n)
    )


@pytest.mark.parametrize("name", ARENAS)
def test_bootstrap_is_bit_identical_with_the_reference_check(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    votes = skewed_arena(*ARENAS[name])
    pb = _ranked_problem(votes)
    r_full = _likelihood.fit_full(pb)
    ours, separable = _bootstrap.bootstrap_ratings(pb, r_full, 300, 3, 2)
    ranking = rank_votes(votes, bootstrap=300, seed=3, min_evals=0)
    monkeypatch.setattr(_bootstrap, "separable_replicates", reference_separable)
    reference, expected = _bootstrap.bootstrap_ratings(pb, r_full, 300, 3, 2)
    assert separable == expected > 0
    np.testing.assert_array_equal(ours.view(np.int64), reference.view(np.int64))
    assert ranking == rank_votes(votes, bootstrap=300, seed=3, min_evals=0)


def _random_graph(m: int, density: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    adj = rng.random((m, m)) < density
    np.fill_diagonal(adj, False)
    return adj


def _same_partition(labels_a: np.ndarray, labels_b: np.ndarray) -> bool:
    return bool((np.equal.outer(labels_a, labels_a) == np.equal.outer(labels_b, labels_b)).all())


@settings(max_examples=80, deadline=None)
@given(
    m=st.integers(1, 40),
    density=st.floats(0.0, 0.3),
    seed=st.integers(0, 2**32 - 1),
)
def test_components_match_csgraph(m: int, density: float, seed: int) -> None:
    adj = _random_graph(m, density, seed)
    graph = sparse.csr_array(adj.astype(np.int8))
    k, expected = csgraph.connected_components(graph, directed=True, connection="strong")
    labels = _components.strong_components(adj)
    assert _same_partition(labels, expected)
    assert len(np.unique(labels)) == k
    assert _components.strongly_connected(adj[None])[0] == (k == 1)
    start = np.zeros(m, dtype=bool)
    start[0] = True
    reached = np.zeros(m, dtype=bool)
    reached[csgraph.breadth_first_order(graph, 0, return_predecessors=False)] = True
    np.testing.assert_array_equal(_components.reachable(adj, start), reached)
