"""Per-model sums over items (pairs of models, or votes) that each touch two models.

Item t adds a term to its ``first`` model and one to its ``second``: +s x[t] and -s x[t] in a
signed sum (a gradient), x[t] to both in a plain one (a Laplacian's diagonal). These are products
with the items' incidence matrix (+s at first, -s at second), summed as a CSR product sums them:
each model's sum starts from 0.0 and adds its terms one by one, in item order. Floating-point
addition is not associative; keeping the order keeps the numbers, to the bit.

How: per model, a column lists the rows of ``[s x; -s x; 0]`` that hold its terms, in item order
after one zero row, padded with zero rows to the depth of its group's table. ``np.add.reduce``
over a gathered table's first axis adds its rows one after another, element-wise: numpy sums
pairwise only along the contiguous axis, which is never the one summed over while a row of the
table holds two numbers or more (a single column of scalars is summed as two equal columns). The
leading zero starts every sum at +0.0, so it is never -0.0 and the padding's +0.0 leaves it as it
is. Models are grouped by their number of terms, so that padding at most about doubles the work
where a few models have most of the items (in a block of pair-sorted votes, the first model of
the first pairs has them all).

``Scatter`` gives the same sums without the bits' guarantee, faster, where no bit-exact reference
holds the numbers (the style bootstrap's batched passes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from common.ranking.scale import FloatArray, IntArray

GROUP_SPREAD = 2
"""A group of models takes the next model (by decreasing number of terms) while it has at least
1/GROUP_SPREAD of the group's first one's."""


@dataclass(frozen=True, eq=False)
class _Group:
    """The models at ``start:stop`` in the order of decreasing terms, and their table:
    ``rows[offset : offset + depth * (stop - start)]`` as (depth, stop - start)."""

    offset: int
    depth: int
    start: int
    stop: int


@dataclass(frozen=True, eq=False)
class Incidence:
    """Items 0..n-1, each at ``first`` (+) and ``second`` (-) among ``m`` models."""

    m: int
    first: IntArray
    second: IntArray
    rows: IntArray
    """The groups' tables, one after another, raveled: rows of ``[s x; -s x; 0]``."""
    groups: tuple[_Group, ...]
    place: IntArray
    """Model -> its position in the order of decreasing terms (the groups' order)."""

    @classmethod
    def build(cls, first: IntArray, second: IntArray, m: int) -> Incidence:
        n = len(first)
        # Every term in item order: item t's at first is row t, its at second row n + t.
        model = np.stack([first, second], axis=1).ravel()
        row = np.stack([np.arange(n), np.arange(n, 2 * n)], axis=1).ravel()
        by_model = np.argsort(model, kind="stable")
        model, row = model[by_model], row[by_model]
        count = np.bincount(model, minlength=m)
        depth = 1 + np.arange(2 * n) - np.repeat(np.cumsum(count) - count, count)
        order = np.argsort(-count, kind="stable")
        place = np.empty(m, dtype=np.int64)
        place[order] = np.arange(m)
        tables, groups = [], []
        offset = start = 0
        while start < m:
            top = int(count[order[start]])
            stop = start + 1
            while stop < m and GROUP_SPREAD * count[order[stop]] >= top:
                stop += 1
            table = np.full((1 + top, stop - start), 2 * n, dtype=np.int64)
            inside = (place[model] >= start) & (place[model] < stop)
            table[depth[inside], place[model[inside]] - start] = row[inside]
            tables.append(table.ravel())
            groups.append(_Group(offset, 1 + top, start, stop))
            offset += table.size
            start = stop
        return cls(
            m=m,
            first=np.asarray(first, dtype=np.int64),
            second=np.asarray(second, dtype=np.int64),
            rows=np.concatenate([np.zeros(0, dtype=np.int64), *tables]),
            groups=tuple(groups),
            place=place,
        )

    def signed(self, x: FloatArray, scale: float = 1.0) -> FloatArray:
        """(m, ...) per model: the sum of scale x[t] over the items where it is first and of
        -scale x[t] where it is second, for ``x`` of shape (n, ...)."""
        return self._sum(x, scale, negate=True)

    def touches(self, x: FloatArray) -> FloatArray:
        """(m, ...) per model: the sum of x[t] over its items, for ``x`` of shape (n, ...)."""
        return self._sum(x, 1.0, negate=False)

    def gram(self, weights: FloatArray) -> FloatArray:
        """(m, m) A^T diag(w) A for weights (n,) of items that are distinct pairs: the weighted
        graph's Laplacian, 0 - w off the diagonal (+0.0 for a zero weight, which a sparse
        product leaves out) and ``touches`` on it.

        In Fortran order (the matrix is symmetric: this is its transpose), the layout of the
        sparse product's dense form: the BLAS products it enters round differently per layout.
        """
        out = np.zeros((self.m, self.m))
        off = np.subtract(0.0, weights)
        out[self.first, self.second] = off
        out[self.second, self.first] = off
        idx = np.arange(self.m)
        out[idx, idx] = self.touches(weights)
        return out.T

    def _sum(self, x: FloatArray, scale: float, negate: bool) -> FloatArray:
        n, tail = len(x), x.shape[1:]
        columns = x.reshape(n, math.prod(tail))
        single = columns.shape[1] == 1
        if single:
            columns = np.repeat(columns, 2, axis=1)
        width = columns.shape[1]
        ext = np.empty((2 * n + 1, width))
        np.multiply(columns, scale, out=ext[:n])
        if negate:
            # -(s x) is (-s) x to the bit: rounding is symmetric in sign.
            np.negative(ext[:n], out=ext[n : 2 * n])
        else:
            ext[n : 2 * n] = ext[:n]
        ext[2 * n] = 0.0
        terms = np.take(ext, self.rows, axis=0)
        sums = np.empty((self.m, width))
        for g in self.groups:
            size = g.stop - g.start
            table = terms[g.offset : g.offset + g.depth * size].reshape(g.depth, size, width)
            np.add.reduce(table, axis=0, out=sums[g.start : g.stop])
        out = np.take(sums, self.place, axis=0)
        if single:
            out = out[:, :1].copy()
        return out.reshape(self.m, *tail)


