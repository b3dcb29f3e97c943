"""The ranking engine: agreement with independent references, invariances, hard data."""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from scipy.special import pdtr

from bench import upstream
from common import ranking
from common.errors import InvalidInput
from common.ranking import (
    Votes,
    _bootstrap,
    _likelihood,
    aggregate,
    bradley_terry,
    counts,
    fit_ratings,
    rank_votes,
)


def arena(models: int, votes: int, seed: int = 0, spread: float = 100.0) -> tuple[Votes, dict]:
    rng = np.random.default_rng(seed)
    elo = rng.normal(0.0, spread, models)
    a = rng.integers(0, models, votes)
    b = rng.integers(0, models - 1, votes)
    b += b >= a
    p_a = 1.0 / (1.0 + 10.0 ** ((elo[b] - elo[a]) / 400.0))
    # Ties (up to 10%) taken half from each side, so a's expected points stay p_a as the model says.
    tie = 0.4 * p_a * (1.0 - p_a)
    u = rng.random(votes)
    outcome = np.where(u < p_a - tie / 2, 0, np.where(u < p_a + tie / 2, 2, 1))
    names = tuple(f"m{i:02d}" for i in range(models))
    votes_ = Votes(names, a.astype(np.int32), b.astype(np.int32), outcome.astype(np.int8))
    return votes_, dict(zip(names, elo - elo.mean(), strict=True))


def labelled(rows: list[tuple[str, str, str, int]]) -> Votes:
    """Votes from (model_a, model_b, outcome, how many times)."""
    a, b, o = [], [], []
    for x, y, outcome, times in rows:
        a += [x] * times
        b += [y] * times
        o += [outcome] * times
    return Votes.from_labels(a, b, o)


def by_model(result: ranking.Ranking) -> dict[str, ranking.ModelRanking]:
    return {e.model: e for e in result.entries}


def assert_bounded(result: ranking.Ranking) -> None:
    for e in result.entries:
        for x in (e.bt_score, e.bootstrap_q025, e.bootstrap_q975):
            if x is not None:
                assert math.isfinite(x) and abs(round(x, 6)) < 1e4
        assert (e.rank is None) == (e.reason is not None)
        if e.rank is not None:
            assert e.bt_score is not None and e.bootstrap_q025 is not None
            assert e.bootstrap_q975 is not None
            assert e.bootstrap_q025 <= e.bootstrap_q975


# --- the estimator ------------------------------------------------------------------------------
def test_fit_matches_a_vote_level_reference_to_a_thousandth_of_an_elo() -> None:
    votes, _ = arena(8, 3000, seed=3)
    ours = fit_ratings(aggregate(votes))
    a, b = votes.model_a, votes.model_b
    points = np.array([1.0, 0.0, 0.5])[votes.outcome]

    def loss(free: np.ndarray) -> float:
        r = np.append(free, -free.sum())
        x = math.log(10) * (r[a] - r[b])
        return float((np.logaddexp(0.0, x) - points * x).sum())

    ref = minimize(loss, np.zeros(7), method="BFGS", options={"gtol": 1e-9})
    reference = np.append(ref.x, -ref.x.sum())
    assert np.abs(400 * (ours - reference)).max() < 1e-3
    assert abs(ours.mean()) < 1e-12


def test_full_fit_is_closer_to_the_optimum_than_upstream() -> None:
    votes, _ = arena(30, 20_000, seed=4)
    ours = rank_votes(votes, bootstrap=10, min_evals=0)
    cells = upstream.preprocess(votes)
    theirs = upstream.scores(upstream.fit(cells, cells.weights / cells.weights.sum()))
    names = list(votes.models)
    score = np.array([by_model(ours)[m].bt_score for m in names])
    gap = np.abs(score - theirs).max()
    # Upstream stops short of the optimum by hundredths of an Elo at most, not more.
    assert gap < 0.2


