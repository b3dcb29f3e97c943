"""Sandwich (robust) standard errors of the ratings: one Hessian, no resampling."""

from __future__ import annotations

import numpy as np

from common.ranking._likelihood import Problem, probabilities
from common.ranking.scale import LN10, FloatArray

Z_975 = 1.959963984540054


def sandwich_se(pb: Problem, r: FloatArray) -> FloatArray:
    """Standard errors of r from H^+ G H^+ with G the outer products of per-vote scores."""
    prob = probabilities(LN10 * (r[pb.first] - r[pb.second]))
    h_inv = np.linalg.inv(pb.laplacian(pb.curvature(r[None], pb.total[None]))[0])
    # Per vote, d(loglik)/d(r_i - r_j) = ln10 (outcome - p); a cell's votes share it.
    spread = (
        LN10
        * LN10
        * (pb.wins * (1 - prob) ** 2 + pb.ties * (0.5 - prob) ** 2 + pb.losses * prob**2)
    )
    # G = A^T diag(spread) A; as G 1 = 0, the gauge term inside h_inv drops out of the product.
    g = pb.incidence.gram(spread)
    cov = h_inv @ g @ h_inv
    return np.sqrt(np.clip(np.diag(cov), 0.0, None))
