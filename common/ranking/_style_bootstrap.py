"""The style-controlled bootstrap: multinomial vote counts per replicate, fitted exactly.

A replicate is Multinomial(N, 1/N each) counts over the ranked votes (N uniform draws of a vote,
counted; see ``draw_counts``), used as per-vote weights: no resampled rows are built. Replicate b
draws from child b of ``SeedSequence(seed)``. On a small board replicates are fitted in chunks of
consecutive replicates (``_style_batch``), on a large one each on its own; chunk boundaries depend
only on the board and B, so the result is bit-identical for a seed whatever the number of worker
threads, which share out whole chunks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np

from common.ranking import _style_batch
from common.ranking._bootstrap import RIDGE, keep_freed_memory
from common.ranking._components import BoolArray, separable_replicates
from common.ranking._likelihood import probabilities
from common.ranking._style_likelihood import (
    REPLICATE_TOL,
    Weights,
    chord,
    hessian,
    logits,
    newton,
    weigh,
)
from common.ranking._style_problem import StyleProblem
from common.ranking.scale import FloatArray, IntArray

CHUNK_CELLS = 1 << 20
"""Counts per chunk (replicates x votes), 8 MB an array. A chunk holds four or five such arrays at
once; at twice the size they pass glibc's trim threshold (``keep_freed_memory``) and each chunk
faults its memory in again."""
MIN_ROWS = 32
"""Fewer replicates per chunk than this (boards above CHUNK_CELLS / 32 = 32k votes) and each
replicate is fitted on its own: its gradients over 64k-vote blocks cost as little per vote as a
batch's (measured: equal at ~35k votes, the batch 1.9x faster at 10k, 3.5x at 3k)."""


@dataclass(frozen=True, eq=False)
class _Start:
    """What every replicate starts from: the full-data fit, its p per vote, its Hessian inverse."""

    pb: StyleProblem
    theta: FloatArray
    prob: FloatArray
    h_inv: FloatArray


def draw_counts(rng: np.random.Generator, sizes: IntArray) -> FloatArray:
    """Multinomial(n, 1/n each) over n = sum(sizes) votes, exactly: the block totals are
    Multinomial(n, sizes / n), then each block's votes are drawn uniformly and counted (uint16
    indices and cache-sized counting make this ~2x faster than one bincount over n)."""
    n = int(sizes.sum())
    totals = rng.multinomial(n, sizes / n)
    counts = np.empty(n)
    start = 0
    for size, total in zip(sizes.tolist(), totals.tolist(), strict=True):
        dtype = np.uint16 if size <= 2**16 else np.int64
        counts[start : start + size] = np.bincount(
            rng.integers(0, size, total, dtype=dtype), minlength=size
        )
        start += size
    return counts


def chunk_size(n: int, replicates: int) -> int:
    """Replicates per chunk on a board of ``n`` votes: about CHUNK_CELLS counts, all chunks of
    one size (a short last chunk would leave a worker idle), or 1 (each fitted on its own)."""
    most = CHUNK_CELLS // max(n, 1)
    if most < MIN_ROWS:
        return 1
    return math.ceil(replicates / math.ceil(replicates / most))


def _ridged(start: _Start, w: Weights) -> FloatArray:
    """A replicate without an MLE: the fit with the RIDGE prior."""
    theta, _ = newton(start.pb, start.theta, w, RIDGE, REPLICATE_TOL)
    return theta


def _own_newton(start: _Start, w: Weights) -> tuple[FloatArray, bool]:
    """A replicate the chord steps did not fit, and whether it has no MLE.

    Far from the full fit (a model left with one or two losses) the chord iteration overshoots;
    the replicate's own Newton takes over, and a replicate that the style features separate (no
    MLE although the graph is strongly connected) ends with the ridge like the others.
    """
    theta, converged = newton(start.pb, start.theta, w, 0.0, REPLICATE_TOL)
    if converged:
        return theta, False
    return _ridged(start, w), True


