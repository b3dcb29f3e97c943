"""The style-controlled fit's data: standardized style differences and the ranked votes, oriented
and sorted by pair, in the layout every later step iterates over."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from common.ranking._likelihood import Problem
from common.ranking.counts import PairCounts
from common.ranking.scale import LN10, FloatArray, IntArray

ZERO_SD = 1e-9
"""A normalized difference (bounded by 1 in size) whose SD over the votes is below this is constant:
rounding, not data, would make up its standardized values."""
COLLINEAR = 1e-9
"""A standardized feature whose variance left after the model indicators and the features kept
before it is below this share is collinear: its coefficient is not identified."""

BLOCK = 1 << 16
"""Votes per block (at most, unless one pair has more): passes over a block's arrays (512 KB each)
stay in cache, which halves the cost of a gradient over passes on whole (N,) arrays, and a
block's votes are indexed by uint16 when a replicate is drawn."""

ZERO_VARIANCE = "zero variance over the ranked votes: dropped from the fit"
COLLINEAR_REASON = (
    "collinear with the model indicators and the other features: dropped from the fit"
)


def normalized_difference(a: FloatArray, b: FloatArray) -> FloatArray:
    """(a - b) / (a + b + 1) per vote and feature: FastChat's transform, as used for the blog.

    The +1 makes 0 vs 0 a zero difference without a special case and grades small counts (one
    header against none is 0.5, ten against none 0.91) where (a - b) / (a + b) would call both 1.
    """
    return (a - b) / (a + b + 1.0)


@dataclass(frozen=True)
class Standardization:
    """Per input feature: the mean and SD (ddof 0) of its normalized difference over the ranked
    votes, as model_a minus model_b, and why it is out of the fit (None if it is in)."""

    mean: tuple[float, ...]
    sd: tuple[float, ...]
    dropped: tuple[str | None, ...]

    @property
    def kept(self) -> tuple[int, ...]:
        return tuple(j for j, reason in enumerate(self.dropped) if reason is None)


@dataclass(frozen=True)
class Block:
    """Consecutive whole pairs of the sorted votes."""

    pairs: slice
    votes: slice
    starts: IntArray
    """Position of each of its pairs' first vote, from the block's first vote."""

    @property
    def size(self) -> int:
        return int(self.votes.stop - self.votes.start)


@dataclass(frozen=True, eq=False)
class StyleProblem:
    """The ranked votes, each seen from the lower-indexed model of its pair (``first``), sorted by
    pair with the input order kept inside a pair. Vote i's logit of a win for ``first`` is
    ln(10) (r_first - r_second) + z_i . beta; its points ``y`` are 1, 1/2 or 0."""

    pairs: Problem
    """The pair structure (plain-fit counts of the same votes): first, second, incidence, and the
    Laplacian and separability checks the bootstrap reuses."""
    starts: IntArray
    """(P,) position of each pair's first vote."""
    lengths: IntArray
    """(P,) votes per pair."""
    y: FloatArray
    """(N,) points of ``first``."""
    zt: FloatArray
    """(k, N) standardized differences of the kept features, seen from ``first``; C-contiguous
    rows so that each feature is one contiguous pass."""
    blocks: tuple[Block, ...]

    @property
    def m(self) -> int:
        return self.pairs.m

    @property
    def k(self) -> int:
        return len(self.zt)

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def block_sizes(self) -> IntArray:
        return np.array([block.size for block in self.blocks], dtype=np.int64)

    @property
    def largest_block(self) -> int:
        return max(block.size for block in self.blocks)


