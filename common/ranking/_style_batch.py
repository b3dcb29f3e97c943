"""Bootstrap replicates of a small board fitted together: the chord iteration on a batch.

On a few thousand votes a replicate's chord iteration takes ~10 gradients, each a dozen numpy
calls on arrays too small to pay for the call. Here R replicates' counts are one (N, R) matrix,
votes by rows, and every step is one pass for all of them: the logits are the design (ln 10 at
the vote's first model, -ln 10 at its second, then the features) times theta, the gradient the
transposed products (the ratings part summed per model vote by vote, ``Incidence``), and the
chord step one product with the full-data Hessian inverse. Passes go over blocks of votes whose
(V, R) arrays stay in cache. Each replicate follows the rule of ``_style_likelihood.chord`` on its
own and leaves the batch when it stops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.ranking._components import BoolArray
from common.ranking._incidence import Incidence
from common.ranking._style_likelihood import CHORD_MAX_ITER, REPLICATE_TOL
from common.ranking._style_problem import StyleProblem
from common.ranking.scale import LN10, FloatArray

BLOCK_CELLS = 1 << 17
"""(vote, replicate) cells per block of a pass: 1 MB per array, which stays in cache."""
COMPACT = 0.75
"""The batch drops its stopped replicates once at most this share of its columns is going on.
Copying the counts costs about as much as a pass, so a replicate that stopped (its estimate
taken) rides along until a quarter of the batch has stopped."""


@dataclass(frozen=True, eq=False)
class _Block:
    votes: slice
    incidence: Incidence
    """The block's votes as items on their two models."""


@dataclass(frozen=True, eq=False)
class Batch:
    """The votes of ``pb`` laid out for passes over up to R replicates at once."""

    pb: StyleProblem
    blocks: tuple[_Block, ...]
    prob: FloatArray
    """(N,) p at the full fit, where every replicate's first gradient is taken."""

    @classmethod
    def build(cls, pb: StyleProblem, prob_full: FloatArray, rows: int) -> Batch:
        """The layout for batches of up to ``rows`` replicates (it sets the block size)."""
        pair = np.repeat(np.arange(len(pb.lengths)), pb.lengths)
        first, second = pb.pairs.first[pair], pb.pairs.second[pair]
        size = max(1, BLOCK_CELLS // rows)
        blocks = []
        for start in range(0, pb.n, size):
            votes = slice(start, min(start + size, pb.n))
            blocks.append(_Block(votes, Incidence.build(first[votes], second[votes], pb.m)))
        return cls(pb=pb, blocks=tuple(blocks), prob=prob_full)


def gradients(batch: Batch, c: FloatArray, cy: FloatArray, theta: FloatArray | None) -> FloatArray:
    """(m + k, R) gradients of the negative log-likelihood, X^T (c p - c y), for the replicates'
    counts ``c`` (N, R) and ``cy`` = c y, at ``theta`` (m + k, R), or at the full fit when
    ``theta`` is None.

    The logits are built negated (0 - ln 10 r_first + ln 10 r_second - z . beta) so that exp
    takes them as they are; a block's residuals are its only (V, R) array."""
    pb = batch.pb
    m = pb.m
    out = np.zeros((m + pb.k, c.shape[1]))
    if theta is not None:
        scaled = LN10 * theta[:m]
        negated = np.subtract(0.0, scaled)
    with np.errstate(over="ignore"):
        for block in batch.blocks:
            v = block.votes
            if theta is None:
                resid = c[v] * batch.prob[v, None]
                resid -= cy[v]
            else:
                resid = np.take(negated, block.incidence.first, axis=0)
                resid += np.take(scaled, block.incidence.second, axis=0)
                resid += pb.zt[:, v].T @ -theta[m:]
                np.exp(resid, out=resid)
                resid += 1.0
                np.divide(c[v], resid, out=resid)
                resid -= cy[v]
            out[:m] += block.incidence.signed(resid, LN10)
            out[m:] += pb.zt[:, v] @ resid
    return out


def chord(
    batch: Batch, theta_full: FloatArray, h_inv: FloatArray, c: FloatArray
) -> tuple[FloatArray, BoolArray]:
    """Each replicate's fit by Newton steps with the full-data Hessian, from the full-data fit:
    ``_style_likelihood.chord`` for each column of ``c`` (N, R), with its first step (from the
    full fit's p), stopping rule and gauge. Returns the (R, m + k) estimates and whether each
    converged (the estimate of one that did not is NaN: it needs a fit of its own)."""
    m = batch.pb.m
    cy = c * batch.pb.y[:, None]
    out = np.full((len(theta_full), c.shape[1]), np.nan)
    converged = np.zeros(c.shape[1], dtype=bool)
    step = -(h_inv @ gradients(batch, c, cy, None))
    theta = theta_full[:, None] + step
    last = np.abs(step).max(axis=0)
    done = last < REPLICATE_TOL
    out[:, done] = theta[:, done]
    converged[done] = True
    rows = np.arange(c.shape[1])
    going = ~done
    for _ in range(CHORD_MAX_ITER):
        if going.sum() <= COMPACT * len(rows):
            c, cy = np.compress(going, c, axis=1), np.compress(going, cy, axis=1)
            rows, theta, last, going = rows[going], theta[:, going], last[going], going[going]
        if not going.any():
            break
        step = -(h_inv @ gradients(batch, c, cy, theta))
        size = np.abs(step).max(axis=0)
        theta += step
        # Only a replicate riding along after it stopped can have a last step of exactly 0.
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = size / last
        done = going & (size * rate < REPLICATE_TOL)
        theta[:m, done] -= theta[:m, done].mean(axis=0)
        out[:, rows[done]] = theta[:, done]
        converged[rows[done]] = True
        going &= ~done & (rate <= 0.5)
        last = size
    return out.T, converged
