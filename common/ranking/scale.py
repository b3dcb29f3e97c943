"""The rating scale and the array types the ranking code shares.

Ratings r are log10-odds (P(i beats j) = 1 / (1 + 10^(r_j - r_i))); a score is 400 r + 1000,
clipped to +-SCORE_LIMIT so that it fits BixArena's DECIMAL(10,6).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

SCALE = 400.0
OFFSET = 1000.0
LN10 = math.log(10.0)
SCORE_LIMIT = 9999.0

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


def to_score(r: FloatArray) -> FloatArray:
    """Ratings on the reported scale, clipped to what DECIMAL(10,6) holds."""
    return np.clip(SCALE * r + OFFSET, -SCORE_LIMIT, SCORE_LIMIT)