def test_recovers_the_true_strengths() -> None:
    votes, truth = arena(10, 200_000, seed=5)
    result = rank_votes(votes, bootstrap=50)
    for e in result.entries:
        assert e.bt_score is not None
        assert abs(e.bt_score - 1000.0 - truth[e.model]) < 15.0
        assert e.bootstrap_q025 is not None and e.bootstrap_q975 is not None
        assert e.bootstrap_q025 - 10 < 1000.0 + truth[e.model] < e.bootstrap_q975 + 10


def test_vote_count_includes_ties() -> None:
    votes = labelled([("a", "b", "tie", 3), ("a", "c", "model1", 4), ("c", "b", "model2", 5)])
    result = rank_votes(votes, bootstrap=10, min_evals=0)
    counts = {e.model: e.vote_count for e in result.entries}
    assert counts == {"a": 7, "b": 8, "c": 9}


# --- invariances and determinism ----------------------------------------------------------------
def test_relabelling_models_changes_nothing() -> None:
    votes, _ = arena(6, 2000, seed=6)
    renamed = {m: f"z{i}" for i, m in enumerate(reversed(votes.models))}
    permuted = Votes(
        tuple(renamed[m] for m in votes.models), votes.model_a, votes.model_b, votes.outcome
    )
    first = by_model(rank_votes(votes, bootstrap=100))
    second = by_model(rank_votes(permuted, bootstrap=100))
    # Same names in another numbering: identical, CIs included.
    shuffled_codes = np.random.default_rng(0).permutation(len(votes.models))
    recoded = Votes(
        tuple(np.array(votes.models)[np.argsort(shuffled_codes)].tolist()),
        shuffled_codes[votes.model_a].astype(np.int32),
        shuffled_codes[votes.model_b].astype(np.int32),
        votes.outcome,
    )
    third = by_model(rank_votes(recoded, bootstrap=100))
    for m in votes.models:
        assert second[renamed[m]].bt_score == pytest.approx(first[m].bt_score, abs=1e-9)
        assert third[m] == first[m]


def test_swapping_sides_with_mirrored_outcomes_changes_nothing() -> None:
    votes, _ = arena(6, 2000, seed=7)
    mirrored = Votes(
        votes.models,
        votes.model_b,
        votes.model_a,
        np.array([1, 0, 2], dtype=np.int8)[votes.outcome],
    )
    assert rank_votes(votes, bootstrap=100) == rank_votes(mirrored, bootstrap=100)


def test_same_seed_same_bits_other_seed_other_intervals() -> None:
    votes, _ = arena(12, 5000, seed=8)
    one = rank_votes(votes, bootstrap=200, seed=11, workers=1)
    two = rank_votes(votes, bootstrap=200, seed=11, workers=2)
    other = rank_votes(votes, bootstrap=200, seed=12)
    assert one.to_records() == two.to_records()
    assert one.entries == two.entries
    assert [e.bootstrap_q025 for e in one.entries] != [e.bootstrap_q025 for e in other.entries]
    assert [e.bt_score for e in one.entries] == [e.bt_score for e in other.entries]


# --- the bootstrap ------------------------------------------------------------------------------
def test_bootstrap_intervals_agree_with_upstream_within_monte_carlo_noise() -> None:
    votes, _ = arena(8, 5000, seed=9)
    replicates = 400
    ours = by_model(rank_votes(votes, bootstrap=replicates))
    low, high = upstream.bootstrap_intervals(upstream.preprocess(votes), replicates)
    for i, m in enumerate(votes.models):
        e = ours[m]
        assert e.bootstrap_q025 is not None and e.bootstrap_q975 is not None
        width = e.bootstrap_q975 - e.bootstrap_q025
        # Two independent 400-replicate bootstraps: bounds differ by ~6% of the width (1 sd).
        assert abs(e.bootstrap_q025 - low[i]) < 0.25 * width
        assert abs(e.bootstrap_q975 - high[i]) < 0.25 * width


def _problem(votes: Votes) -> _likelihood.Problem:
    counts = aggregate(votes)
    return _likelihood.Problem.build(counts, np.ones(counts.n_models, dtype=bool))


