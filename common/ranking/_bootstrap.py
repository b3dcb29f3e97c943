"""The bootstrap: exact multinomial replicates of the votes, fitted together."""

from __future__ import annotations

import ctypes
import functools
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from common.ranking._components import separable_replicates
from common.ranking._likelihood import REPLICATE_TOL, Problem, chord, newton
from common.ranking.scale import FloatArray, IntArray

RIDGE = 1e-2
WALK = 4
"""Steps a draw walks one at a time past its first before the rest of its walk is bisected."""
# Replicates per chunk: about CHUNK_CELLS sampled cells, so a chunk's arrays stay in cache.
CHUNK_CELLS = 2**17
# glibc's mallopt parameters and the values kept_freed_memory sets: its own ceiling for the
# adaptive mmap threshold (32 MiB on 64-bit) and twice that for trimming, as it adapts them itself
# once it has seen a large array freed.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 * 2**20


@dataclass(frozen=True, eq=False)
class Inversion:
    """Inversion sampling from many discrete distributions at once, with guide tables.

    Distribution d takes the values ``low[d] + k`` with P(X <= low[d] + k) = ``cdf[start[d] + k]``
    (each table ends with a sentinel 2.0). A draw u ~ U[0, 1) jumps through a guide table to the
    last table entry at most u - 1/size below it, then walks on while the cdf is <= u; with as
    many guide slots as table entries the walk is under one step on average. This beats numpy's
    per-draw Poisson sampler by ~3x because the same few distributions are drawn millions of times.

    A draw still walking after WALK more steps is bisected the rest of the way: a u in a table's
    first guide slot starts at the table's first entry and may have its whole lower tail to cross
    (hundreds of entries at rates in the thousands; a step at a time, a 100-model chunk took 124
    passes over its stragglers). Both end at the first entry whose cdf exceeds u: the same draw.
    """

    cdf: FloatArray
    guide: IntArray
    guide_start: IntArray
    guide_size: FloatArray
    offset: IntArray
    """Value = position in ``cdf`` - offset."""
    stop: IntArray
    """Position of each table's sentinel."""

    @classmethod
    def build(cls, tables: Sequence[FloatArray], lows: Sequence[int]) -> Inversion:
        cdfs, guides, guide_start, guide_size, offset, stop = [], [], [], [], [], []
        pos = gpos = 0
        for table, low in zip(tables, lows, strict=True):
            table = np.maximum.accumulate(np.minimum(table, 1.0))
            size = len(table)
            # A slightly low start only costs a step; a high one would be wrong.
            marks = np.arange(size) / size - 1e-12
            guides.append(pos + np.searchsorted(table, marks, side="right"))
            cdfs.append(np.append(table, 2.0))
            guide_start.append(gpos)
            guide_size.append(size)
            offset.append(pos - low)
            stop.append(pos + size)
            pos += size + 1
            gpos += size
        return cls(
            cdf=np.concatenate(cdfs),
            guide=np.concatenate(guides),
            guide_start=np.array(guide_start, dtype=np.int64),
            guide_size=np.array(guide_size, dtype=np.float64),
            offset=np.array(offset, dtype=np.int64),
            stop=np.array(stop, dtype=np.int64),
        )

    def sample(self, u: FloatArray, which: IntArray) -> IntArray:
        """One draw per entry of ``u`` from distribution ``which`` (broadcast against ``u``)."""
        slot = (u * self.guide_size[which]).astype(np.int64)
        slot += self.guide_start[which]
        pos = self.guide[slot]
        del slot
        pos += self.cdf[pos] <= u
        flat_pos, flat_u = pos.reshape(-1), np.broadcast_to(u, pos.shape).reshape(-1)
        todo = np.flatnonzero(self.cdf[flat_pos] <= flat_u)
        for _ in range(WALK):
            if not todo.size:
                break
            flat_pos[todo] += 1
            todo = todo[self.cdf[flat_pos[todo]] <= flat_u[todo]]
        if todo.size:
            table = np.broadcast_to(which, pos.shape)[np.unravel_index(todo, pos.shape)]
            flat_pos[todo] = self._first_above(flat_pos[todo], self.stop[table], flat_u[todo])
        pos -= self.offset[which]
        return pos

    def _first_above(self, low: IntArray, high: IntArray, u: FloatArray) -> IntArray:
        """The first position with cdf > u, by bisection between ``low`` (cdf <= u) and ``high``
        (cdf > u), inside one table: the cdf does not decrease there."""
        while True:
            gap = high - low
            if not (gap > 1).any():
                return high
            mid = low + gap // 2
            below = self.cdf[mid] <= u
            low = np.where(below, mid, low)
            high = np.where(below, high, mid)


