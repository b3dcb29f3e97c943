"""A faithful reimplementation of FastChat's style control (the blog's method), the baseline of
``bench.style``.

Source: lm-sys/FastChat, ``fastchat/serve/monitor/rating_systems.py`` @ 2bdb2e0c
(``preprocess_for_style``, ``contextual_bt_loss_and_grad``, ``fit_contextual_bt``,
``compute_bootstrap_style_control``); quoted in /work/notes/style-control.md. Same steps, with
numpy arrays where FastChat has a pandas frame:
- outcomes 1 (model_a won), 0 (model_b won), 0.5 (tie); one row per battle;
- features (a - b) / (a + b + 1) for all four, standardized with ``np.std`` (ddof 0) over the
  battles, once (replicates reuse it);
- one scipy L-BFGS-B fit per data set from zeros (maxiter 100, gtol 1e-6) of the summed logistic
  loss plus (reg / 2) |theta|^2 with reg = 0.5 on every parameter, logit ln(10) (r_a - r_b) + z . beta,
  gradient scattered with ``np.add.at``;
- bootstrap: per replicate ``np.random.randint(0, n, n)`` row indices (global RNG seeded 42 as in
  ``elo_analysis.__main__``), the rows materialized (``matchups[idxs]`` ...), refitted from zeros.
FastChat maps the replicates over an ``mp.Pool``; here they run one after the other in one
process, and the benchmark says what a perfect pool would gain. Scores are 400 r + 1000 (the
mixtral-8x7b anchor never applies to synthetic model names).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.special import expit

from common.ranking import StyleFeatures, Votes

ALPHA = math.log(10.0)
REG = 0.5
DIFF_MASK = np.array([1.0, -1.0], dtype=np.float64)


@dataclass(frozen=True)
class StyleData:
    matchups: NDArray[np.int64]
    features: NDArray[np.float64]
    outcomes: NDArray[np.float64]
    n_models: int
    style_mean: NDArray[np.float64]
    style_std: NDArray[np.float64]


def preprocess_for_style(votes: Votes, style: StyleFeatures) -> StyleData:
    matchups = np.column_stack([votes.model_a, votes.model_b]).astype(np.int64)
    outcomes = np.full(votes.n_votes, 0.5)
    outcomes[votes.outcome == 0] = 1.0
    outcomes[votes.outcome == 1] = 0.0
    # FastChat casts the raw counts to int32 and takes the ratio of every feature, with add_one.
    a = np.asarray(style.a).astype(np.int32).T
    b = np.asarray(style.b).astype(np.int32).T
    style_diff = (a - b).astype(float)
    style_sum = (a + b).astype(float)
    style_sum = style_sum + np.ones(style_diff.shape)
    style_diff /= style_sum
    style_mean = np.mean(style_diff, axis=1)
    style_std = np.std(style_diff, axis=1)
    features = ((style_diff - style_mean[:, np.newaxis]) / style_std[:, np.newaxis]).T
    return StyleData(
        matchups=matchups,
        features=np.ascontiguousarray(features),
        outcomes=outcomes,
        n_models=len(votes.models),
        style_mean=style_mean,
        style_std=style_std,
    )


def contextual_bt_loss_and_grad(
    params: NDArray[np.float64],
    n_competitors: int,
    matchups: NDArray[np.int64],
    features: NDArray[np.float64],
    outcomes: NDArray[np.float64],
    alpha: float = 1.0,
    reg: float = 1.0,
    half_reg: float = 0.5,
) -> tuple[float, NDArray[np.float64]]:
    reg_loss = half_reg * np.inner(params, params)
    ratings = params[:n_competitors]
    feature_params = params[n_competitors:]
    matchup_ratings = ratings[matchups]
    bt_logits = alpha * (matchup_ratings[:, 0] - matchup_ratings[:, 1])
    context_logits = np.dot(features, feature_params)
    probs = expit(bt_logits + context_logits)
    loss = -(np.log(probs) * outcomes + np.log(1.0 - probs) * (1.0 - outcomes)).sum() + reg_loss
    error = outcomes - probs
    grad = reg * params
    matchups_grads = -alpha * error
    np.add.at(grad[:n_competitors], matchups[:, [0, 1]], matchups_grads[:, None] * DIFF_MASK)
    grad[n_competitors:] -= np.dot(features.T, error)
    return float(loss), grad


def fit_contextual_bt(
    data: StyleData, idxs: NDArray[np.int64] | None = None, tol: float = 1e-6
) -> NDArray[np.float64]:
    """(r, beta) of one L-BFGS-B fit; r in log10-odds units."""
    matchups, features, outcomes = data.matchups, data.features, data.outcomes
    if idxs is not None:
        matchups, features, outcomes = matchups[idxs], features[idxs], outcomes[idxs]
    result = minimize(
        fun=contextual_bt_loss_and_grad,
        x0=np.zeros(data.n_models + features.shape[1]),
        args=(data.n_models, matchups, features, outcomes, ALPHA, REG, REG / 2.0),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 100, "gtol": tol},
    )
    return np.asarray(result["x"])


def bootstrap_indices(n: int, replicates: int, seed: int = 42) -> NDArray[np.int64]:
    """FastChat's replicate rows: ``np.random.randint(0, n, size=(replicates, n))``."""
    np.random.seed(seed)
    return np.random.randint(low=0, high=n, size=(replicates, n))


def scores(params: NDArray[np.float64], n_models: int) -> NDArray[np.float64]:
    return 400.0 * params[..., :n_models] + 1000.0