def test_replicate_draws_are_multinomial() -> None:
    votes = labelled(
        [
            ("a", "b", "model1", 5),
            ("a", "b", "tie", 1),
            ("b", "c", "model2", 3),
            ("c", "a", "model1", 9),
        ]
    )
    cells = _bootstrap.Cells.build(_problem(votes))
    x = cells.draw(np.random.default_rng(0), 200_000)
    n = int(cells.counts.sum())
    p = cells.counts / n
    assert (x.sum(axis=1) == n).all()
    np.testing.assert_allclose(x.mean(axis=0), n * p, atol=0.02)
    np.testing.assert_allclose(np.cov(x.T), n * (np.diag(p) - np.outer(p, p)), atol=0.05)


def exact_poisson_cdf(low: int, high: int, rate: float) -> np.ndarray:
    """P(low <= X <= k) for k = low..high in rational arithmetic (a table leaves out P(X < low),
    below 1e-17): the terms rate^k / k! (rate as the exact binary fraction) normalized by their
    sum far past ``high``; only the rounding to float is inexact."""
    lam = Fraction(rate)
    terms = [Fraction(1)]
    for k in range(1, high + 200):
        terms.append(terms[-1] * lam / k)
    total = sum(terms)
    partial = list(itertools.accumulate(terms[low:]))
    return np.array([float(partial[k - low] / total) for k in range(low, high + 1)])


@pytest.mark.parametrize("rate", [0.0, 0.3, 1.0, 7.25, 67.3, 250.5])
def test_poisson_tables_are_the_exact_cdf_to_a_few_ulps(rate: float) -> None:
    tables, lows = _bootstrap.poisson_tables(np.array([rate]))
    (table,), (low,) = tables, lows
    exact = exact_poisson_cdf(low, low + len(table) - 1, rate)
    assert np.abs(table - exact).max() <= 2.5e-16
    # The lower tail to its own size too, not only to 1e-16 of 1.
    tail = exact < 1e-6
    np.testing.assert_allclose(table[tail], exact[tail], rtol=1e-13, atol=0)


@pytest.mark.parametrize("rate", [1234.5, 4.9e4, 2.3e5])
def test_poisson_tables_match_scipys_pdtr_on_large_rates(rate: float) -> None:
    (table,), (low,) = _bootstrap.poisson_tables(np.array([rate]))
    assert np.abs(table - pdtr(np.arange(low, low + len(table)), rate)).max() < 1e-15


def test_inversion_draws_the_first_value_whose_cdf_exceeds_u() -> None:
    rates = np.array([0.0, 0.3, 5.0, 250.5, 2500.0, 4.9e4])
    tables, lows = _bootstrap.poisson_tables(rates)
    sampler = _bootstrap.Inversion.build(tables, lows)
    rng = np.random.default_rng(3)
    # Tails too: a u in a table's first guide slot walks its whole lower tail.
    u = np.concatenate([rng.random(3000), 1e-3 * rng.random(3000), 1 - 1e-3 * rng.random(3000)])
    for which, (table, low) in enumerate(zip(tables, lows, strict=True)):
        cdf = np.maximum.accumulate(np.minimum(table, 1.0))
        expected = low + np.searchsorted(cdf, u, side="right")
        drawn = sampler.sample(u, np.full(len(u), which))
        assert np.array_equal(drawn, expected)
        # One u per distribution, broadcast as the bootstrap draws its cells.
        grid = u.reshape(-1, 3)
        both = sampler.sample(grid, np.array([which, 0, which]))
        assert np.array_equal(both[:, 0], expected.reshape(-1, 3)[:, 0])
        assert np.array_equal(both[:, 2], expected.reshape(-1, 3)[:, 2])


def test_batched_replicate_fits_match_exact_newton() -> None:
    votes, _ = arena(15, 8000, seed=10)
    pb = _problem(votes)
    r_full = _likelihood.fit_full(pb)
    cells = _bootstrap.Cells.build(pb)
    x = cells.draw(np.random.default_rng(1), 40)
    s, n = cells.per_pair(x)
    h_inv = np.linalg.inv(pb.laplacian(pb.curvature(r_full[None], pb.total[None]))[0])
    chord, failed = _likelihood.chord(pb, r_full, h_inv, s, n)
    exact = _likelihood.newton(pb, np.tile(r_full, (40, 1)), s, n, 0.0, 1e-12)
    assert not failed.any()
    assert np.abs(400 * (chord - exact)).max() < 1e-4


