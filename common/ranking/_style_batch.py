"""Bootstrap replicates of a small board fitted together: quasi-Newton steps on a batch, and
Newton's method for the replicates they do not fit.

On a few thousand votes a replicate's fit takes several gradients, each a dozen numpy calls on
arrays too small to pay for the call. Here R replicates' counts are one (N, R) matrix, votes by
rows, and every step is one pass for all of them: the logits are the design (ln 10 at the vote's
first model, -ln 10 at its second, then the features) times theta, the gradient the transposed
products (the ratings part summed per pair, which reaches the pair's two models afterwards, as in
``_style_likelihood``). Passes go over blocks of whole pairs whose (V, R) arrays stay in cache.
The batch lays the votes out with its pairs in order of their number of votes (``Batch.arrange``),
so that a block's pairs come in a few runs of one length and each run's per-pair sums are one
reduction of a (pairs, length, R) view: reduceat over a block's hundred short pairs took 4x as
long. X^T (c y), the part of a gradient that does not move with theta, is taken once a batch
(``points``); each step computes only X^T (c p).

The steps (``broyden``) start as chord steps with the full data's Hessian inverse, as a large
board's replicate takes them (``_style_likelihood.chord``), and each replicate then corrects its
own inverse from its last step and the change in its gradient (Broyden's update). On a few
thousand votes a replicate's optimum is far enough from the full fit (a model with a hundred
votes moves by 0.3 log10-odds) that chord steps contract by only 0.2 to 0.7 a step, or not at
all; Broyden's steps took half the gradients on make run's 20 category boards (927 instead of
1698) and fit most of the replicates that chord steps gave up on. A replicate stops once its step
is below REPLICATE_TOL and the next one would be too, and leaves the batch when it stops.

The few they do not fit are fitted together again by Newton's method, each step with the
replicate's own Hessian (``derivatives``: per pair, the sums of c p (1 - p) and of it times each
feature; the features' block from the products of their columns), one batched solve a step;
what that does not fit gets the damped Newton of its own that ``_style_bootstrap`` gives it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from common.ranking._components import BoolArray
from common.ranking._incidence import Scatter
from common.ranking._style_likelihood import CHORD_MAX_ITER, REPLICATE_TOL
from common.ranking._style_problem import Block, StyleProblem, pair_blocks
from common.ranking.scale import LN10, FloatArray, IntArray

BLOCK_CELLS = 1 << 17
"""(vote, replicate) cells per block of a pass, at most (a pair with more votes is a block of its
own): 1 MB per array, which stays in cache."""
COMPACT = 0.75
"""The batch drops its stopped replicates once at most this share of its columns is going on.
Copying the counts costs about as much as a pass, so a replicate that stopped (its estimate
taken) rides along until a quarter of the batch has stopped."""
HESSIAN_CELLS = 1 << 22
"""Entries of the per-replicate (m + k)^2 matrices a batch holds at once, Newton's Hessians (32
MB, twice while solving): at 40 models every replicate of a chunk, at 300 models 45 replicates at
a time. Broyden's iteration is held to the same groups: its updates, 2 (m + k) numbers per
replicate and step, stay below that at 300 models and reach it at 40 only if every replicate
takes 22 steps (make run's boards take 10)."""


@dataclass(frozen=True, eq=False)
class Run:
    """Pairs of one length in a block: its rows ``votes`` are the votes of its ``pairs``,
    ``length`` each (both relative to the block)."""

    pairs: slice
    votes: slice
    length: int


@dataclass(frozen=True, eq=False)
class BatchBlock:
    """Consecutive whole pairs of the batch's layout, in runs of one length."""

    pairs: slice
    votes: slice
    runs: tuple[Run, ...]

    @classmethod
    def build(cls, block: Block, lengths: IntArray) -> BatchBlock:
        """``block`` of the batch's pairs, whose numbers of votes are ``lengths``."""
        own = lengths[block.pairs]
        cuts = np.flatnonzero(np.r_[True, own[1:] != own[:-1], True]).tolist()
        runs = tuple(
            Run(
                pairs=slice(p0, p1),
                votes=slice(int(block.starts[p0]), int(block.starts[p0] + (p1 - p0) * own[p0])),
                length=int(own[p0]),
            )
            for p0, p1 in itertools.pairwise(cuts)
        )
        return cls(pairs=block.pairs, votes=block.votes, runs=runs)

    @property
    def size(self) -> int:
        return int(self.votes.stop - self.votes.start)

    def pair_sums(self, rows: FloatArray, out: FloatArray) -> None:
        """Sum the block's rows (V, ...) per pair into ``out`` (its pairs, ...)."""
        for run in self.runs:
            part = rows[run.votes]
            if run.length == 1:
                out[run.pairs] = part
            else:
                grouped = part.reshape(-1, run.length, *part.shape[1:])
                np.add.reduce(grouped, axis=1, out=out[run.pairs])


@dataclass(frozen=True, eq=False)
class Batch:
    """The votes of ``pb`` laid out for passes over up to R replicates at once: pairs in order
    of their number of votes (the problem's order among equals), each pair's votes as in the
    problem. Per-vote arrays are in this order, per-pair ones in the pairs' order."""

    pb: StyleProblem
    order: IntArray
    """(N,) the problem's vote in each row of the layout."""
    place: IntArray
    """(N,) each problem vote's row in the layout."""
    pair_place: IntArray
    """(P,) each problem pair's position in the layout."""
    first: IntArray
    second: IntArray
    lengths: IntArray
    """(P,) each pair's models and number of votes, in the layout's order of pairs."""
    blocks: tuple[BatchBlock, ...]
    y: FloatArray
    zt: FloatArray
    """The problem's ``y`` and ``zt``, votes in the layout's order."""
    prob: FloatArray
    """(N,) p at the full fit, where every replicate's first step is taken."""
    curvature: FloatArray
    """(N,) p (1 - p) at the full fit."""
    products: FloatArray
    """(k (k + 1) / 2, N) z_j z_l for j <= l (``np.triu_indices`` order): the features' block of
    a Hessian is one product with these."""
    scatter: Scatter
    """Per-pair sums to per-model ones."""

    @classmethod
    def build(cls, pb: StyleProblem, prob_full: FloatArray, rows: int) -> Batch:
        """The layout for batches of up to ``rows`` replicates (it sets the block size)."""
        pair_order = np.argsort(pb.lengths, kind="stable")
        lengths = pb.lengths[pair_order]
        starts = np.cumsum(lengths) - lengths
        order = np.repeat(pb.starts[pair_order] - starts, lengths) + np.arange(pb.n)
        first, second = pb.pairs.first[pair_order], pb.pairs.second[pair_order]
        zt = np.ascontiguousarray(pb.zt[:, order])
        row, col = np.triu_indices(pb.k)
        prob = prob_full[order]
        return cls(
            pb=pb,
            order=order,
            place=_inverse(order),
            pair_place=_inverse(pair_order),
            first=first,
            second=second,
            lengths=lengths,
            blocks=tuple(
                BatchBlock.build(block, lengths)
                for block in pair_blocks(starts, lengths, max(1, BLOCK_CELLS // rows))
            ),
            y=pb.y[order],
            zt=zt,
            prob=prob,
            curvature=prob * (1.0 - prob),
            products=zt[row] * zt[col],
            scatter=Scatter.build(first, second, pb.m),
        )

    def arrange(self, counts: FloatArray) -> FloatArray:
        """(N, R) counts of the problem's votes, rows in the layout's order."""
        return np.ascontiguousarray(counts[self.order])


def _inverse(order: IntArray) -> IntArray:
    """The permutation that undoes ``order``."""
    out = np.empty_like(order)
    out[order] = np.arange(len(order))
    return out


def _odds_against(batch: Batch, block: BatchBlock, theta: FloatArray) -> FloatArray:
    """(V, R) 1 + exp(-eta) for the block's votes at ``theta`` (m + k, R): p is its reciprocal.

    Built negated (-(z . beta) + ln 10 (r_second - r_first)) so that exp takes it as it is; a
    pair's term is added to its votes' rows through the run's (pairs, length, R) view."""
    pairs = block.pairs
    out = batch.zt[:, block.votes].T @ -theta[batch.pb.m :]
    spread = LN10 * (theta[batch.second[pairs]] - theta[batch.first[pairs]])
    for run in block.runs:
        out[run.votes].reshape(-1, run.length, out.shape[1])[...] += spread[run.pairs, None]
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
    out += 1.0
    return out


def _transposed(batch: Batch, width: int, values: Callable[[BatchBlock], FloatArray]) -> FloatArray:
    """(m + k, R) X^T a, for the per-vote a that ``values`` gives a block at a time, (V, R): the
    ratings part summed per pair, then scattered to the pairs' models."""
    pair_sums = np.empty((len(batch.lengths), width))
    g_beta = np.zeros((batch.pb.k, width))
    for block in batch.blocks:
        rows = values(block)
        block.pair_sums(rows, pair_sums[block.pairs])
        g_beta += batch.zt[:, block.votes] @ rows
    return np.concatenate([batch.scatter.signed(pair_sums, LN10), g_beta])


def points(batch: Batch, c: FloatArray) -> FloatArray:
    """(m + k, R) X^T (c y) for the replicates' counts ``c`` (N, R, in the layout's order): the
    part of their gradients that does not depend on theta, taken once for all their steps."""
    return _transposed(batch, c.shape[1], lambda block: c[block.votes] * batch.y[block.votes, None])


def gradients(
    batch: Batch, c: FloatArray, c_points: FloatArray, theta: FloatArray | None
) -> FloatArray:
    """(m + k, R) gradients of the negative log-likelihood, X^T (c p) - X^T (c y), for the
    replicates' counts ``c`` (N, R, in the layout's order) and ``c_points`` = X^T (c y)
    (``points``), at ``theta`` (m + k, R), or at the full fit when ``theta`` is None.

    A block's expected points c p are its only (V, R) array."""

    def expected(block: BatchBlock) -> FloatArray:
        v = block.votes
        if theta is None:
            return c[v] * batch.prob[v, None]
        odds = _odds_against(batch, block, theta)
        return np.divide(c[v], odds, out=odds)

    grad = _transposed(batch, c.shape[1], expected)
    grad -= c_points
    return grad


@dataclass(eq=False)
class _Broyden:
    """Steps -H g with each replicate's own estimate H of its inverse Hessian: the full data's at
    first, then after each step s, with y the change in gradient that it brought, Broyden's
    update H += (s - H y) s^T H / (s^T H y) (skipped where s^T H y is next to 0). The update keeps
    the gauge: s and y have ratings that sum to 0, and the full data's inverse keeps such vectors
    so.

    H is kept as the full data's inverse plus the updates so far, u v^T each: a product with it
    is one matrix product and two passes over the updates, instead of R matrices of (m + k)^2 to
    update and multiply by at every step."""

    batch: Batch
    h_inv: FloatArray
    last: tuple[IntArray, FloatArray, FloatArray] | None = None
    """The previous call's replicates (``rows``), gradients and steps."""
    updates: tuple[FloatArray, FloatArray] | None = None
    """u and v, each (updates, m + k, R); columns follow the previous call's rows."""

    def _times(self, x: FloatArray, transposed: bool = False) -> FloatArray:
        """H x, or H^T x, column by column, for ``x`` (m + k, R) (the full data's inverse is
        symmetric)."""
        out = self.h_inv @ x
        if self.updates is not None:
            u, v = self.updates[::-1] if transposed else self.updates
            out += np.einsum("tdr,tr->dr", u, np.einsum("tdr,dr->tr", v, x))
        return out

    def __call__(
        self, c: FloatArray, c_points: FloatArray, theta: FloatArray | None, rows: IntArray
    ) -> FloatArray:
        grad = gradients(self.batch, c, c_points, theta)
        if self.last is not None:
            rows_before, grad_before, s = self.last
            if len(rows) < len(rows_before):  # the batch dropped its stopped replicates
                keep = np.isin(rows_before, rows)
                grad_before, s = grad_before[:, keep], s[:, keep]
                if self.updates is not None:
                    self.updates = (self.updates[0][:, :, keep], self.updates[1][:, :, keep])
            hy = self._times(grad - grad_before)
            denom = np.einsum("dr,dr->r", s, hy)
            scale = np.sqrt(np.einsum("dr,dr->r", s, s) * np.einsum("dr,dr->r", hy, hy))
            usable = np.abs(denom) > 1e-12 * scale
            weight = np.divide(1.0, denom, out=np.zeros_like(denom), where=usable)
            u = ((s - hy) * weight)[None]
            v = self._times(s, transposed=True)[None]
            if self.updates is not None:
                u = np.concatenate([self.updates[0], u])
                v = np.concatenate([self.updates[1], v])
            self.updates = (u, v)
        step = -self._times(grad)
        self.last = (rows, grad, step)
        return step


def broyden(
    batch: Batch, theta_full: FloatArray, h_inv: FloatArray, c: FloatArray
) -> tuple[FloatArray, BoolArray]:
    """Each replicate's fit from the full-data fit, for the replicates' counts ``c`` (N, R, rows in
    the layout's order: ``Batch.arrange``): its first step from the full fit's p with the full
    data's Hessian inverse ``h_inv``, then ``_Broyden`` steps while each step is at most as long
    as the one before. Returns the (R, m + k) estimates and whether each converged (the estimate
    of one that did not is NaN: it needs a fit of its own)."""
    return _in_groups(
        lambda part: _iterate(batch, theta_full, part, _Broyden(batch, h_inv), COMPACT, 1.0),
        theta_full,
        c,
    )


def _in_groups(
    fit: Callable[[FloatArray], tuple[FloatArray, BoolArray]], theta_full: FloatArray, c: FloatArray
) -> tuple[FloatArray, BoolArray]:
    """``fit`` over the columns of ``c`` in groups whose (m + k)^2 matrices fit HESSIAN_CELLS."""
    width = max(1, HESSIAN_CELLS // len(theta_full) ** 2)
    parts = [fit(c[:, i : i + width]) for i in range(0, c.shape[1], width)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _iterate(
    batch: Batch,
    theta_full: FloatArray,
    c: FloatArray,
    step_at: Callable[[FloatArray, FloatArray, FloatArray | None, IntArray], FloatArray],
    compact: float,
    give_up: float,
) -> tuple[FloatArray, BoolArray]:
    """The replicates' iteration from the full fit: ``step_at(c, c_points, theta, rows)`` gives the
    (m + k, R) steps of the replicates ``rows`` (columns of the first ``c``) at ``theta`` (None: at
    the full fit). A replicate has converged once its step is below REPLICATE_TOL and its next
    one, extrapolated from the last two, would be too; it fails once a step is more than
    ``give_up`` times the one before. Stopped replicates leave the batch once at most ``compact``
    of it is going on."""
    m = batch.pb.m
    c_points = points(batch, c)
    out = np.full((len(theta_full), c.shape[1]), np.nan)
    converged = np.zeros(c.shape[1], dtype=bool)
    rows = np.arange(c.shape[1])
    step = step_at(c, c_points, None, rows)
    theta = theta_full[:, None] + step
    last = np.abs(step).max(axis=0)
    done = last < REPLICATE_TOL
    out[:, done] = theta[:, done]
    converged[done] = True
    going = ~done & np.isfinite(last)
    for _ in range(CHORD_MAX_ITER):
        if not going.all() and going.sum() <= compact * len(rows):
            c, c_points = np.compress(going, c, axis=1), c_points[:, going]
            rows, theta, last, going = rows[going], theta[:, going], last[going], going[going]
        if not going.any():
            break
        step = step_at(c, c_points, theta, rows)
        size = np.abs(step).max(axis=0)
        theta += step
        # Only a replicate riding along after it stopped can have a last step of exactly 0.
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = size / last
        done = going & (size < REPLICATE_TOL) & (size * rate < REPLICATE_TOL)
        theta[:m, done] -= theta[:m, done].mean(axis=0)
        out[:, rows[done]] = theta[:, done]
        converged[rows[done]] = True
        going &= ~done & (rate <= give_up)
        last = size
    return out.T, converged


def derivatives(
    batch: Batch, c: FloatArray, c_points: FloatArray, theta: FloatArray | None
) -> tuple[FloatArray, FloatArray]:
    """(m + k, R) gradients and (R, m + k, m + k) Hessians X^T diag(c p (1 - p)) X, with the gauge
    term of ``_style_likelihood.hessian``, for the replicates' counts ``c`` (N, R, in the layout's
    order) and ``c_points`` = X^T (c y) (``points``), at ``theta`` (m + k, R), or at the full fit
    when ``theta`` is None."""
    pb = batch.pb
    m, k, width = pb.m, pb.k, c.shape[1]
    # Per pair and replicate: the expected points' sum, the curvatures' sum, then the sums of the
    # curvature times each feature, laid out so that one reduction a run makes them all.
    pair_sums = np.empty((len(batch.lengths), 2 + k, width))
    g_beta = np.zeros((k, width))
    h_beta = np.zeros((len(batch.products), width))
    for block in batch.blocks:
        v = block.votes
        zt = batch.zt[:, v]
        terms = np.empty((block.size, 2 + k, width))
        expected, curv = terms[:, 0], terms[:, 1]
        if theta is None:
            np.multiply(c[v], batch.prob[v, None], out=expected)
            np.multiply(c[v], batch.curvature[v, None], out=curv)
        else:
            p = np.reciprocal(_odds_against(batch, block, theta))
            np.multiply(c[v], p, out=expected)
            np.multiply(expected, p, out=curv)
            np.subtract(expected, curv, out=curv)
        for j in range(k):
            np.multiply(curv, zt[j, :, None], out=terms[:, 2 + j])
        block.pair_sums(terms, pair_sums[block.pairs])
        g_beta += zt @ expected
        h_beta += batch.products[:, v] @ curv
    per_model = batch.scatter.signed(np.delete(pair_sums, 1, axis=1), LN10)
    hess = np.empty((width, m + k, m + k))
    hess[:, :m, :m] = pb.pairs.laplacian((LN10 * LN10) * pair_sums[batch.pair_place, 1].T)
    hess[:, :m, m:] = per_model[:, 1:].transpose(2, 0, 1)
    hess[:, m:, :m] = per_model[:, 1:].transpose(2, 1, 0)
    row, col = np.triu_indices(k)
    row, col = row + m, col + m
    hess[:, row, col] = h_beta.T
    hess[:, col, row] = h_beta.T
    grad = np.concatenate([per_model[:, 0], g_beta])
    grad -= c_points
    return grad, hess


def _newton_steps(grad: FloatArray, hess: FloatArray) -> FloatArray:
    """(m + k, R) steps -H^-1 g; all NaN if a Hessian is exactly singular (a replicate whose
    probabilities saturated along a separating direction; rare enough that the whole batch then
    goes to the damped fits of their own, which tell it apart)."""
    try:
        steps = np.linalg.solve(hess, grad.T[:, :, None])[:, :, 0].T
    except np.linalg.LinAlgError:
        return np.full(grad.shape, np.nan)
    return np.negative(steps, dtype=np.float64)


def newton(batch: Batch, theta_full: FloatArray, c: FloatArray) -> tuple[FloatArray, BoolArray]:
    """Each replicate's fit by Newton steps from the full-data fit, for the replicates' counts
    ``c`` (N, R, in the layout's order): ``broyden``'s iteration and stopping rule with each
    step's own Hessian. Returns the (R, m + k) estimates and whether each converged (NaN where
    not: undamped steps that stop contracting, or a singular Hessian; such a replicate needs a
    damped fit of its own)."""

    def step(
        c: FloatArray, c_points: FloatArray, theta: FloatArray | None, rows: IntArray
    ) -> FloatArray:
        return _newton_steps(*derivatives(batch, c, c_points, theta))

    # A Newton step costs many passes, copying the counts two: stopped ones leave at once. Its
    # steps shrink fast where it works; one not halving its step is not going to.
    return _in_groups(lambda part: _iterate(batch, theta_full, part, step, 1.0, 0.5), theta_full, c)
