"""Style-controlled Bradley-Terry: agreement with independent references, recovery of a known
length effect, invariances, determinism and hard data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from bench import fastchat
from bench.style import style_arena
from common.errors import InvalidInput, NotEnoughData
from common.ranking import (
    ModelRanking,
    StyleCoefficient,
    StyleFeatures,
    StyleRanking,
    Votes,
    _components,
    _style_batch,
    _style_bootstrap,
    _style_likelihood,
    _style_problem,
    rank_votes,
    rank_with_style,
)

LN10 = math.log(10.0)


def by_model(result: StyleRanking) -> dict[str, ModelRanking]:
    return {e.model: e for e in result.ranking.entries}


def coefficient(result: StyleRanking, feature: str) -> StyleCoefficient:
    return next(c for c in result.coefficients if c.feature == feature)


def value(x: float | None) -> float:
    assert x is not None
    return x


def labelled(rows: list[tuple[str, str, str, int]], seed: int = 0) -> tuple[Votes, StyleFeatures]:
    """Votes from (model_a, model_b, outcome, how many times), with random style counts."""
    a, b, o = [], [], []
    for x, y, outcome, times in rows:
        a += [x] * times
        b += [y] * times
        o += [outcome] * times
    votes = Votes.from_labels(a, b, o)
    rng = np.random.default_rng(seed)
    n = votes.n_votes
    return votes, StyleFeatures(rng.poisson(200, (n, 4)), rng.poisson(200, (n, 4)))


def standardized(features: StyleFeatures) -> np.ndarray:
    """The blog-era features, written out: (a - b) / (a + b + 1), z-scored with ddof 0."""
    a = np.asarray(features.a, dtype=float)
    b = np.asarray(features.b, dtype=float)
    d = (a - b) / (a + b + 1.0)
    return (d - d.mean(axis=0)) / d.std(axis=0)


def assert_bounded(result: StyleRanking) -> None:
    for e in result.ranking.entries:
        for x in (e.bt_score, e.bootstrap_q025, e.bootstrap_q975):
            if x is not None:
                assert math.isfinite(x) and abs(round(x, 6)) < 1e4
        assert (e.rank is None) == (e.reason is not None)
        if e.rank is not None:
            assert e.bootstrap_q025 is not None and e.bootstrap_q975 is not None
            assert e.bootstrap_q025 <= e.bootstrap_q975
    for c in result.coefficients:
        assert (c.estimate is None) == (c.reason is not None)
        if c.estimate is not None:
            assert c.q025 is not None and c.q975 is not None and c.q025 <= c.q975


# --- the estimator ------------------------------------------------------------------------------
def test_fit_matches_a_per_vote_scipy_reference_to_a_millionth_of_an_elo() -> None:
    arena = style_arena(6, 3000, seed=3, length_effect=1.5, markdown_effect=0.3)
    votes, features = arena.votes, arena.features
    ours = rank_with_style(votes, features, ci_method="sandwich", min_evals=0)
    a, b = votes.model_a, votes.model_b
    y = np.array([1.0, 0.0, 0.5])[votes.outcome]
    z = standardized(features)
    m = len(votes.models)

    def loss_and_grad(free: np.ndarray) -> tuple[float, np.ndarray]:
        r = np.append(free[: m - 1], -free[: m - 1].sum())
        beta = free[m - 1 :]
        eta = LN10 * (r[a] - r[b]) + z @ beta
        resid = 1.0 / (1.0 + np.exp(-eta)) - y
        g_r = LN10 * (np.bincount(a, resid, m) - np.bincount(b, resid, m))
        grad = np.concatenate([g_r[: m - 1] - g_r[m - 1], z.T @ resid])
        return float((np.logaddexp(0.0, eta) - y * eta).sum()), grad

    ref = minimize(loss_and_grad, np.zeros(m + 3), jac=True, method="BFGS", options={"gtol": 1e-10})
    r_ref = np.append(ref.x[: m - 1], -ref.x[: m - 1].sum())
    entries = by_model(ours)
    for i, name in enumerate(votes.models):
        assert entries[name].bt_score == pytest.approx(1000 + 400 * r_ref[i], abs=1e-6)
    for j, name in enumerate(features.names):
        c = coefficient(ours, name)
        assert c.elo == pytest.approx(400 / LN10 * ref.x[m - 1 + j], abs=1e-6)


def test_standardization_is_fastchats() -> None:
    arena = style_arena(5, 2000, seed=4)
    ours = rank_with_style(arena.votes, arena.features, ci_method="sandwich", min_evals=0)
    theirs = fastchat.preprocess_for_style(arena.votes, arena.features)
    means = np.array([value(c.mean) for c in ours.coefficients])
    sds = np.array([value(c.sd) for c in ours.coefficients])
    np.testing.assert_allclose(means, theirs.style_mean, atol=1e-15)
    np.testing.assert_allclose(sds, theirs.style_std, rtol=1e-13)


def test_agrees_with_fastchat_up_to_its_ridge() -> None:
    arena = style_arena(8, 20_000, seed=5)
    ours = rank_with_style(arena.votes, arena.features, ci_method="sandwich", min_evals=0)
    data = fastchat.preprocess_for_style(arena.votes, arena.features)
    params = fastchat.fit_contextual_bt(data)
    theirs = fastchat.scores(params, data.n_models)
    entries = by_model(ours)
    for i, name in enumerate(arena.votes.models):
        # FastChat's 0.25 |theta|^2 pulls ratings towards 0 by a fraction of an Elo at 20k votes.
        assert entries[name].bt_score == pytest.approx(theirs[i], abs=0.5)
    for j, c in enumerate(ours.coefficients):
        assert c.estimate == pytest.approx(params[data.n_models + j], abs=2e-3)


def test_without_style_variation_it_is_the_plain_fit() -> None:
    arena = style_arena(8, 20_000, seed=6)
    votes = arena.votes
    n = votes.n_votes
    # Every answer of equal length; headers 0 everywhere; side a always twice side b's lists and
    # bold: every normalized difference is constant.
    flat = StyleFeatures(
        np.column_stack([np.full(n, 120), np.zeros(n), np.full(n, 6), np.full(n, 2)]),
        np.column_stack([np.full(n, 120), np.zeros(n), np.full(n, 3), np.full(n, 1)]),
    )
    style = rank_with_style(votes, flat, bootstrap=400, min_evals=0)
    plain = rank_votes(votes, bootstrap=400, min_evals=0)
    assert all(
        c.estimate is None and "zero variance" in (c.reason or "") for c in style.coefficients
    )
    plain_entries = {e.model: e for e in plain.entries}
    for name, e in by_model(style).items():
        p = plain_entries[name]
        assert e.rank == p.rank
        assert e.bt_score == pytest.approx(p.bt_score, abs=1e-8)
        assert e.bootstrap_q025 is not None and e.bootstrap_q975 is not None
        assert p.bootstrap_q025 is not None and p.bootstrap_q975 is not None
        width = p.bootstrap_q975 - p.bootstrap_q025
        # Two independent bootstraps of the same law (per vote here, per cell there).
        assert abs(e.bootstrap_q025 - p.bootstrap_q025) < 0.25 * width
        assert abs(e.bootstrap_q975 - p.bootstrap_q975) < 0.25 * width


def test_recovers_strengths_and_length_effect_where_the_plain_fit_is_biased() -> None:
    # Strong models answer tersely, weak ones at length, and voters prefer the longer answer.
    arena = style_arena(
        10, 200_000, seed=7, length_effect=1.5, markdown_effect=0.0, verbosity_by_strength=-0.6
    )
    votes = arena.votes
    truth = dict(zip(votes.models, 1000.0 + arena.elo, strict=True))
    style = by_model(rank_with_style(votes, arena.features, bootstrap=200))
    plain = {e.model: e for e in rank_votes(votes, bootstrap=200).entries}
    missed_by_plain = 0
    for name in votes.models:
        p, s = plain[name], style[name]
        assert p.bootstrap_q025 is not None and p.bootstrap_q975 is not None
        assert s.bootstrap_q025 is not None and s.bootstrap_q975 is not None
        if not p.bootstrap_q025 - 10 < truth[name] < p.bootstrap_q975 + 10:
            missed_by_plain += 1
        # 10 Elo of slack as in the plain fit's recovery test: ten 95% intervals at once.
        assert s.bootstrap_q025 - 10 < truth[name] < s.bootstrap_q975 + 10
    assert missed_by_plain >= 4
    result = rank_with_style(votes, arena.features, bootstrap=200)
    length = coefficient(result, "length")
    # The true coefficient per SD: effect per unit of the normalized difference times its SD.
    true_beta = arena.effect[0] * length.sd
    assert length.q025 is not None and length.q975 is not None
    # Four 95% intervals checked at once: each widened by half its width (+-3.9 SE).
    half = 0.5 * (length.q975 - length.q025)
    assert length.q025 - half < true_beta < length.q975 + half
    assert half < 0.05 * true_beta
    for c in result.coefficients[1:]:
        assert c.q025 is not None and c.q975 is not None
        half = 0.5 * (c.q975 - c.q025)
        assert c.q025 - half < 0.0 < c.q975 + half


def test_vote_counts_and_left_out_votes() -> None:
    votes, features = labelled(
        [
            ("a", "b", "model1", 12), ("b", "a", "model1", 8), ("b", "c", "model1", 11),
            ("c", "b", "model1", 9), ("c", "a", "model1", 7), ("a", "c", "model1", 13),
            ("x", "a", "model1", 10), ("b", "x", "model2", 5),
        ]
    )  # fmt: skip
    result = rank_with_style(votes, features, bootstrap=50, min_evals=0)
    x = by_model(result)["x"]
    assert x.rank is None and x.reason == "never lost" and x.bt_score is None
    assert x.vote_count == 15
    assert (result.votes_used, result.votes_left_out) == (60, 15)
    assert [e.rank for e in result.ranking.ranked] == [1, 2, 3]
    assert_bounded(result)


def test_features_that_separate_the_outcomes_have_no_mle() -> None:
    # a wins exactly when its answer is the longer one: beta would be infinite.
    votes = Votes.from_labels(["a"] * 10, ["b"] * 10, ["model1"] * 5 + ["model2"] * 5)
    longer = np.array([[300, 1, 1, 1]] * 5 + [[100, 1, 1, 1]] * 5)
    features = StyleFeatures(longer, np.array([[200, 1, 1, 1]] * 10))
    with pytest.raises(NotEnoughData, match="separate"):
        rank_with_style(votes, features, bootstrap=10, min_evals=0)


def test_zero_variance_and_collinear_features_are_dropped_and_reported() -> None:
    arena = style_arena(6, 5000, seed=8)
    fa = np.array(arena.features.a).copy()
    fb = np.array(arena.features.b).copy()
    fa[:, 1] = fb[:, 1] = 0  # no headers anywhere
    fa[:, 3], fb[:, 3] = fa[:, 2], fb[:, 2]  # bold spans counted exactly like list items
    result = rank_with_style(arena.votes, StyleFeatures(fa, fb), bootstrap=50)
    headers, lists, bold = (coefficient(result, f) for f in ("headers", "lists", "bold"))
    assert headers.estimate is None and headers.reason is not None
    assert "zero variance" in headers.reason
    assert lists.estimate is not None
    assert bold.estimate is None and bold.reason is not None and "collinear" in bold.reason
    # The fit is the one without the dropped columns.
    reduced = StyleFeatures(fa[:, [0, 2]], fb[:, [0, 2]], names=("length", "lists"))
    alone = rank_with_style(arena.votes, reduced, ci_method="sandwich")
    assert coefficient(alone, "lists").estimate == pytest.approx(lists.estimate, abs=1e-9)
    assert_bounded(result)


def test_a_difference_only_one_model_makes_is_collinear_however_its_sides_fall() -> None:
    """Only m0's answers have a header, always one: the headers difference is m0's indicator,
    less a mean that is not 0 because m0 was model_a 12 times more often than model_b. Kept, its
    coefficient would rest on which side the votes showed m0 on (noise) and move m0 by ~2800 Elo
    from its plain score of ~1000 (six equally strong models)."""
    rng = np.random.default_rng(11)
    n, m = 3000, 6
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    outcomes = rng.integers(0, 3, n)
    votes = Votes(
        tuple(f"m{i}" for i in range(m)),
        a.astype(np.int32),
        b.astype(np.int32),
        outcomes.astype(np.int8),
    )
    assert (a == 0).sum() != (b == 0).sum()
    lengths = rng.integers(100, 800, (n, 2))
    fa, fb = np.zeros((n, 4), dtype=np.int64), np.zeros((n, 4), dtype=np.int64)
    fa[:, 0], fb[:, 0] = lengths[:, 0], lengths[:, 1]
    fa[:, 1], fb[:, 1] = a == 0, b == 0
    result = rank_with_style(votes, StyleFeatures(fa, fb), bootstrap=30)
    headers = coefficient(result, "headers")
    assert headers.estimate is None and headers.reason is not None
    assert "collinear" in headers.reason
    m0 = by_model(result)["m0"]
    assert m0.bt_score is not None and abs(m0.bt_score - 1000.0) < 30.0
    assert_bounded(result)


# --- invariances and determinism ----------------------------------------------------------------
def test_same_seed_same_bits_whatever_the_workers() -> None:
    arena = style_arena(12, 8000, seed=9)
    one = rank_with_style(arena.votes, arena.features, bootstrap=120, seed=11, workers=1)
    two = rank_with_style(arena.votes, arena.features, bootstrap=120, seed=11, workers=2)
    other = rank_with_style(arena.votes, arena.features, bootstrap=120, seed=12, workers=2)
    assert one == two
    assert one.to_records() == two.to_records()
    first = [e.bootstrap_q025 for e in one.ranking.entries]
    assert first != [e.bootstrap_q025 for e in other.ranking.entries]
    assert [c.q975 for c in one.coefficients] != [c.q975 for c in other.coefficients]
    assert [e.bt_score for e in one.ranking.entries] == [e.bt_score for e in other.ranking.entries]


def test_mirrored_votes_and_renumbered_models_change_nothing() -> None:
    arena = style_arena(6, 3000, seed=10)
    votes, features = arena.votes, arena.features
    base = rank_with_style(votes, features, bootstrap=60)
    mirrored = rank_with_style(
        Votes(
            votes.models,
            votes.model_b,
            votes.model_a,
            np.array([1, 0, 2], dtype=np.int8)[votes.outcome],
        ),
        StyleFeatures(features.b, features.a),
        bootstrap=60,
    )
    assert mirrored.ranking == base.ranking
    for c, d in zip(base.coefficients, mirrored.coefficients, strict=True):
        assert (c.estimate, c.q025, c.q975, c.sd) == (d.estimate, d.q025, d.q975, d.sd)
        assert value(c.mean) == -value(d.mean)
    codes = np.random.default_rng(0).permutation(len(votes.models))
    recoded = Votes(
        tuple(np.array(votes.models)[np.argsort(codes)].tolist()),
        codes[votes.model_a].astype(np.int32),
        codes[votes.model_b].astype(np.int32),
        votes.outcome,
    )
    assert rank_with_style(recoded, features, bootstrap=60) == base


# --- the bootstrap ------------------------------------------------------------------------------
def _problem(votes: Votes, features: StyleFeatures) -> _style_problem.StyleProblem:
    diff = _style_problem.normalized_difference(
        np.asarray(features.a, dtype=float), np.asarray(features.b, dtype=float)
    )
    points = np.array([1.0, 0.0, 0.5])[votes.outcome]
    pb, _ = _style_problem.build(
        votes.model_a.astype(np.int64),
        votes.model_b.astype(np.int64),
        points,
        diff,
        len(votes.models),
    )
    return pb


def test_replicate_counts_are_multinomial() -> None:
    rng = np.random.default_rng(0)
    # Five votes in blocks of 3 and 2: Multinomial(5, 1/5 each) all the same.
    x = np.array([_style_bootstrap.draw_counts(rng, np.array([3, 2])) for _ in range(100_000)])
    assert (x.sum(axis=1) == 5).all()
    np.testing.assert_allclose(x.mean(axis=0), 1.0, atol=0.01)
    np.testing.assert_allclose(np.cov(x.T), np.eye(5) - 0.2, atol=0.02)


def test_chord_replicate_fits_match_exact_newton() -> None:
    arena = style_arena(15, 150_000, seed=12)
    pb = _problem(arena.votes, arena.features)
    theta, converged = _style_likelihood.fit_full(pb)
    assert converged
    prob, h_inv = _full_fit_inverse(pb, theta)
    assert len(pb.blocks) > 1
    rng = np.random.default_rng(1)
    for _ in range(5):
        w = _style_likelihood.weigh(pb, _style_bootstrap.draw_counts(rng, pb.block_sizes))
        fast, ok = _style_likelihood.chord(pb, theta, prob, h_inv, w)
        exact, exact_ok = _style_likelihood.newton(pb, theta, w, 0.0, 1e-12)
        assert ok and exact_ok
        assert np.abs(400 * (fast[: pb.m] - exact[: pb.m])).max() < 1e-4
        assert np.abs(fast[pb.m :] - exact[pb.m :]).max() < 1e-6


def _one_loss_arena() -> tuple[Votes, StyleFeatures]:
    """ "d" lost once in 14 votes: a replicate misses that loss with probability ~1/e."""
    return labelled(
        [
            ("a", "b", "model1", 12), ("b", "a", "model1", 8), ("a", "c", "model1", 10),
            ("c", "a", "model1", 6), ("b", "c", "tie", 5), ("c", "b", "model1", 7),
            ("d", "a", "model1", 6), ("d", "b", "model1", 7), ("c", "d", "model1", 1),
        ]
    )  # fmt: skip


def test_separable_replicates_stay_finite_and_are_counted() -> None:
    votes, features = _one_loss_arena()
    result = rank_with_style(votes, features, bootstrap=300, min_evals=0)
    assert result.ranking.separable_replicates > 50
    assert_bounded(result)
    d = by_model(result)["d"]
    assert d.rank == 1 and d.bootstrap_q975 is not None and d.bt_score is not None
    assert d.bootstrap_q975 > d.bt_score + 300


def _full_fit(pb: _style_problem.StyleProblem) -> np.ndarray:
    theta, converged = _style_likelihood.fit_full(pb)
    assert converged
    return theta


def _full_fit_inverse(
    pb: _style_problem.StyleProblem, theta: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """p at the full fit and the inverse of its Hessian, as the bootstrap starts from them."""
    prob = _style_likelihood.probabilities(_style_likelihood.logits(pb, theta))
    hess = _style_likelihood.hessian(pb, prob * (1 - prob), 0.0)
    return prob, np.asarray(np.linalg.inv(hess), dtype=np.float64)


def _weights(
    pb: _style_problem.StyleProblem, counts: np.ndarray, b: int
) -> _style_likelihood.Weights:
    return _style_likelihood.weigh(pb, counts[:, b].copy())


def _assert_same_fits(pb: _style_problem.StyleProblem, a: np.ndarray, b: np.ndarray) -> None:
    """Two solvers' estimates of the same replicates: each is within the replicate tolerance of
    the optimum (1e-7 in r), so they agree to 1e-4 Elo and 1e-6 in beta."""
    assert np.abs(400 * (a[:, : pb.m] - b[:, : pb.m])).max() < 1e-4
    assert np.abs(a[:, pb.m :] - b[:, pb.m :]).max() < 1e-6


def _replicate_counts(pb: _style_problem.StyleProblem, seed: int, replicates: int) -> np.ndarray:
    """(N, B) counts of the replicates, drawn as the bootstrap draws them."""
    seeds = np.random.SeedSequence(seed).spawn(replicates)
    return np.stack(
        [_style_bootstrap.draw_counts(np.random.default_rng(s), pb.block_sizes) for s in seeds],
        axis=1,
    )


def test_batched_replicate_fits_match_fits_one_by_one_and_exact_newton() -> None:
    arena = style_arena(12, 3000, seed=14)
    pb = _problem(arena.votes, arena.features)
    theta = _full_fit(pb)
    assert _style_bootstrap.chunk_size(pb.n, 60) == 60  # the default fits them in one batch
    alone, alone_ridged = _style_bootstrap.bootstrap_thetas(pb, theta, 60, 5, 1, chunk=1)
    assert alone_ridged == 0
    for chunk, workers in ((None, 1), (7, 2)):
        together, ridged = _style_bootstrap.bootstrap_thetas(pb, theta, 60, 5, workers, chunk)
        assert ridged == 0
        _assert_same_fits(pb, together, alone)
    # Chunks of 7 (the last one short) shared out to one or to two threads: the same bits.
    one_thread, _ = _style_bootstrap.bootstrap_thetas(pb, theta, 60, 5, 1, 7)
    assert np.array_equal(one_thread, together)
    counts = _replicate_counts(pb, 5, 3)
    for b in range(3):
        w = _style_likelihood.weigh(pb, counts[:, b].copy())
        exact, converged = _style_likelihood.newton(pb, theta, w, 0.0, 1e-12)
        assert converged
        assert np.abs(400 * (together[b, : pb.m] - exact[: pb.m])).max() < 1e-4
        assert np.abs(together[b, pb.m :] - exact[pb.m :]).max() < 1e-6


def test_separable_and_non_contracting_replicates_in_a_batch_get_their_own_fits() -> None:
    votes, features = _one_loss_arena()
    pb = _problem(votes, features)
    theta = _full_fit(pb)
    # The batch holds both kinds: replicates without an MLE, and some whose steps diverge.
    counts = _replicate_counts(pb, 3, 200)
    separable = _components.separable_replicates(
        pb.pairs,
        np.add.reduceat(counts * pb.y[:, None], pb.starts).T,
        np.add.reduceat(counts, pb.starts).T,
    )
    prob, h_inv = _full_fit_inverse(pb, theta)
    batch = _style_batch.Batch.build(pb, prob, 200)
    fits, converged = _style_batch.broyden(
        batch, theta, h_inv, batch.arrange(counts[:, ~separable])
    )
    assert separable.sum() > 20 and (~converged).sum() > 20
    assert np.isnan(fits[~converged]).all() and np.isfinite(fits[converged]).all()
    alone, alone_ridged = _style_bootstrap.bootstrap_thetas(pb, theta, 200, 3, 1, chunk=1)
    together, ridged = _style_bootstrap.bootstrap_thetas(pb, theta, 200, 3, 1, chunk=200)
    assert ridged == alone_ridged >= separable.sum()
    assert np.isfinite(together).all()
    _assert_same_fits(pb, together, alone)


def test_batch_layout_sums_each_pair_as_the_problem_does() -> None:
    # 20 models on 600 votes: pairs of 1 to a dozen votes.
    arena = style_arena(20, 600, seed=3)
    pb = _problem(arena.votes, arena.features)
    prob, _ = _full_fit_inverse(pb, _full_fit(pb))
    batch = _style_batch.Batch.build(pb, prob, 2000)  # laid out for 2000: blocks of ~65 votes
    assert len(batch.blocks) > 1
    assert np.array_equal(np.sort(batch.order), np.arange(pb.n))
    assert np.array_equal(batch.order[batch.place], np.arange(pb.n))
    assert (np.diff(batch.lengths) >= 0).all() and batch.lengths[0] == 1
    assert np.array_equal(batch.lengths[batch.pair_place], pb.lengths)
    counts = _replicate_counts(pb, 1, 5)
    laid_out = batch.arrange(counts)
    assert np.array_equal(laid_out[batch.place], counts)
    sums = np.empty((len(pb.lengths), 5))
    for block in batch.blocks:
        assert sum(run.pairs.stop - run.pairs.start for run in block.runs) == len(
            batch.lengths[block.pairs]
        )
        assert block.runs[-1].votes.stop == block.size
        block.pair_sums(laid_out[block.votes], sums[block.pairs])
    # Sums of integers: exact in any order.
    assert np.array_equal(sums[batch.pair_place], np.add.reduceat(counts, pb.starts, axis=0))


def test_batched_derivatives_are_each_replicates_gradient_and_hessian() -> None:
    arena = style_arena(12, 3000, seed=14)
    pb = _problem(arena.votes, arena.features)
    theta = _full_fit(pb)
    prob, _ = _full_fit_inverse(pb, theta)
    counts = _replicate_counts(pb, 4, 3)
    batch = _style_batch.Batch.build(pb, prob, 300)  # laid out for 300: blocks of ~400 votes
    assert len(batch.blocks) > 1
    moved = theta[:, None] + 0.05 * np.random.default_rng(0).standard_normal((len(theta), 3))
    laid_out = batch.arrange(counts)
    for at in (None, moved):
        grad, hess = _style_batch.derivatives(
            batch, laid_out, _style_batch.points(batch, laid_out), at
        )
        for b in range(3):
            w = _style_likelihood.weigh(pb, counts[:, b].copy())
            point = theta if at is None else at[:, b]
            p = _style_likelihood.probabilities(_style_likelihood.logits(pb, point))
            expected = _style_likelihood.hessian(pb, counts[:, b] * p * (1 - p), 0.0)
            scale = np.abs(expected).max()
            assert np.abs(grad[:, b] - _style_likelihood.gradient(pb, point, w)).max() < 1e-9
            assert np.abs(hess[b] - expected).max() < 1e-12 * scale


def test_batched_newton_fits_replicates_far_from_the_full_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 60 votes a model: a third of the replicates end too far from the full fit for chord steps.
    arena = style_arena(20, 600, seed=3)
    pb = _problem(arena.votes, arena.features)
    theta = _full_fit(pb)
    prob, h_inv = _full_fit_inverse(pb, theta)
    counts = _replicate_counts(pb, 2, 100)
    separable = _components.separable_replicates(
        pb.pairs,
        np.add.reduceat(counts * pb.y[:, None], pb.starts).T,
        np.add.reduceat(counts, pb.starts).T,
    )
    assert not separable.any()
    batch = _style_batch.Batch.build(pb, prob, 100)
    chord = [
        _style_likelihood.chord(pb, theta, prob, h_inv, _weights(pb, counts, b)) for b in range(100)
    ]
    chord_fitted = np.array([fitted for _, fitted in chord])
    left = counts[:, ~chord_fitted]
    assert left.shape[1] > 20
    # Broyden's steps, which correct the full data's Hessian as they go, fit most of them.
    laid_out = batch.arrange(counts)
    quasi, quasi_fitted = _style_batch.broyden(batch, theta, h_inv, laid_out)
    assert quasi_fitted[~chord_fitted].mean() > 0.8
    _assert_same_fits(
        pb,
        quasi[quasi_fitted & chord_fitted],
        np.array([t for t, _ in chord])[quasi_fitted & chord_fitted],
    )
    fits, fitted = _style_batch.newton(batch, theta, batch.arrange(left))
    assert fitted.mean() > 0.8
    assert np.isnan(fits[~fitted]).all()
    # Held to a few matrices at a time (as at hundreds of models), the same fits.
    monkeypatch.setattr(_style_batch, "HESSIAN_CELLS", 3 * len(theta) ** 2)
    parts, parts_fitted = _style_batch.newton(batch, theta, batch.arrange(left))
    assert np.array_equal(parts_fitted, fitted)
    np.testing.assert_allclose(parts[fitted], fits[fitted], rtol=0, atol=1e-12)
    quasi_parts, quasi_parts_fitted = _style_batch.broyden(batch, theta, h_inv, laid_out)
    assert np.array_equal(quasi_parts_fitted, quasi_fitted)
    np.testing.assert_allclose(quasi_parts[quasi_fitted], quasi[quasi_fitted], rtol=0, atol=1e-12)
    for b in np.flatnonzero(fitted):
        w = _style_likelihood.weigh(pb, left[:, b].copy())
        exact, converged = _style_likelihood.newton(pb, theta, w, 0.0, 1e-12)
        assert converged
        assert np.abs(400 * (fits[b, : pb.m] - exact[: pb.m])).max() < 1e-4
        assert np.abs(fits[b, pb.m :] - exact[pb.m :]).max() < 1e-6


# --- sandwich -----------------------------------------------------------------------------------
def test_sandwich_intervals_match_the_bootstrap() -> None:
    arena = style_arena(10, 100_000, seed=13)
    sandwich = rank_with_style(arena.votes, arena.features, ci_method="sandwich")
    boot = rank_with_style(arena.votes, arena.features, bootstrap=400)
    assert sandwich.ranking.bootstrap == 0 and boot.ranking.bootstrap == 400
    boot_entries = by_model(boot)
    for name, s in by_model(sandwich).items():
        b = boot_entries[name]
        score, low, high = value(s.bt_score), value(s.bootstrap_q025), value(s.bootstrap_q975)
        assert score == b.bt_score
        assert score - low == pytest.approx(high - score)
        width = value(b.bootstrap_q975) - value(b.bootstrap_q025)
        assert high - low == pytest.approx(width, rel=0.15)
    for sc, bc in zip(sandwich.coefficients, boot.coefficients, strict=True):
        assert sc.estimate == bc.estimate
        width = value(bc.q975) - value(bc.q025)
        assert value(sc.q975) - value(sc.q025) == pytest.approx(width, rel=0.15)


# --- inputs -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("a", "b", "names", "message"),
    [
        (np.ones((3, 4)), np.ones((3, 3)), None, "one shape"),
        (np.ones((3, 4)), np.ones((3, 4)), ("length", "headers"), "4 columns but 2"),
        (-np.ones((3, 4)), np.ones((3, 4)), None, "negative"),
        (np.full((3, 4), np.nan), np.ones((3, 4)), None, "missing or infinite"),
        (np.array([["x"] * 4] * 3), np.ones((3, 4)), None, "numbers"),
        (np.ones(3), np.ones(3), None, "2-D"),
    ],
)
def test_features_are_validated(
    a: np.ndarray, b: np.ndarray, names: tuple | None, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        StyleFeatures(a, b) if names is None else StyleFeatures(a, b, names=names)


def test_one_feature_row_per_vote() -> None:
    votes, _ = labelled([("a", "b", "model1", 3), ("b", "a", "model1", 3)])
    with pytest.raises(InvalidInput, match="one row per vote"):
        rank_with_style(votes, StyleFeatures(np.ones((5, 4)), np.ones((5, 4))))


def test_records_and_table() -> None:
    votes, features = labelled(
        [("a", "b", "model1", 30), ("b", "a", "model1", 20), ("b", "c", "tie", 10),
         ("c", "a", "model1", 25), ("a", "c", "model1", 30), ("c", "b", "model1", 15)]
    )  # fmt: skip
    result = rank_with_style(votes, features, bootstrap=50)
    records = result.to_records()
    assert [r["model"] for r in records["entries"]] == [e.model for e in result.ranking.entries]
    length = records["style"][0]
    assert length["feature"] == "length"
    estimate = coefficient(result, "length").estimate
    assert estimate is not None
    assert length["estimate"] == round(estimate, 6)
    assert length["elo"] == round(400 / LN10 * estimate, 6)
    assert records["votes_used"] == 130 and records["votes_left_out"] == 0
    table = result.to_table()
    assert "length" in table and "Elo/SD" in table and "130 votes in the fit" in table


# --- properties ---------------------------------------------------------------------------------
@st.composite
def small_arenas(draw: st.DrawFn) -> tuple[Votes, StyleFeatures]:
    models = draw(st.integers(2, 5))
    names = [f"m{i}" for i in range(models)]
    row = st.tuples(
        st.integers(0, models - 1),
        st.integers(0, models - 2),
        st.sampled_from(["model1", "model2", "tie"]),
        st.lists(st.integers(0, 30), min_size=8, max_size=8),
    )
    rows = draw(st.lists(row, min_size=1, max_size=50))
    votes = Votes.from_labels(
        [names[i] for i, _, _, _ in rows],
        [names[j + (j >= i)] for i, j, _, _ in rows],
        [o for _, _, o, _ in rows],
    )
    counts = np.array([c for _, _, _, c in rows]).reshape(len(rows), 8)
    return votes, StyleFeatures(counts[:, :4], counts[:, 4:])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arena=small_arenas(), sandwich=st.booleans())
def test_random_small_arenas_give_finite_rankings_or_say_why_not(
    arena: tuple[Votes, StyleFeatures], sandwich: bool
) -> None:
    votes, features = arena
    try:
        result = rank_with_style(
            votes,
            features,
            bootstrap=20,
            min_evals=0,
            ci_method="sandwich" if sandwich else "bootstrap",
            workers=1,
        )
    except NotEnoughData as exc:
        assert "separate" in str(exc)
        return
    assert_bounded(result)
    assert result.votes_used + result.votes_left_out == votes.n_votes
    ranked = result.ranking.ranked
    assert [e.rank for e in ranked] == list(range(1, len(ranked) + 1))
