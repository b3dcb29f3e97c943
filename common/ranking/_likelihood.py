"""The Bradley-Terry likelihood on a well-posed component, and its Newton solvers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from common.ranking._incidence import Incidence
from common.ranking.counts import PairCounts
from common.ranking.scale import LN10, FloatArray, IntArray

FIT_TOL = 1e-11
REPLICATE_TOL = 1e-7
CHORD_MAX_ITER = 30
NEWTON_MAX_ITER = 200


def probabilities(eta: FloatArray) -> FloatArray:
    """p = 1 / (1 + exp(-eta)) (the logistic function), in place on ``eta``."""
    np.negative(eta, out=eta)
    with np.errstate(over="ignore"):
        np.exp(eta, out=eta)
    eta += 1.0
    return np.divide(1.0, eta, out=eta)


@dataclass(frozen=True, eq=False)
class Problem:
    """Pairs of the ranked component, re-indexed 0..m-1, with the matrices the fits reuse."""

    m: int
    first: IntArray
    second: IntArray
    wins: FloatArray
    ties: FloatArray
    losses: FloatArray
    incidence: Incidence
    """The pairs as items at +1 on first, -1 on second: per-model sums of pair terms."""

    @property
    def score(self) -> FloatArray:
        """Points of ``first``: a win 1, a tie 1/2."""
        return self.wins + 0.5 * self.ties

    @property
    def total(self) -> FloatArray:
        return self.wins + self.ties + self.losses

    @classmethod
    def build(cls, counts: PairCounts, keep: NDArray[np.bool_]) -> Problem:
        index = np.cumsum(keep) - 1
        inside = keep[counts.first] & keep[counts.second]
        first = index[counts.first[inside]]
        second = index[counts.second[inside]]
        m = int(keep.sum())
        return cls(
            m=m,
            first=first,
            second=second,
            wins=counts.wins[inside].astype(np.float64),
            ties=counts.ties[inside].astype(np.float64),
            losses=counts.losses[inside].astype(np.float64),
            incidence=Incidence.build(first, second, m),
        )

    def laplacian(self, weights: FloatArray, ridge: float = 0.0) -> FloatArray:
        """Stack of A^T diag(w) A (+ ridge I) for weights (B, pairs); when ridge is 0, c 11^T is
        added so the matrix is invertible and a solve against a zero-sum vector sums to zero."""
        b, m = len(weights), self.m
        flat = np.zeros((b, m * m))
        flat[:, self.first * m + self.second] = -weights
        flat[:, self.second * m + self.first] = -weights
        out = flat.reshape(b, m, m)
        diag = self.incidence.touches(weights.T).T
        idx = np.arange(m)
        # 1e-12 of the mean curvature on the diagonal changes a step by ~1e-12 relative, but keeps
        # the matrix invertible when win probabilities saturate to exactly 0 or 1.
        scale = diag.mean(axis=1)
        out[:, idx, idx] = diag + (ridge + 1e-12 * scale + 1e-300)[:, None]
        if ridge == 0.0:
            out += (scale / m)[:, None, None]
        return out

    def loss(self, r: FloatArray, s: FloatArray, n: FloatArray, ridge: float) -> FloatArray:
        """Negative log-likelihood (+ ridge/2 |r|^2) per replicate."""
        x = LN10 * (r[:, self.first] - r[:, self.second])
        value = (n * np.logaddexp(0.0, x) - s * x).sum(axis=1)
        return value + 0.5 * ridge * (r * r).sum(axis=1)

    def gradient(self, r: FloatArray, s: FloatArray, n: FloatArray, ridge: float) -> FloatArray:
        """Gradient of ``loss`` per replicate."""
        return self.gradient_by_pair(r, s.T, n.T, ridge)

    def gradient_by_pair(
        self, r: FloatArray, s_t: FloatArray, n_t: FloatArray, ridge: float
    ) -> FloatArray:
        """``gradient`` with the points and votes laid out a pair per row (pairs, B), as it uses
        them (the hot loop of the bootstrap: done in place). ``chord`` keeps them so, contiguous:
        read through a transposed view, they cost a fifth of the call at 100 models.

        Pair terms are laid out a pair per row, as ``Incidence`` sums them: ratings are gathered
        a model's row at a time, much faster than column by column."""
        rt = np.ascontiguousarray(r.T)
        x = np.take(rt, self.first, axis=0)
        x -= np.take(rt, self.second, axis=0)
        x *= -LN10
        np.exp(x, out=x)
        x += 1.0
        np.divide(n_t, x, out=x)  # expected points of `first`
        x -= s_t
        grad = self.incidence.signed(x).T
        grad *= LN10
        if ridge:
            grad += ridge * r
        return grad

    def curvature(self, r: FloatArray, n: FloatArray) -> FloatArray:
        """Hessian weights ln(10)^2 n p (1 - p) per pair."""
        prob = probabilities(LN10 * (r[:, self.first] - r[:, self.second]))
        return LN10 * LN10 * n * prob * (1.0 - prob)


