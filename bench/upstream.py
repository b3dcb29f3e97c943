"""A faithful reimplementation of upstream BixArena's ranking, the baseline of the benchmarks.

Same steps as ``rank_battle.py`` upstream: unique (model1, model2, outcome) cells with counts
(outcome 2 = model1 won, 1 = tie, 0 = model2 won), a full-data fit on the raw counts, then
B replicates drawn at once as ``default_rng(seed).multinomial(N, counts / N, size=B)``, each fitted
on its own with scipy L-BFGS-B (zeros start, maxiter 100, gtol 1e-6; upstream's ``disp=False``
is left out, deprecated in SciPy and without effect on the result) on weights counts / N, in one
process, and 2.5% / 97.5% quantiles. Scores are 400 r + 1000.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.special import expit

from common.ranking import Votes

ALPHA = math.log(10.0)


@dataclass(frozen=True)
class UpstreamCells:
    matchups: NDArray[np.int64]
    outcomes: NDArray[np.float64]
    weights: NDArray[np.float64]
    n_models: int


def preprocess(votes: Votes) -> UpstreamCells:
    # Upstream maps model1 -> 2, tie -> 1, model2 -> 0; our codes are 0 model1, 1 model2, 2 tie.
    upstream_code = np.array([2, 0, 1])[votes.outcome]
    schedule = np.stack([votes.model_a, votes.model_b, upstream_code], axis=1).astype(np.int64)
    cells, counts = np.unique(schedule, return_counts=True, axis=0)
    return UpstreamCells(
        matchups=cells[:, :2],
        outcomes=cells[:, 2].astype(np.float64) / 2.0,
        weights=counts.astype(np.float64),
        n_models=len(votes.models),
    )


def _loss_and_grad(
    ratings: NDArray[np.float64],
    matchups: NDArray[np.int64],
    outcomes: NDArray[np.float64],
    weights: NDArray[np.float64],
) -> tuple[float, NDArray[np.float64]]:
    matchup_ratings = ratings[matchups]
    logits = ALPHA * (matchup_ratings[:, 0] - matchup_ratings[:, 1])
    probs = expit(logits)
    loss = -((np.log(probs) * outcomes + np.log(1.0 - probs) * (1.0 - outcomes)) * weights).sum()
    matchup_grads = -ALPHA * (outcomes - probs) * weights
    grad = np.zeros_like(ratings)
    np.add.at(grad, matchups, matchup_grads[:, None] * np.array([1.0, -1.0]))
    return float(loss), grad


def fit(cells: UpstreamCells, weights: NDArray[np.float64]) -> NDArray[np.float64]:
    """One L-BFGS-B fit, upstream's settings; ratings in log10-odds units."""
    result = minimize(
        fun=_loss_and_grad,
        x0=np.zeros(cells.n_models),
        args=(cells.matchups, cells.outcomes, weights),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 100, "gtol": 1e-6},
    )
    return np.asarray(result["x"])


def draw_weights(cells: UpstreamCells, replicates: int, seed: int = 0) -> NDArray[np.float64]:
    n = cells.weights.sum()
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(int(n), cells.weights / n, size=replicates)
    return counts.astype(np.float64) / n


def scores(ratings: NDArray[np.float64]) -> NDArray[np.float64]:
    return 400.0 * ratings + 1000.0


def bootstrap_intervals(
    cells: UpstreamCells, replicates: int, seed: int = 0
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Upstream's q025 and q975 per model."""
    boot = np.array([fit(cells, w) for w in draw_weights(cells, replicates, seed)])
    q = np.quantile(scores(boot), [0.025, 0.975], axis=0)
    return q[0], q[1]
