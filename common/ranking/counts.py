"""Votes as integer codes, and their aggregation into per-pair (win, tie, loss) counts.

The likelihood depends on the votes only through these counts, so every later step costs
O(pairs), not O(votes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from common.errors import InvalidInput
from common.ranking.scale import IntArray

OUTCOMES: tuple[str, str, str] = ("model1", "model2", "tie")
"""Outcome codes 0, 1, 2 of a vote, seen from model_a (upstream's model1)."""

# Above this many (model, model, outcome) cells, aggregation sorts instead of counting into a
# dense table (whose size grows with models^2).
_DENSE_CELL_LIMIT = 12_000_000


@dataclass(frozen=True, eq=False)
class Votes:
    """Votes as integer codes: ``model_a[k]`` and ``model_b[k]`` index ``models``; ``outcome[k]``
    indexes OUTCOMES (0 = model_a won, 1 = model_b won, 2 = tie)."""

    models: tuple[str, ...]
    model_a: NDArray[np.integer[Any]]
    model_b: NDArray[np.integer[Any]]
    outcome: NDArray[np.integer[Any]]

    def __post_init__(self) -> None:
        arrays = (self.model_a, self.model_b, self.outcome)
        if any(np.ndim(x) != 1 for x in arrays) or len({len(x) for x in arrays}) != 1:
            raise InvalidInput("votes: model_a, model_b and outcome must be 1-D and of one length")
        if len(set(self.models)) != len(self.models):
            raise InvalidInput("votes: model names must be unique")
        if len(self.model_a) == 0:
            return
        low = min(int(self.model_a.min()), int(self.model_b.min()))
        high = max(int(self.model_a.max()), int(self.model_b.max()))
        if low < 0 or high >= len(self.models):
            raise InvalidInput("votes: a model code is outside the list of models")
        if int(self.outcome.min()) < 0 or int(self.outcome.max()) > 2:
            raise InvalidInput("votes: an outcome code is not 0, 1 or 2")

    @property
    def n_votes(self) -> int:
        return len(self.model_a)

    @classmethod
    def from_labels(
        cls, model_a: Sequence[str], model_b: Sequence[str], outcome: Sequence[str]
    ) -> Votes:
        """Build from names and outcome labels ('model1', 'model2', 'tie'); for small inputs."""
        if not len(model_a) == len(model_b) == len(outcome):
            raise InvalidInput("votes: model_a, model_b and outcome differ in length")
        names, codes = np.unique(
            np.asarray([*model_a, *model_b], dtype=object).astype(str), return_inverse=True
        )
        labels, outcome_codes = np.unique(np.asarray(outcome, dtype=str), return_inverse=True)
        unknown = sorted(set(labels.tolist()) - set(OUTCOMES))
        if unknown:
            raise InvalidInput(f"votes: unknown outcome {unknown[0]!r}, expected one of {OUTCOMES}")
        lookup = np.array([OUTCOMES.index(label) for label in labels], dtype=np.int8)
        n = len(model_a)
        return cls(
            models=tuple(names.tolist()),
            model_a=codes[:n].astype(np.int32),
            model_b=codes[n:].astype(np.int32),
            outcome=lookup[outcome_codes.astype(np.intp)],
        )


@dataclass(frozen=True, eq=False)
class PairCounts:
    """Votes aggregated per unordered pair ``first < second``, seen from ``first``."""

    n_models: int
    first: IntArray
    second: IntArray
    wins: IntArray
    ties: IntArray
    losses: IntArray
    vote_count: IntArray
    """Per model: the evaluations it took part in (ties included)."""

    @property
    def n_votes(self) -> int:
        return int(self.wins.sum() + self.ties.sum() + self.losses.sum())


def aggregate(votes: Votes) -> PairCounts:
    """Count votes per (pair, outcome) without per-row Python; refuses self-comparisons."""
    m = len(votes.models)
    cell = (votes.model_a.astype(np.int64) * m + votes.model_b) * 3 + votes.outcome
    if m * m * 3 <= _DENSE_CELL_LIMIT:
        table = np.bincount(cell, minlength=m * m * 3)
    else:
        keys, counts = np.unique(cell, return_counts=True)
        return _fold_cells(m, keys, counts)
    nonzero = np.flatnonzero(table)
    return _fold_cells(m, nonzero, table[nonzero])


def _fold_cells(m: int, keys: IntArray, counts: IntArray) -> PairCounts:
    """Turn ordered (model_a, model_b, outcome) cell counts into per-pair counts."""
    a, rest = np.divmod(keys, 3 * m)
    b, outcome = np.divmod(rest, 3)
    if np.any(a == b):
        raise InvalidInput("votes: a vote compares a model with itself")
    flipped = a > b
    first = np.where(flipped, b, a)
    second = np.where(flipped, a, b)
    # Seen from `first`: model_a winning is a win unless the pair was flipped, and vice versa.
    view = np.where(outcome == 2, 1, np.where((outcome == 0) != flipped, 0, 2))
    pair_key = first * m + second
    pairs, pair_index = np.unique(pair_key, return_inverse=True)
    per_outcome = np.zeros((len(pairs), 3), dtype=np.int64)
    np.add.at(per_outcome, (pair_index, view), counts)
    vote_count = np.bincount(a, weights=counts, minlength=m) + np.bincount(
        b, weights=counts, minlength=m
    )
    return PairCounts(
        n_models=m,
        first=(pairs // m).astype(np.int64),
        second=(pairs % m).astype(np.int64),
        wins=per_outcome[:, 0],
        ties=per_outcome[:, 1],
        losses=per_outcome[:, 2],
        vote_count=vote_count.astype(np.int64),
    )
