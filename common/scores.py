"""Scores as BixArena stores them: DECIMAL(10,6), six places, |x| < 10^4.

One rounding rule for every place a score leaves the ranking engine (the entries document, the
CLI's JSON, the database insert), so a score reads the same wherever it is seen.
"""

from __future__ import annotations

import math
from decimal import Decimal

DECIMAL_LIMIT = 10_000.0
"""DECIMAL(10,6) holds |x| < 10^4; a value outside it aborts the insert."""
PLACES = 6


def round6(value: float) -> float:
    """``value`` rounded to DECIMAL(10,6)'s six places; a non-finite value is a broken invariant."""
    if not math.isfinite(value):
        raise ValueError(f"a score must be finite, got {value}")
    return round(value, PLACES)


def as_decimal(value: float) -> Decimal:
    """The exact DECIMAL(10,6) value the database stores for ``value``."""
    return Decimal(repr(round6(value))).quantize(Decimal(1).scaleb(-PLACES))


def fits(value: float) -> bool:
    """Whether ``value`` fits DECIMAL(10,6) once rounded to its 6 places, as it is stored
    (9999.9999996 is below the limit but stored as 10000.000000, which overflows)."""
    return math.isfinite(value) and abs(round6(value)) < DECIMAL_LIMIT