def poisson_tables(rates: FloatArray) -> tuple[list[FloatArray], list[int]]:
    """CDF tables of Poisson(rate) wide enough that the mass left out is below 1e-17."""
    tables, lows = [], []
    for rate in rates:
        spread = 13.0 * math.sqrt(rate)
        low = max(0, math.floor(rate - spread - 5.0))
        high = math.ceil(rate + spread + 25.0)
        tables.append(poisson_cdf(low, high, float(rate)))
        lows.append(low)
    return tables, lows


def poisson_cdf(low: int, high: int, rate: float) -> FloatArray:
    """P(X <= k) for k = low..high, X ~ Poisson(rate), on a table that leaves out a negligible
    mass: within 5e-16 of the exact values (measured at rates up to 1e6).

    The pmf relative to the mode's comes from pmf(k) / pmf(k - 1) = rate / k, multiplied outward
    from the mode (no factorials, no large logarithms), normalized by its sum over the table.
    Below the mode the cdf is summed from the lower end, from the mode up as 1 minus the sum from
    the upper end, so that each tail is as accurate as its own size allows.
    """
    k = np.arange(low, high + 1, dtype=np.float64)
    mode = min(max(math.floor(rate), low), high) - low
    pmf = np.empty(len(k))
    pmf[mode] = 1.0
    pmf[mode + 1 :] = np.cumprod(rate / k[mode + 1 :])
    pmf[:mode][::-1] = np.cumprod(k[1 : mode + 1][::-1] / rate)
    pmf /= pmf.sum()
    cdf = np.cumsum(pmf)
    at_least = np.cumsum(pmf[::-1])[::-1]
    cdf[mode:-1] = 1.0 - at_least[mode + 1 :]
    cdf[-1] = 1.0
    return cdf


@dataclass(frozen=True, eq=False)
class Cells:
    """The (pair, outcome) cells with votes, their samplers, and where they sit per pair."""

    counts: IntArray
    poisson: Inversion
    which: IntArray
    """Cell -> its Poisson table (cells with the same count share one)."""
    categorical: Inversion
    slot: IntArray
    """Cell -> 3 pair + outcome (0 win, 1 tie, 2 loss of the pair's first model)."""
    pairs: int

    @classmethod
    def build(cls, pb: Problem) -> Cells:
        stacked = np.stack([pb.wins, pb.ties, pb.losses], axis=1).ravel()
        nonzero = np.flatnonzero(stacked)
        counts = stacked[nonzero].astype(np.int64)
        total = int(counts.sum())
        distinct, which = np.unique(counts, return_inverse=True)
        rates = distinct.astype(np.float64) * (poisson_total(total) / total)
        tables, lows = poisson_tables(rates)
        return cls(
            counts=counts,
            poisson=Inversion.build(tables, lows),
            which=which.astype(np.int64),
            categorical=Inversion.build([np.cumsum(counts) / total], [0]),
            slot=nonzero,
            pairs=len(pb.wins),
        )

    def per_pair(self, x: IntArray) -> tuple[FloatArray, FloatArray]:
        """Points of the first model and votes per pair (B, pairs) of drawn counts x (B, cells):
        sums of integers and halves, exact in any order."""
        outcomes = np.zeros((len(x), 3 * self.pairs))
        outcomes[:, self.slot] = x
        wins, ties, losses = outcomes[:, 0::3], outcomes[:, 1::3], outcomes[:, 2::3]
        return wins + 0.5 * ties, wins + ties + losses

    def draw(self, rng: np.random.Generator, size: int) -> IntArray:
        """``size`` rows of Multinomial(N, counts / N), exactly, via Poissonization.

        Cell counts drawn as independent Poissons with total rate N - 2 sqrt(N) are, given their
        total T, Multinomial(T, counts / N); rows with T > N are drawn again (rejection keeps that
        law) and the N - T missing votes are drawn one by one from counts / N.
        """
        total = int(self.counts.sum())
        n_cells = len(self.counts)
        x = self.poisson.sample(rng.random((size, n_cells)), self.which)
        sums = x.sum(axis=1)
        over = np.flatnonzero(sums > total)
        while over.size:
            x[over] = self.poisson.sample(rng.random((over.size, n_cells)), self.which)
            sums[over] = x[over].sum(axis=1)
            over = over[sums[over] > total]
        missing = total - sums
        cell = self.categorical.sample(rng.random(int(missing.sum())), np.zeros(1, np.int64))
        row = np.repeat(np.arange(size), missing)
        x += np.bincount(row * n_cells + cell, minlength=x.size).reshape(x.shape)
        return x