def build(
    model_a: IntArray,
    model_b: IntArray,
    points: FloatArray,
    diff: FloatArray,
    m: int,
) -> tuple[StyleProblem, Standardization]:
    """Lay out the votes of a strongly connected component (indices 0..m-1).

    ``points`` are model_a's (1, 1/2, 0) and ``diff`` the (N, K) normalized differences, a minus b.
    """
    mean = diff.mean(axis=0)
    sd = diff.std(axis=0)
    dropped: list[str | None] = [None if s >= ZERO_SD else ZERO_VARIANCE for s in sd]
    varying = [j for j, reason in enumerate(dropped) if reason is None]
    flip = model_a > model_b
    first = np.where(flip, model_b, model_a)
    second = np.where(flip, model_a, model_b)
    key = first.astype(np.int64) * m + second
    order = np.argsort(key, kind="stable")
    key = key[order]
    y = np.where(flip, 1.0 - points, points)[order]
    sign = np.where(flip, -1.0, 1.0)[order]
    zt = np.empty((len(varying), len(y)))
    for row, j in enumerate(varying):
        zt[row] = (diff[order, j] - mean[j]) / sd[j]
        zt[row] *= sign
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    lengths = np.diff(np.r_[starts, len(key)])
    pair_first, pair_second = np.divmod(key[starts], m)
    wins = np.add.reduceat((y == 1.0).astype(np.int64), starts)
    ties = np.add.reduceat((y == 0.5).astype(np.int64), starts)
    pairs = Problem.build(
        PairCounts(
            n_models=m,
            first=pair_first,
            second=pair_second,
            wins=wins,
            ties=ties,
            losses=lengths - wins - ties,
            vote_count=np.bincount(np.r_[first, second], minlength=m),
        ),
        np.ones(m, dtype=bool),
    )
    collinear = _collinear(pairs, starts, lengths, zt, sign)
    for row in collinear:
        dropped[varying[row]] = COLLINEAR_REASON
    if collinear:
        zt = np.delete(zt, collinear, axis=0)
    problem = StyleProblem(
        pairs=pairs,
        starts=starts,
        lengths=lengths,
        y=y,
        zt=np.ascontiguousarray(zt),
        blocks=pair_blocks(starts, lengths, BLOCK),
    )
    standardization = Standardization(
        mean=tuple(float(x) for x in mean),
        sd=tuple(float(x) for x in sd),
        dropped=tuple(dropped),
    )
    return problem, standardization


def pair_blocks(starts: IntArray, lengths: IntArray, most: int) -> tuple[Block, ...]:
    """Whole pairs, greedily, up to ``most`` votes per block (a bigger pair is a block of its
    own)."""
    bounds = [0]
    size = 0
    for p, length in enumerate(lengths.tolist()):
        if size and size + length > most:
            bounds.append(p)
            size = 0
        size += length
    bounds.append(len(lengths))
    ends = starts + lengths
    return tuple(
        Block(
            pairs=slice(p0, p1),
            votes=slice(int(starts[p0]), int(ends[p1 - 1])),
            starts=starts[p0:p1] - starts[p0],
        )
        for p0, p1 in itertools.pairwise(bounds)
    )


def _collinear(
    pairs: Problem, starts: IntArray, lengths: IntArray, zt: FloatArray, side: FloatArray
) -> list[int]:
    """Rows of ``zt`` that the model indicators, the side of the vote and the earlier kept rows
    explain.

    Works on the Gram matrix of the design (the Hessian at p = 1/2 up to a factor): the Schur
    complement of the model block is the features' covariance left after the models, and a
    Cholesky pass in feature order keeps a feature when its own residual variance is a real share
    of its total (N, as it is standardized).

    The side (``side``: +1 where the vote's model_a is its pair's first model, else -1) is tested
    as a feature, first, but never fitted. Centring is why: a difference only one model's answers
    have, always the same count, is that model's indicator (exactly collinear) less its mean, a
    constant on the side the model was shown; left in, its coefficient is set by which side each
    vote happened to show the model on -- noise -- and it moved that model by thousands of Elo.
    """
    k = len(zt)
    if k == 0:
        return []
    # The design's Gram matrix with the side as row 0, built from its blocks: stacking the side
    # onto zt would copy (k + 1, N) floats, 40 MB at a million votes.
    gram = np.empty((k + 1, k + 1))
    gram[0, 0] = side @ side
    gram[0, 1:] = gram[1:, 0] = zt @ side
    gram[1:, 1:] = zt @ zt.T
    per_pair = np.vstack([np.add.reduceat(side, starts), np.add.reduceat(zt, starts, axis=1)])
    model_block = pairs.laplacian(LN10 * LN10 * lengths[None].astype(np.float64))[0]
    cross = LN10 * pairs.incidence.signed(per_pair.T)
    schur = gram - cross.T @ np.linalg.solve(model_block, cross)
    kept: list[int] = []
    out: list[int] = []
    for j in range(k + 1):
        left = schur[j, j]
        if kept:
            s_kk = schur[np.ix_(kept, kept)]
            s_kj = schur[kept, j]
            left -= s_kj @ np.linalg.solve(s_kk, s_kj)
        if left > COLLINEAR * len(side):
            kept.append(j)
        elif j > 0:
            out.append(j - 1)
    return out
