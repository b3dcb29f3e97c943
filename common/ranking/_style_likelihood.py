"""The style-controlled likelihood on per-vote weights, and its Newton solvers.

Parameters theta = (r, beta): m ratings (log10-odds) then k style coefficients (natural log-odds
per SD). Every sum over votes is a pass over the pair-sorted votes: pair sums are
``np.add.reduceat`` and reach the two models of the pair afterwards (O(pairs)), feature sums take
one row of ``zt`` each, so a gradient or a Hessian costs O(N k), never O(N m).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.ranking._likelihood import fit_full as plain_fit
from common.ranking._likelihood import probabilities
from common.ranking._style_problem import StyleProblem
from common.ranking.scale import LN10, FloatArray

FIT_TOL = 1e-11
REPLICATE_TOL = 1e-7
NEWTON_MAX_ITER = 100
CHORD_MAX_ITER = 30
DIVERGED = 50.0
"""|r| (log10-odds) or |beta| (per SD) beyond this is 20000 Elo: Newton is following a direction
of separation to infinity, so there is no maximum-likelihood estimate."""


@dataclass(frozen=True, eq=False)
class Weights:
    """One data set's per-vote weights: 1 for the votes, the counts for a bootstrap replicate."""

    c: FloatArray
    cy: FloatArray
    """(N,) c y: the weighted points of ``first``."""
    score: FloatArray
    """(P,) sum of c y per pair."""
    total: FloatArray
    """(P,) sum of c per pair."""


def weigh(pb: StyleProblem, c: FloatArray) -> Weights:
    cy = c * pb.y
    return Weights(
        c=c,
        cy=cy,
        score=np.add.reduceat(cy, pb.starts),
        total=np.add.reduceat(c, pb.starts),
    )


def logits(pb: StyleProblem, theta: FloatArray) -> FloatArray:
    r, beta = theta[: pb.m], theta[pb.m :]
    eta = np.repeat(LN10 * (r[pb.pairs.first] - r[pb.pairs.second]), pb.lengths)
    term = np.empty_like(eta)
    for j in range(pb.k):
        eta += np.multiply(pb.zt[j], beta[j], out=term)
    return eta


def gradient(
    pb: StyleProblem, theta: FloatArray, w: Weights, prob: FloatArray | None = None
) -> FloatArray:
    """Gradient of the negative log-likelihood, X^T c (p - y), with p at ``theta`` (or ``prob``
    when given: the full fit's p, the same for every replicate, saves the logits).

    Done block by block (``StyleProblem.blocks``): logits, residuals, their per-pair sums
    (scattered to the two models, times ln 10) and one dot product per feature, all on
    cache-sized slices; nothing of size N is allocated.
    """
    r, beta = theta[: pb.m], theta[pb.m :]
    first, second = pb.pairs.first, pb.pairs.second
    spread = LN10 * (r[first] - r[second])
    per_pair = np.empty(len(spread))
    g_beta = np.zeros(pb.k)
    buffer = np.empty(pb.largest_block)
    with np.errstate(over="ignore"):
        for block in pb.blocks:
            v = block.votes
            resid = buffer[: block.size]
            if prob is None:
                # z . beta by einsum: on a cached block, twice as fast as k multiply-adds.
                np.einsum("j,ji->i", beta, pb.zt[:, v], out=resid)
                resid += np.repeat(spread[block.pairs], pb.lengths[block.pairs])
                np.negative(resid, out=resid)
                np.exp(resid, out=resid)
                resid += 1.0
                np.divide(w.c[v], resid, out=resid)
            else:
                np.multiply(prob[v], w.c[v], out=resid)
            resid -= w.cy[v]
            per_pair[block.pairs] = np.add.reduceat(resid, block.starts)
            g_beta += pb.zt[:, v] @ resid
    g_r = np.bincount(first, per_pair, pb.m) - np.bincount(second, per_pair, pb.m)
    return np.concatenate([LN10 * g_r, g_beta])


def loss(pb: StyleProblem, theta: FloatArray, w: Weights, ridge: float) -> float:
    """Negative log-likelihood (+ ridge/2 |theta|^2): sum c softplus(eta) - sum c y eta."""
    eta = logits(pb, theta)
    linear = float(w.cy @ eta)
    # softplus(x) = max(x, 0) + log1p(exp(-|x|)), without overflow (4x faster than logaddexp).
    soft = np.abs(eta)
    np.negative(soft, out=soft)
    np.exp(soft, out=soft)
    np.log1p(soft, out=soft)
    soft += np.maximum(eta, 0.0, out=eta)
    return float(w.c @ soft) - linear + 0.5 * ridge * float(theta @ theta)