def poisson_total(total: int) -> float:
    return max(total - 2.0 * math.sqrt(total), 0.0)


def _replicate_chunk(
    pb: Problem,
    cells: Cells,
    r_full: FloatArray,
    h_inv: FloatArray,
    seed: np.random.SeedSequence,
    size: int,
) -> tuple[FloatArray, int]:
    rng = np.random.default_rng(seed)
    x = cells.draw(rng, size)
    s, n = cells.per_pair(x)
    del x
    separable = separable_replicates(pb, s, n)
    r = np.empty((size, pb.m))
    regular = np.flatnonzero(~separable)
    r_reg, failed = chord(pb, r_full, h_inv, s[regular], n[regular])
    if failed.any():
        # A replicate far from the full fit (e.g. a model left with one loss) makes the chord
        # overshoot; it restarts from the full fit with its own Hessian.
        redo = regular[failed]
        start = np.tile(r_full, (len(redo), 1))
        r_reg[failed] = newton(pb, start, s[redo], n[redo], 0.0, REPLICATE_TOL)
    r[regular] = r_reg
    if separable.any():
        start = np.tile(r_full, (int(separable.sum()), 1))
        r[separable] = newton(pb, start, s[separable], n[separable], RIDGE, REPLICATE_TOL)
    return r, int(separable.sum())


@functools.cache
def keep_freed_memory() -> None:
    """Let the C allocator keep freed memory for reuse (glibc only; elsewhere nothing happens).

    A chunk allocates and frees arrays of ~1 MB (CHUNK_CELLS cells), a few MB at a time. Until the
    process has freed a larger array, glibc's thresholds are 1-2 MB: it hands each chunk's memory
    back to the kernel and the next chunk faults it in again, page by page (~2,000 page faults a
    chunk, about half the CPU time of ranking a 40-model board). Raising the thresholds once per
    process changes no number, only where the memory comes from.
    """
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_THRESHOLD)


def bootstrap_ratings(
    pb: Problem, r_full: FloatArray, replicates: int, seed: int, workers: int
) -> tuple[FloatArray, int]:
    keep_freed_memory()
    cells = Cells.build(pb)
    h_inv = np.linalg.inv(pb.laplacian(pb.curvature(r_full[None], pb.total[None]))[0])
    chunk = int(np.clip(CHUNK_CELLS // len(cells.counts), 8, 256))
    sizes = [min(chunk, replicates - k) for k in range(0, replicates, chunk)]
    seeds = np.random.SeedSequence(seed).spawn(len(sizes))
    jobs = list(zip(seeds, sizes, strict=True))
    if workers <= 1:
        results = [_replicate_chunk(pb, cells, r_full, h_inv, sd, sz) for sd, sz in jobs]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(
                pool.map(lambda job: _replicate_chunk(pb, cells, r_full, h_inv, *job), jobs)
            )
    ratings = np.concatenate([r for r, _ in results])
    return ratings, sum(k for _, k in results)
