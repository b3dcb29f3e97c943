"""The bootstrap's 95% interval: each column's 2.5% and 97.5% quantiles.

NumPy's ``quantile`` gives them, but its interpolating path calls ``np.unique``, which imports
``numpy.ma`` (~10 ms of a rank Lambda's cold start) to ask whether its input is masked. This is
the same computation, written out: the default (linear, Hyndman & Fan's 7th) method, with
NumPy's virtual index, weight and two-sided interpolation, so the bounds are bit-identical to
``np.quantile(samples, [0.025, 0.975], axis=0)``.
"""

from __future__ import annotations

import numpy as np

from common.ranking.scale import FloatArray

CI_LEVELS = np.array([0.025, 0.975])


def percentile_interval(samples: FloatArray) -> FloatArray:
    """(2, columns): the 2.5% and 97.5% quantiles of each column of ``samples`` (replicates by
    rows); NaN for a column holding a NaN."""
    n = samples.shape[0]
    virtual = (n - 1) * CI_LEVELS
    previous = np.floor(virtual)
    following = previous + 1
    at_end = virtual >= n - 1
    previous[at_end] = following[at_end] = -1
    gamma = (virtual - previous)[:, None]
    ordered = np.sort(samples, axis=0)  # NaN last
    low, high = ordered[previous.astype(np.intp)], ordered[following.astype(np.intp)]
    # NumPy's lerp: from the lower value below a weight of 1/2, from the upper one above.
    step = high - low
    out = low + step * gamma
    np.subtract(high, step * (1 - gamma), out=out, where=np.broadcast_to(gamma >= 0.5, out.shape))
    out[:, np.isnan(ordered[-1])] = np.nan
    return out