@dataclass(frozen=True, eq=False)
class _Side:
    """The items in the order of one side's model (``order``; None when already so), and where
    each of those models' run of items starts."""

    order: IntArray | None
    starts: IntArray
    models: IntArray

    @classmethod
    def build(cls, model: IntArray) -> _Side:
        order = np.argsort(model, kind="stable")
        ordered = model[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        in_order = bool((order == np.arange(len(order))).all())
        return cls(order=None if in_order else order, starts=starts, models=ordered[starts])

    def sums(self, x: FloatArray) -> FloatArray:
        return np.add.reduceat(x if self.order is None else x[self.order], self.starts, axis=0)


@dataclass(frozen=True, eq=False)
class Scatter:
    """``Incidence.signed``'s sums, not to the bit: each model's terms are summed by one
    ``np.add.reduceat`` per side over the items in that side's model order, then scaled.

    For the style bootstrap's batched passes, whose numbers no bit-exact reference holds: on
    (pairs, replicates) arrays of a few thousand votes it is 4x faster (pairs sorted by first
    model need no reordering for that side)."""

    m: int
    first: _Side
    second: _Side

    @classmethod
    def build(cls, first: IntArray, second: IntArray, m: int) -> Scatter:
        return cls(m=m, first=_Side.build(first), second=_Side.build(second))

    def signed(self, x: FloatArray, scale: float = 1.0) -> FloatArray:
        """(m, ...) per model: scale times the sum of x[t] over the items where it is first,
        minus the sum where it is second, for ``x`` of shape (n, ...) with n > 0."""
        out = np.zeros((self.m, *x.shape[1:]))
        out[self.first.models] = self.first.sums(x)
        out[self.second.models] -= self.second.sums(x)
        out *= scale
        return out