def hessian(pb: StyleProblem, v: FloatArray, ridge: float, gauge: bool = True) -> FloatArray:
    """X^T diag(v) X (+ ridge I): the Hessian for v = c p (1 - p), the score covariance for
    v = c (y - p)^2.

    Blocks: ratings = ln(10)^2 times the Laplacian with per-pair sums of v; cross = ln(10) times
    the per-pair sums of v z, scattered to first (+) and second (-); style = Z^T diag(v) Z. With
    ``gauge`` and no ridge, c 11^T is added to the ratings block as in the plain fit (the matrix
    is then invertible and a solve against a gradient, whose ratings part sums to zero, gives a
    step that sums to zero).
    """
    m, k = pb.m, pb.k
    per_pair = np.add.reduceat(v, pb.starts)
    vz = pb.zt * v
    out = np.empty((m + k, m + k))
    if gauge:
        out[:m, :m] = pb.pairs.laplacian(LN10 * LN10 * per_pair[None], ridge)[0]
    else:
        out[:m, :m] = (LN10 * LN10) * pb.pairs.incidence.gram(per_pair)
    cross = LN10 * pb.pairs.incidence.signed(np.add.reduceat(vz, pb.starts, axis=1).T)
    out[:m, m:] = cross
    out[m:, :m] = cross.T
    out[m:, m:] = vz @ pb.zt.T
    if ridge:
        idx = np.arange(m, m + k)
        out[idx, idx] += ridge
    return out


def newton(
    pb: StyleProblem, theta0: FloatArray, w: Weights, ridge: float, tol: float
) -> tuple[FloatArray, bool]:
    """Damped Newton from ``theta0``; returns the estimate and whether it converged (max |step|
    below ``tol``) rather than ran away along a direction of separation or met a singular
    Hessian (only possible without a ridge)."""
    m = pb.m
    theta = theta0.copy()
    theta[:m] -= theta[:m].mean()
    # The loss is a sum of ~total terms of order 1: the scale its rounding is relative to.
    total = max(1.0, float(w.total.sum()))
    for _ in range(NEWTON_MAX_ITER):
        prob = probabilities(logits(pb, theta))
        grad = gradient(pb, theta, w, prob)
        if ridge:
            grad += ridge * theta
        curvature = np.subtract(1.0, prob)
        curvature *= prob
        curvature *= w.c
        hess = hessian(pb, curvature, ridge)
        try:
            step = -np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            # Exactly singular: the probabilities saturated along a separating direction, or a
            # replicate lost every vote that tells two parameters apart. No unique MLE here.
            return theta, False
        step[:m] -= step[:m].mean()
        slope = float(grad @ step)
        t = 1.0
        # Close to the optimum the loss change drowns in rounding; there the quadratic model is
        # exact to many digits and the full step is taken unchecked (as in the plain fit).
        if -slope > 1e-8 * total:
            before = loss(pb, theta, w, ridge)
            for _ in range(60):
                if loss(pb, theta + t * step, w, ridge) <= before + 1e-4 * t * slope:
                    break
                t *= 0.5
        theta += t * step
        if np.abs(t * step).max() < tol:
            return theta, True
        if not ridge and np.abs(theta).max() > DIVERGED:
            return theta, False
    return theta, False


def chord(
    pb: StyleProblem,
    theta_full: FloatArray,
    prob_full: FloatArray,
    h_inv: FloatArray,
    w: Weights,
) -> tuple[FloatArray, bool]:
    """A replicate's fit by Newton steps with the full-data Hessian, from the full-data fit.

    ``prob_full`` is p at ``theta_full``, the same for every replicate, so the first step needs no
    logits. Convergence is linear, mostly limited by how much the Hessian changes between the full
    fit and the replicate's optimum (a factor 40 to 100 per step at 1M votes); iteration stops
    once the next step would be below REPLICATE_TOL. Returns the estimate and whether it converged.
    """
    step = -(h_inv @ gradient(pb, theta_full, w, prob_full))
    theta = theta_full + step
    last = np.abs(step).max()
    if last < REPLICATE_TOL:
        return theta, True
    for _ in range(CHORD_MAX_ITER):
        step = -(h_inv @ gradient(pb, theta, w))
        size = np.abs(step).max()
        theta += step
        rate = size / last
        if size * rate < REPLICATE_TOL:
            theta[: pb.m] -= theta[: pb.m].mean()
            return theta, True
        if rate > 0.5:
            return theta, False
        last = size
    return theta, False


def fit_full(pb: StyleProblem) -> tuple[FloatArray, bool]:
    """The exact MLE on the votes (weights 1), and whether it exists (Newton converged).

    Newton starts from the plain fit's ratings (exact and cheap, on per-pair counts) and beta = 0,
    which style effects of Arena size move by tens of Elo: one iteration fewer than from zero.
    """
    start = np.concatenate([plain_fit(pb.pairs), np.zeros(pb.k)])
    return newton(pb, start, weigh(pb, np.ones(pb.n)), 0.0, FIT_TOL)


def sandwich_se(pb: StyleProblem, theta: FloatArray) -> FloatArray:
    """Standard errors of theta from H^+ G H^+, G = sum over votes of x x^T (y - p)^2.

    The gauge term inside the inverted Hessian drops out because G's ratings block annihilates 1.
    """
    prob = probabilities(logits(pb, theta))
    h_inv = np.linalg.inv(hessian(pb, prob * (1.0 - prob), 0.0))
    resid = pb.y - prob
    spread = hessian(pb, resid * resid, 0.0, gauge=False)
    cov = h_inv @ spread @ h_inv
    return np.sqrt(np.clip(np.diag(cov), 0.0, None))