def test_separable_replicates_stay_finite_and_are_counted() -> None:
    # "d" lost once in 14 votes: a replicate misses that loss with probability ~1/e.
    votes = labelled(
        [
            ("a", "b", "model1", 12), ("b", "a", "model1", 8), ("a", "c", "model1", 10),
            ("c", "a", "model1", 6), ("b", "c", "tie", 5), ("c", "b", "model1", 7),
            ("d", "a", "model1", 6), ("d", "b", "model1", 7), ("c", "d", "model1", 1),
        ]
    )  # fmt: skip
    result = rank_votes(votes, bootstrap=300, min_evals=0)
    assert result.separable_replicates > 50
    assert_bounded(result)
    d = by_model(result)["d"]
    assert d.rank == 1 and d.bootstrap_q975 is not None and d.bt_score is not None
    assert d.bootstrap_q975 > d.bt_score + 300


def test_replicates_far_from_the_full_fit_restart_with_their_own_newton() -> None:
    # "d" lost once in 201 votes: replicates with 2-3 losses put it hundreds of Elo away from the
    # full fit, where the chord iteration overshoots and a per-replicate Newton takes over.
    votes = labelled(
        [
            ("a", "b", "model1", 300), ("b", "a", "model1", 200), ("a", "c", "model1", 250),
            ("c", "a", "model1", 260), ("d", "a", "model1", 100), ("d", "b", "model1", 100),
            ("c", "d", "model1", 1),
        ]
    )  # fmt: skip
    result = rank_votes(votes, bootstrap=200, min_evals=0)
    assert_bounded(result)
    assert 0 < result.separable_replicates < 200


# --- ranks and filters --------------------------------------------------------------------------
def test_significant_rank_counts_models_whose_interval_lies_above() -> None:
    names = ["a", "b", "c", "d"]
    score = np.array([1100.0, 1090.0, 1000.0, 900.0])
    low = np.array([1080.0, 1060.0, 985.0, 850.0])
    high = np.array([1120.0, 1110.0, 1060.0, 985.0])
    kept = np.ones(4, dtype=bool)
    ranks = bradley_terry._ranks(names, score, low, high, kept, significant=True)
    # Strictly above only: b's 1060 does not count against c's 1060, nor c's 985 against d's.
    assert ranks == {0: 1, 1: 1, 2: 2, 3: 3}
    plain = bradley_terry._ranks(names, score, low, high, kept, significant=False)
    assert plain == {0: 1, 1: 2, 2: 3, 3: 4}


def test_significant_mode_end_to_end() -> None:
    votes, _ = arena(10, 4000, seed=12, spread=150.0)
    result = rank_votes(votes, bootstrap=200, significant=True)
    for e in result.ranked:
        above = sum(
            1
            for o in result.ranked
            if o.model != e.model and (o.bootstrap_q025 or 0) > (e.bootstrap_q975 or 0)
        )
        assert e.rank == 1 + above


def test_equal_scores_are_ranked_by_name() -> None:
    votes = labelled([("b", "a", "tie", 10), ("a", "b", "tie", 10)])
    result = rank_votes(votes, bootstrap=20)
    assert [(e.model, e.rank) for e in result.entries] == [("a", 1), ("b", 2)]


def test_min_evals_drops_after_the_fit_and_renumbers() -> None:
    votes = labelled(
        [
            ("a", "b", "model1", 20), ("b", "a", "model1", 10), ("b", "c", "model1", 20),
            ("c", "b", "model1", 10), ("c", "a", "model1", 8), ("a", "c", "model1", 12),
            ("rare", "a", "model1", 2), ("c", "rare", "model1", 3),
        ]
    )  # fmt: skip
    everyone = by_model(rank_votes(votes, bootstrap=50, min_evals=0))
    filtered = rank_votes(votes, bootstrap=50, min_evals=10)
    assert [e.rank for e in filtered.ranked] == [1, 2, 3]
    rare = by_model(filtered)["rare"]
    assert rare.rank is None and rare.reason == "fewer than 10 evaluations"
    # The fit still used rare's votes: the others' scores are those of the unfiltered fit.
    for e in filtered.ranked:
        assert e.bt_score == everyone[e.model].bt_score