def newton(
    pb: Problem, r0: FloatArray, s: FloatArray, n: FloatArray, ridge: float, tol: float
) -> FloatArray:
    """Damped Newton for a batch of replicates (B, m) -> (B, m), mean(r) = 0."""
    r = r0 - r0.mean(axis=1, keepdims=True)
    rows = np.arange(len(r))
    for _ in range(NEWTON_MAX_ITER):
        if rows.size == 0:
            break
        ra, sa, na = r[rows], s[rows], n[rows]
        grad = pb.gradient(ra, sa, na, ridge)
        hess = pb.laplacian(pb.curvature(ra, na), ridge)
        step = -np.linalg.solve(hess, grad[..., None])[..., 0]
        step -= step.mean(axis=1, keepdims=True)
        before = pb.loss(ra, sa, na, ridge)
        slope = (grad * step).sum(axis=1)
        # Close to the optimum the loss change drowns in rounding; there a full Newton step is
        # safe (the quadratic model is exact to many digits) and is taken without a check.
        t = np.ones(len(rows))
        pending = -slope > 1e-8 * np.maximum(1.0, np.abs(before))
        for _ in range(60):
            if not pending.any():
                break
            trial = ra[pending] + t[pending, None] * step[pending]
            after = pb.loss(trial, sa[pending], na[pending], ridge)
            ok = after <= before[pending] + 1e-4 * t[pending] * slope[pending]
            idx = np.flatnonzero(pending)
            t[idx[~ok]] *= 0.5
            pending[idx[ok]] = False
        moved = t[:, None] * step
        r[rows] = ra + moved
        rows = rows[np.abs(moved).max(axis=1) >= tol]
    return r


def chord(
    pb: Problem, r_full: FloatArray, h_inv: FloatArray, s: FloatArray, n: FloatArray
) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Newton steps with the full-data Hessian for all replicates at once.

    Returns the ratings and a mask of replicates where the iteration did not contract (they need
    their own Hessian).
    """
    b = len(s)
    r = np.tile(r_full, (b, 1))
    failed = np.zeros(b, dtype=bool)
    rows = np.arange(b)
    ra = r
    s_t, n_t = np.ascontiguousarray(s.T), np.ascontiguousarray(n.T)
    last = np.full(b, np.inf)
    for _ in range(CHORD_MAX_ITER):
        step = pb.gradient_by_pair(ra, s_t, n_t, 0.0) @ h_inv
        np.negative(step, out=step)
        size = np.abs(step).max(axis=1)
        ra = ra + step
        r[rows] = ra
        # Linear convergence at rate size/last: stop once the next step would be below tol.
        rate = size / last  # 0 on the first pass, where `last` is inf
        done = size * np.where(np.isinf(last), 1.0, rate) < REPLICATE_TOL
        stalled = (rate > 0.5) & ~done
        failed[rows[stalled]] = True
        keep = ~(done | stalled)
        if not keep.all():
            rows, ra, size = rows[keep], ra[keep], size[keep]
            s_t, n_t = s_t[:, keep], n_t[:, keep]
        last = size
        if rows.size == 0:
            break
    failed[rows] = True
    return r - r.mean(axis=1, keepdims=True), failed


def fit_full(pb: Problem) -> FloatArray:
    r = newton(pb, np.zeros((1, pb.m)), pb.score[None], pb.total[None], 0.0, FIT_TOL)
    return r[0]