def _replicate(start: _Start, seed: np.random.SeedSequence) -> tuple[FloatArray, bool]:
    """One replicate's estimate, and whether it has no MLE (then fitted with the RIDGE prior)."""
    pb = start.pb
    w = weigh(pb, draw_counts(np.random.default_rng(seed), pb.block_sizes))
    if separable_replicates(pb.pairs, w.score[None], w.total[None])[0]:
        return _ridged(start, w), True
    theta, converged = chord(pb, start.theta, start.prob, start.h_inv, w)
    if converged:
        return theta, False
    return _own_newton(start, w)


def _one_by_one(start: _Start, seeds: list[np.random.SeedSequence]) -> tuple[FloatArray, BoolArray]:
    """Consecutive replicates' estimates (R, m + k) and which have no MLE, each on its own."""
    fits = [_replicate(start, seed) for seed in seeds]
    return np.array([theta for theta, _ in fits]), np.array([ridged for _, ridged in fits])


def _together(
    start: _Start, batch: _style_batch.Batch, seeds: list[np.random.SeedSequence]
) -> tuple[FloatArray, BoolArray]:
    """Consecutive replicates' estimates (R, m + k) and which have no MLE: drawn one by one as in
    ``_replicate``, fitted by batched quasi-Newton steps (``_style_batch.broyden``); those these
    do not fit by batched Newton steps (``_style_batch.newton``); a replicate without an MLE or
    that neither fits is then fitted as ``_replicate`` fits it."""
    pb = start.pb
    # Drawn a replicate per row, then laid out a vote per row for the fits.
    drawn = np.empty((len(seeds), pb.n))
    for j, seed in enumerate(seeds):
        drawn[j] = draw_counts(np.random.default_rng(seed), pb.block_sizes)
    # Points and votes per pair: sums of integers and halves, exact in any order.
    points = np.add.reduceat(drawn * pb.y, pb.starts, axis=1)
    totals = np.add.reduceat(drawn, pb.starts, axis=1)
    separable = separable_replicates(pb.pairs, points, totals)
    c = batch.arrange(drawn.T)
    del drawn
    thetas = np.empty((len(seeds), pb.m + pb.k))
    fitted = np.zeros(len(seeds), dtype=bool)
    regular = np.flatnonzero(~separable)
    thetas[regular], fitted[regular] = _style_batch.broyden(
        batch, start.theta, start.h_inv, np.compress(~separable, c, axis=1)
    )
    again = np.flatnonzero(~fitted & ~separable)
    if again.size:
        thetas[again], fitted[again] = _style_batch.newton(batch, start.theta, c[:, again])
    for i in np.flatnonzero(~fitted):
        w = weigh(pb, c[batch.place, i])
        if separable[i]:
            thetas[i] = _ridged(start, w)
        else:
            thetas[i], separable[i] = _own_newton(start, w)
    return thetas, separable


def bootstrap_thetas(
    pb: StyleProblem,
    theta: FloatArray,
    replicates: int,
    seed: int,
    workers: int,
    chunk: int | None = None,
) -> tuple[FloatArray, int]:
    """(replicates, m + k) estimates and the number of replicates without an MLE.

    ``chunk`` replicates are fitted together (default ``chunk_size``; 1 fits each on its own).
    """
    keep_freed_memory()
    prob = probabilities(logits(pb, theta))
    h_inv = np.linalg.inv(hessian(pb, prob * (1.0 - prob), 0.0))
    start = _Start(
        pb=pb,
        theta=theta,
        prob=prob,
        h_inv=np.asarray(h_inv, dtype=np.float64),
    )
    size = chunk_size(pb.n, replicates) if chunk is None else chunk
    seeds = np.random.SeedSequence(seed).spawn(replicates)
    groups = [seeds[i : i + size] for i in range(0, replicates, size)]
    fit: Callable[[list[np.random.SeedSequence]], tuple[FloatArray, BoolArray]]
    if size == 1:
        fit = partial(_one_by_one, start)
    else:
        fit = partial(_together, start, _style_batch.Batch.build(pb, prob, size))
    if workers <= 1:
        results = [fit(group) for group in groups]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(fit, groups))
    thetas = np.concatenate([t for t, _ in results])
    return thetas, int(sum(int(s.sum()) for _, s in results))