# --- hard data ----------------------------------------------------------------------------------
BASE = [
    ("a", "b", "model1", 12), ("b", "a", "model1", 8), ("b", "c", "model1", 11),
    ("c", "b", "model1", 9), ("c", "a", "model1", 7), ("a", "c", "model1", 13),
]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "model", "reason"),
    [
        ([("x", "a", "model1", 10), ("b", "x", "model2", 5)], "x", "never lost"),
        ([("x", "a", "model2", 10), ("b", "x", "model1", 5)], "x", "never won"),
        (
            [("x", "y", "model1", 6), ("y", "x", "model1", 6), ("x", "z", "tie", 4)],
            "x",
            "not connected to the main comparison graph",
        ),
        (
            [("x", "y", "model1", 6), ("y", "x", "model1", 6), ("x", "a", "model1", 10)],
            "y",
            "never lost against the ranked models",
        ),
        (
            [("x", "y", "model1", 6), ("y", "x", "model1", 6), ("a", "y", "model1", 10)],
            "x",
            "never won against the ranked models",
        ),
    ],
)
def test_models_without_an_mle_are_reported_not_scored(
    extra: list[tuple[str, str, str, int]], model: str, reason: str
) -> None:
    result = rank_votes(labelled(BASE + extra), bootstrap=100, min_evals=0)
    assert_bounded(result)
    entry = by_model(result)[model]
    assert entry.rank is None and entry.reason == reason and entry.bt_score is None
    assert {e.model for e in result.ranked} == {"a", "b", "c"}
    assert [e.rank for e in result.ranked] == [1, 2, 3]


def test_no_rankable_group_ranks_nobody() -> None:
    result = rank_votes(labelled([("a", "b", "model1", 30), ("b", "c", "model1", 30)]))
    assert result.ranked == ()
    reasons = {e.model: e.reason for e in result.entries}
    assert reasons == {
        "a": "never lost",
        "b": "no group of models both won and lost against each other",
        "c": "never won",
    }


def test_well_posed_full_fit_uses_no_regularization() -> None:
    votes, _ = arena(5, 400, seed=13)
    counts = aggregate(votes)
    exact = fit_ratings(counts)
    scores = {e.model: e.bt_score for e in rank_votes(votes, bootstrap=20, min_evals=0).entries}
    for i, m in enumerate(votes.models):
        assert scores[m] == pytest.approx(1000 + 400 * exact[i], abs=1e-6)


# --- sandwich -----------------------------------------------------------------------------------
def test_sandwich_intervals_are_symmetric_and_match_the_bootstrap() -> None:
    votes, _ = arena(10, 100_000, seed=14)
    sandwich = by_model(rank_votes(votes, ci_method="sandwich"))
    boot = by_model(rank_votes(votes, bootstrap=500))
    for m in votes.models:
        s, b = sandwich[m], boot[m]
        assert s.bt_score == b.bt_score
        assert s.bt_score is not None and s.bootstrap_q025 is not None
        assert s.bootstrap_q975 is not None
        assert s.bt_score - s.bootstrap_q025 == pytest.approx(s.bootstrap_q975 - s.bt_score)
        assert b.bootstrap_q975 is not None and b.bootstrap_q025 is not None
        width = b.bootstrap_q975 - b.bootstrap_q025
        assert s.bootstrap_q975 - s.bootstrap_q025 == pytest.approx(width, rel=0.15)


def test_sandwich_on_hard_data_stays_bounded() -> None:
    result = rank_votes(labelled([*BASE, ("x", "a", "model1", 10)]), ci_method="sandwich")
    assert_bounded(result)
    assert result.bootstrap == 0


# --- inputs -------------------------------------------------------------------------------------
def test_self_comparison_is_invalid() -> None:
    with pytest.raises(InvalidInput, match="itself"):
        aggregate(labelled([("a", "a", "tie", 1), ("a", "b", "model1", 1)]))


def test_sorted_aggregation_matches_the_dense_one(monkeypatch: pytest.MonkeyPatch) -> None:
    votes, _ = arena(7, 3000, seed=15)
    dense = aggregate(votes)
    monkeypatch.setattr(counts, "_DENSE_CELL_LIMIT", 0)
    sparse_ = aggregate(votes)
    for field in ("first", "second", "wins", "ties", "losses", "vote_count"):
        np.testing.assert_array_equal(getattr(dense, field), getattr(sparse_, field))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"models": ("a",), "model_a": np.array([0, 1])}, "outside"),
        ({"outcome": np.array([0, 3], dtype=np.int8)}, "outcome"),
        ({"model_b": np.array([1])}, "one length"),
        ({"models": ("a", "a")}, "unique"),
    ],
)
def test_votes_are_validated(kwargs: dict, message: str) -> None:
    fields = {
        "models": ("a", "b"),
        "model_a": np.array([0, 1]),
        "model_b": np.array([1, 0]),
        "outcome": np.array([0, 2], dtype=np.int8),
    }
    with pytest.raises(InvalidInput, match=message):
        Votes(**(fields | kwargs))


def test_unknown_outcome_label_is_invalid() -> None:
    with pytest.raises(InvalidInput, match="unknown outcome 'draw'"):
        Votes.from_labels(["a"], ["b"], ["draw"])


# --- properties ---------------------------------------------------------------------------------
@st.composite
def small_arenas(draw: st.DrawFn) -> Votes:
    models = draw(st.integers(2, 6))
    names = [f"m{i}" for i in range(models)]
    pair = st.tuples(st.integers(0, models - 1), st.integers(0, models - 2), st.sampled_from(
        ["model1", "model2", "tie"]
    ))  # fmt: skip
    rows = draw(st.lists(pair, min_size=1, max_size=60))
    a = [names[i] for i, _, _ in rows]
    b = [names[j + (j >= i)] for i, j, _ in rows]
    return Votes.from_labels(a, b, [o for _, _, o in rows])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(votes=small_arenas(), significant=st.booleans(), sandwich=st.booleans())
def test_random_small_arenas_give_finite_consistent_rankings(
    votes: Votes, significant: bool, sandwich: bool
) -> None:
    result = rank_votes(
        votes,
        bootstrap=20,
        min_evals=0,
        significant=significant,
        ci_method="sandwich" if sandwich else "bootstrap",
        workers=1,
    )
    assert_bounded(result)
    ranked = result.ranked
    assert sum(e.vote_count for e in result.entries) == 2 * votes.n_votes
    if not significant:
        assert [e.rank for e in ranked] == list(range(1, len(ranked) + 1))
        scores = [e.bt_score or 0.0 for e in ranked]
        assert scores == sorted(scores, reverse=True)
    else:
        assert all(e.rank is not None and 1 <= e.rank <= len(ranked) for e in ranked)


_RANK_IN_A_PROCESS = """
import hashlib, sys
from tests.unit.test_ranking import arena
from common.ranking import rank_votes
votes, _ = arena(100, 30000, seed=5)
print(hashlib.sha256(repr(rank_votes(votes, bootstrap=100, seed=3, workers=1)).encode()).hexdigest())
"""


def test_the_bits_do_not_depend_on_how_many_threads_blas_would_take() -> None:
    # OpenBLAS sizes its thread pool from the machine (or OPENBLAS_NUM_THREADS) when numpy loads;
    # a threaded product sums in another order, so unpinned, machines with other core counts
    # would disagree in the last bits of the same ranking.
    digests = {
        threads: subprocess.run(
            [sys.executable, "-c", _RANK_IN_A_PROCESS],
            env={**os.environ, "OPENBLAS_NUM_THREADS": threads},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for threads in ("1", "4")
    }
    assert digests["1"] == digests["4"]
