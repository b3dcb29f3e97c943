"""Bradley-Terry ranking of arena votes: scores, bootstrap or sandwich CIs, ranks. Pure numpy/scipy.

Model. A vote between models i and j is a win for i (1), a tie (1/2) or a loss (0);
P(i beats j) = 1 / (1 + 10^(r_j - r_i)), a tie counts as half a win and half a loss, the ratings r
are the maximum-likelihood estimate with the gauge mean(r) = 0, and the reported score is
400 r + 1000. This is upstream BixArena's (and FastChat's) model.

Estimator. Votes are aggregated once into per-pair (win, tie, loss) counts; the likelihood depends
on the data only through them, so every later step costs O(pairs), not O(votes). The full-data fit
is a damped Newton method on those counts: the Hessian is the graph Laplacian with weights
ln(10)^2 n p (1 - p), made invertible by adding c 11^T (which fixes the gauge: the step then sums to
zero). Newton converges quadratically, to ~1e-10 Elo, where upstream's L-BFGS-B (maxiter 100,
gtol 1e-6) stops ~0.02 Elo short.

Existence. The MLE exists iff the "beats-or-ties" directed graph (i -> j when i won or tied
against j at least once) is strongly connected. We rank its largest strongly connected component
and report every other model with a reason ("never lost", "never won", "never won against the
ranked models", "never lost against the ranked models", "not connected to the main comparison
graph") instead of a score that would be an artefact of where an optimizer stopped. No
regularization touches a well-posed fit: the safeguard moves no score on well-posed data.

Bootstrap. The votes of the ranked component are resampled B times as Multinomial(N, counts/N)
over the (pair, outcome) cells; this has the same law, for everything the fit sees, as upstream's
multinomial over ordered (model1, model2, outcome) cells and as resampling the N votes. We draw it
exactly but faster than numpy's multinomial (one binomial per cell): independent Poisson counts
with total rate N - 2 sqrt(N) (given their total T they are Multinomial(T, p)), a row with T > N
drawn again, then the N - T missing votes drawn as categorical samples. Replicates are fitted
together, warm-started at the full-data fit: a chord iteration (Newton with the full-data Hessian,
one factorization for all replicates) contracts by ~1/sqrt(votes per model) per step; a replicate
where it does not contract gets its own damped Newton. A replicate whose beats-or-ties graph is
not strongly connected (e.g. a model's only loss was not drawn) has no MLE; it alone is fitted
with a ridge RIDGE/2 |r|^2 (a N(0, 10^2) prior on r, i.e. 4000 Elo standard deviation), which keeps
its ratings finite: a separated model lands ~1000-2500 Elo beyond the others, and such replicates
are counted in ``Ranking.separable_replicates``. Replicates come in chunks (8 to 256 replicates,
fewer for more cells; the size depends on the data only), chunk k drawing from child k of
SeedSequence(seed), so the output is bit-identical for a given seed and data whatever the number
of worker threads. CI = 2.5% / 97.5% quantiles (linear interpolation) of replicate
scores; the reported score is the full-data fit.

Sandwich. ``ci_method="sandwich"`` gives the normal-approximation interval from
H^+ G H^+ (G = sum over votes of the outer products of their score contributions): one Hessian,
no resampling; it agrees with the bootstrap on large arenas.

Every reported number is clipped to +-SCORE_LIMIT so it fits PostgreSQL's DECIMAL(10,6); only
contrived data or prior-determined replicates come near it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from scipy.sparse import csgraph
from scipy.special import expit, pdtr

from common.errors import InvalidInput

OUTCOMES: tuple[str, str, str] = ("model1", "model2", "tie")
"""Outcome codes 0, 1, 2 of a vote, seen from model_a (upstream's model1)."""

SCALE = 400.0
OFFSET = 1000.0
LN10 = math.log(10.0)
SCORE_LIMIT = 9999.0
RIDGE = 1e-2
# Replicates per chunk: about CHUNK_CELLS sampled cells, so a chunk's arrays stay in cache.
CHUNK_CELLS = 2**17
Z_975 = 1.959963984540054

CIMethod = Literal["bootstrap", "sandwich"]

# Above this many (model, model, outcome) cells, aggregation sorts instead of counting into a
# dense table (whose size grows with models^2).
_DENSE_CELL_LIMIT = 12_000_000
_FIT_TOL = 1e-11
_REPLICATE_TOL = 1e-7
_CHORD_MAX_ITER = 30
_NEWTON_MAX_ITER = 200

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


# --- inputs -------------------------------------------------------------------------------------
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


# --- outputs ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelRanking:
    """One model's line. ``rank is None`` exactly when ``reason`` says why it is not ranked; the
    scores are None only when the model could not be fitted (a min_evals drop keeps them)."""

    model: str
    bt_score: float | None
    bootstrap_q025: float | None
    bootstrap_q975: float | None
    rank: int | None
    vote_count: int
    reason: str | None = None


@dataclass(frozen=True)
class Ranking:
    """A leaderboard: ranked entries by rank, then the unranked ones by name."""

    entries: tuple[ModelRanking, ...]
    n_votes: int
    ci_method: CIMethod
    bootstrap: int
    """Replicates drawn (0 with the sandwich CI)."""
    seed: int
    separable_replicates: int
    """Replicates without an MLE, fitted with the RIDGE prior (see the module docstring)."""

    @property
    def ranked(self) -> tuple[ModelRanking, ...]:
        return tuple(e for e in self.entries if e.rank is not None)

    @property
    def unranked(self) -> tuple[ModelRanking, ...]:
        return tuple(e for e in self.entries if e.rank is None)

    def to_records(self) -> list[dict[str, Any]]:
        """JSON-ready objects; numbers rounded to DECIMAL(10,6); ``reason`` only when unranked."""
        records: list[dict[str, Any]] = []
        for e in self.entries:
            record: dict[str, Any] = {
                "model": e.model,
                "bt_score": _round6(e.bt_score),
                "bootstrap_q025": _round6(e.bootstrap_q025),
                "bootstrap_q975": _round6(e.bootstrap_q975),
                "rank": e.rank,
                "vote_count": e.vote_count,
            }
            if e.reason is not None:
                record["reason"] = e.reason
            records.append(record)
        return records

    def to_table(self) -> str:
        """A fixed-width text table for people; unranked models last, with their reason."""
        ci = "95% CI" if self.ci_method == "sandwich" else f"95% CI ({self.bootstrap} bootstrap)"
        lines = [f"{'rank':>4}  {'model':<32} {'score':>9}  {ci:<24} {'votes':>8}  note"]
        for e in self.entries:
            rank = "-" if e.rank is None else str(e.rank)
            score = "-" if e.bt_score is None else f"{e.bt_score:9.2f}"
            interval = (
                "-"
                if e.bootstrap_q025 is None or e.bootstrap_q975 is None
                else f"[{e.bootstrap_q025:.2f}, {e.bootstrap_q975:.2f}]"
            )
            lines.append(
                f"{rank:>4}  {e.model:<32} {score:>9}  {interval:<24} {e.vote_count:>8}  "
                f"{e.reason or ''}".rstrip()
            )
        lines.append(
            f"{len(self.ranked)} ranked, {len(self.unranked)} not ranked, {self.n_votes} votes"
        )
        return "\n".join(lines)


def _round6(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


# --- which models can be ranked -----------------------------------------------------------------
@dataclass(frozen=True)
class _Components:
    main: NDArray[np.bool_]
    reasons: dict[int, str]


def _beats_or_ties(counts: PairCounts) -> sparse.csr_array:
    """Directed graph with i -> j when i won or tied against j at least once."""
    fwd = (counts.wins + counts.ties) > 0
    back = (counts.losses + counts.ties) > 0
    rows = np.concatenate([counts.first[fwd], counts.second[back]])
    cols = np.concatenate([counts.second[fwd], counts.first[back]])
    m = counts.n_models
    return sparse.csr_array((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(m, m))


def _components(counts: PairCounts, models: Sequence[str]) -> _Components:
    """The largest strongly connected component (where the MLE exists) and why others are out."""
    m = counts.n_models
    graph = _beats_or_ties(counts)
    _, label = csgraph.connected_components(graph, directed=True, connection="strong")
    size = np.bincount(label, minlength=m)
    same = label[counts.first] == label[counts.second]
    inner_votes = np.bincount(
        label[counts.first[same]],
        weights=(counts.wins + counts.ties + counts.losses)[same],
        minlength=m,
    )
    # Largest component; ties broken by votes inside it, then by its alphabetically first model
    # (``models`` is in alphabetical order).
    first_name: dict[int, str] = {}
    for i, name in enumerate(models):
        first_name.setdefault(int(label[i]), name)
    best = min(first_name, key=lambda c: (-size[c], -inner_votes[c], first_name[c]))
    main = (label == best) & (size[best] >= 2)
    reasons: dict[int, str] = {}
    has_out = np.diff(graph.indptr) > 0
    has_in = np.bincount(graph.indices, minlength=m) > 0
    if main.any():
        start = int(np.flatnonzero(main)[0])
        below = np.zeros(m, dtype=bool)
        below[csgraph.breadth_first_order(graph, start, return_predecessors=False)] = True
        above = np.zeros(m, dtype=bool)
        transposed = graph.T.tocsr()
        above[csgraph.breadth_first_order(transposed, start, return_predecessors=False)] = True
    for i in map(int, np.flatnonzero(~main)):
        if counts.vote_count[i] == 0:
            reasons[i] = "no votes"
        elif not has_in[i]:
            reasons[i] = "never lost"
        elif not has_out[i]:
            reasons[i] = "never won"
        elif not main.any():
            reasons[i] = "no group of models both won and lost against each other"
        elif below[i] and not above[i]:
            reasons[i] = "never won against the ranked models"
        elif above[i] and not below[i]:
            reasons[i] = "never lost against the ranked models"
        else:
            reasons[i] = "not connected to the main comparison graph"
    return _Components(main=main, reasons=reasons)


# --- the likelihood on a well-posed component ---------------------------------------------------
@dataclass(frozen=True, eq=False)
class _Problem:
    """Pairs of the ranked component, re-indexed 0..m-1, with the matrices the fits reuse."""

    m: int
    first: IntArray
    second: IntArray
    wins: FloatArray
    ties: FloatArray
    losses: FloatArray
    incidence: sparse.csr_array
    """(pairs, m): +1 at first, -1 at second; ``x @ incidence`` scatters pair terms to models."""
    touches: sparse.csr_array
    """(pairs, m): |incidence|, for Laplacian diagonals."""

    @property
    def score(self) -> FloatArray:
        """Points of ``first``: a win 1, a tie 1/2."""
        return self.wins + 0.5 * self.ties

    @property
    def total(self) -> FloatArray:
        return self.wins + self.ties + self.losses

    @classmethod
    def build(cls, counts: PairCounts, keep: NDArray[np.bool_]) -> _Problem:
        index = np.cumsum(keep) - 1
        inside = keep[counts.first] & keep[counts.second]
        first = index[counts.first[inside]]
        second = index[counts.second[inside]]
        m = int(keep.sum())
        p = len(first)
        rows = np.repeat(np.arange(p), 2)
        cols = np.stack([first, second], axis=1).ravel()
        signs = np.tile(np.array([1.0, -1.0]), p)
        incidence = sparse.csr_array((signs, (rows, cols)), shape=(p, m))
        return cls(
            m=m,
            first=first,
            second=second,
            wins=counts.wins[inside].astype(np.float64),
            ties=counts.ties[inside].astype(np.float64),
            losses=counts.losses[inside].astype(np.float64),
            incidence=incidence,
            touches=abs(incidence).tocsr(),
        )

    def laplacian(self, weights: FloatArray, ridge: float = 0.0) -> FloatArray:
        """Stack of A^T diag(w) A (+ ridge I) for weights (B, pairs); when ridge is 0, c 11^T is
        added so the matrix is invertible and a solve against a zero-sum vector sums to zero."""
        b, m = len(weights), self.m
        flat = np.zeros((b, m * m))
        flat[:, self.first * m + self.second] = -weights
        flat[:, self.second * m + self.first] = -weights
        out = flat.reshape(b, m, m)
        diag = np.asarray(weights @ self.touches)
        idx = np.arange(m)
        # 1e-12 of the mean curvature on the diagonal changes a step by ~1e-12 relative, but keeps
        # the matrix invertible when win probabilities saturate to exactly 0 or 1.
        scale = diag.mean(axis=1)
        out[:, idx, idx] = diag + (ridge + 1e-12 * scale + 1e-300)[:, None]
        if ridge == 0.0:
            out += (scale / m)[:, None, None]
        return out

    def loss(self, r: FloatArray, s: FloatArray, n: FloatArray, ridge: float) -> FloatArray:
        """Negative log-likelihood (+ ridge/2 |r|^2) per replicate."""
        x = LN10 * (r[:, self.first] - r[:, self.second])
        value = (n * np.logaddexp(0.0, x) - s * x).sum(axis=1)
        return value + 0.5 * ridge * (r * r).sum(axis=1)

    def gradient(self, r: FloatArray, s: FloatArray, n: FloatArray, ridge: float) -> FloatArray:
        """Gradient of ``loss`` per replicate (the hot loop of the bootstrap: done in place)."""
        x = r[:, self.first]
        x -= r[:, self.second]
        x *= -LN10
        np.exp(x, out=x)
        x += 1.0
        np.divide(n, x, out=x)  # expected points of `first`
        x -= s
        grad = np.asarray(x @ self.incidence)
        grad *= LN10
        if ridge:
            grad += ridge * r
        return grad

    def curvature(self, r: FloatArray, n: FloatArray) -> FloatArray:
        """Hessian weights ln(10)^2 n p (1 - p) per pair."""
        prob = expit(LN10 * (r[:, self.first] - r[:, self.second]))
        return LN10 * LN10 * n * prob * (1.0 - prob)


def _newton(
    pb: _Problem, r0: FloatArray, s: FloatArray, n: FloatArray, ridge: float, tol: float
) -> FloatArray:
    """Damped Newton for a batch of replicates (B, m) -> (B, m), mean(r) = 0."""
    r = r0 - r0.mean(axis=1, keepdims=True)
    rows = np.arange(len(r))
    for _ in range(_NEWTON_MAX_ITER):
        if rows.size == 0:
            break
        ra, sa, na = r[rows], s[rows], n[rows]
        grad = pb.gradient(ra, sa, na, ridge)
        hess = pb.laplacian(pb.curvature(ra, na), ridge)
        step = -np.linalg.solve(hess, grad[..., None])[..., 0]
        step -= step.mean(axis=1, keepdims=True)
        before = pb.loss(ra, sa, na, ridge)
        slope = (grad * step).sum(axis=1)
        # Close to the optimum the loss change drowns in rounding; there a full Newton step is
        # safe (the quadratic model is exact to many digits) and is taken without a check.
        t = np.ones(len(rows))
        pending = -slope > 1e-8 * np.maximum(1.0, np.abs(before))
        for _ in range(60):
            if not pending.any():
                break
            trial = ra[pending] + t[pending, None] * step[pending]
            after = pb.loss(trial, sa[pending], na[pending], ridge)
            ok = after <= before[pending] + 1e-4 * t[pending] * slope[pending]
            idx = np.flatnonzero(pending)
            t[idx[~ok]] *= 0.5
            pending[idx[ok]] = False
        moved = t[:, None] * step
        r[rows] = ra + moved
        rows = rows[np.abs(moved).max(axis=1) >= tol]
    return r


def _chord(
    pb: _Problem, r_full: FloatArray, h_inv: FloatArray, s: FloatArray, n: FloatArray
) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Newton steps with the full-data Hessian for all replicates at once.

    Returns the ratings and a mask of replicates where the iteration did not contract (they need
    their own Hessian).
    """
    b = len(s)
    r = np.tile(r_full, (b, 1))
    failed = np.zeros(b, dtype=bool)
    rows = np.arange(b)
    ra, sa, na = r, s, n
    last = np.full(b, np.inf)
    for _ in range(_CHORD_MAX_ITER):
        step = pb.gradient(ra, sa, na, 0.0) @ h_inv
        np.negative(step, out=step)
        size = np.abs(step).max(axis=1)
        ra = ra + step
        r[rows] = ra
        # Linear convergence at rate size/last: stop once the next step would be below tol.
        rate = size / last  # 0 on the first pass, where `last` is inf
        done = size * np.where(np.isinf(last), 1.0, rate) < _REPLICATE_TOL
        stalled = (rate > 0.5) & ~done
        failed[rows[stalled]] = True
        keep = ~(done | stalled)
        if not keep.all():
            rows, ra, sa, na, size = rows[keep], ra[keep], sa[keep], na[keep], size[keep]
        last = size
        if rows.size == 0:
            break
    failed[rows] = True
    return r - r.mean(axis=1, keepdims=True), failed


def fit_ratings(counts: PairCounts) -> FloatArray:
    """Maximum-likelihood ratings (log10-odds units, mean 0) of a strongly connected arena."""
    keep = np.ones(counts.n_models, dtype=bool)
    _, labels = csgraph.connected_components(
        _beats_or_ties(counts), directed=True, connection="strong"
    )
    if counts.n_models < 2 or labels.max() > 0:
        raise InvalidInput("the beats-or-ties graph is not strongly connected: no MLE exists")
    pb = _Problem.build(counts, keep)
    return _fit_full(pb)


def _fit_full(pb: _Problem) -> FloatArray:
    r = _newton(pb, np.zeros((1, pb.m)), pb.score[None], pb.total[None], 0.0, _FIT_TOL)
    return r[0]


# --- bootstrap ----------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class _Inversion:
    """Inversion sampling from many discrete distributions at once, with guide tables.

    Distribution d takes the values ``low[d] + k`` with P(X <= low[d] + k) = ``cdf[start[d] + k]``
    (each table ends with a sentinel 2.0). A draw u ~ U[0, 1) jumps through a guide table to the
    last table entry at most u - 1/size below it, then walks on while the cdf is <= u; with as
    many guide slots as table entries the walk is under one step on average. This beats numpy's
    per-draw Poisson sampler by ~3x because the same few distributions are drawn millions of times.
    """

    cdf: FloatArray
    guide: IntArray
    guide_start: IntArray
    guide_size: FloatArray
    offset: IntArray
    """Value = position in ``cdf`` - offset."""

    @classmethod
    def build(cls, tables: Sequence[FloatArray], lows: Sequence[int]) -> _Inversion:
        cdfs, guides, guide_start, guide_size, offset = [], [], [], [], []
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
            pos += size + 1
            gpos += size
        return cls(
            cdf=np.concatenate(cdfs),
            guide=np.concatenate(guides),
            guide_start=np.array(guide_start, dtype=np.int64),
            guide_size=np.array(guide_size, dtype=np.float64),
            offset=np.array(offset, dtype=np.int64),
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
        while todo.size:
            flat_pos[todo] += 1
            todo = todo[self.cdf[flat_pos[todo]] <= flat_u[todo]]
        pos -= self.offset[which]
        return pos


def _poisson_tables(rates: FloatArray) -> tuple[list[FloatArray], list[int]]:
    """CDF tables of Poisson(rate) wide enough that the mass left out is below 1e-17."""
    tables, lows = [], []
    for rate in rates:
        spread = 13.0 * math.sqrt(rate)
        low = max(0, math.floor(rate - spread - 5.0))
        high = math.ceil(rate + spread + 25.0)
        tables.append(pdtr(np.arange(low, high + 1), rate))
        lows.append(low)
    return tables, lows


@dataclass(frozen=True, eq=False)
class _Cells:
    """The (pair, outcome) cells with votes, their samplers, and maps to pair points/totals."""

    counts: IntArray
    poisson: _Inversion
    which: IntArray
    """Cell -> its Poisson table (cells with the same count share one)."""
    categorical: _Inversion
    to_score: sparse.csr_array
    to_total: sparse.csr_array

    @classmethod
    def build(cls, pb: _Problem) -> _Cells:
        stacked = np.stack([pb.wins, pb.ties, pb.losses], axis=1).ravel()
        nonzero = np.flatnonzero(stacked)
        counts = stacked[nonzero].astype(np.int64)
        pair, outcome = np.divmod(nonzero, 3)
        points = np.array([1.0, 0.5, 0.0])[outcome]
        shape = (len(nonzero), len(pb.wins))
        cells = np.arange(len(nonzero))
        total = int(counts.sum())
        distinct, which = np.unique(counts, return_inverse=True)
        rates = distinct.astype(np.float64) * (_poisson_total(total) / total)
        tables, lows = _poisson_tables(rates)
        return cls(
            counts=counts,
            poisson=_Inversion.build(tables, lows),
            which=which.astype(np.int64),
            categorical=_Inversion.build([np.cumsum(counts) / total], [0]),
            to_score=sparse.csr_array((points, (cells, pair)), shape=shape),
            to_total=sparse.csr_array((np.ones(len(nonzero)), (cells, pair)), shape=shape),
        )

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


def _poisson_total(total: int) -> float:
    return max(total - 2.0 * math.sqrt(total), 0.0)


def _separable(pb: _Problem, s: FloatArray, n: FloatArray) -> NDArray[np.bool_]:
    """Replicates whose beats-or-ties graph is not strongly connected (no MLE)."""
    lost = n - s
    full_s, full_lost = pb.score, pb.total - pb.score
    candidates = np.flatnonzero(
        ((s <= 0) & (full_s > 0)).any(axis=1) | ((lost <= 0) & (full_lost > 0)).any(axis=1)
    )
    out = np.zeros(len(s), dtype=bool)
    for b in candidates:
        fwd, back = s[b] > 0, lost[b] > 0
        rows = np.concatenate([pb.first[fwd], pb.second[back]])
        cols = np.concatenate([pb.second[fwd], pb.first[back]])
        graph = sparse.csr_array(
            (np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(pb.m, pb.m)
        )
        k, _ = csgraph.connected_components(graph, directed=True, connection="strong")
        out[b] = k > 1
    return out


def _replicate_chunk(
    pb: _Problem,
    cells: _Cells,
    r_full: FloatArray,
    h_inv: FloatArray,
    seed: np.random.SeedSequence,
    size: int,
) -> tuple[FloatArray, int]:
    rng = np.random.default_rng(seed)
    x = cells.draw(rng, size)
    s = np.asarray(x @ cells.to_score)
    n = np.asarray(x @ cells.to_total)
    del x
    separable = _separable(pb, s, n)
    r = np.empty((size, pb.m))
    regular = np.flatnonzero(~separable)
    r_reg, failed = _chord(pb, r_full, h_inv, s[regular], n[regular])
    if failed.any():
        # A replicate far from the full fit (e.g. a model left with one loss) makes the chord
        # overshoot; it restarts from the full fit with its own Hessian.
        redo = regular[failed]
        start = np.tile(r_full, (len(redo), 1))
        r_reg[failed] = _newton(pb, start, s[redo], n[redo], 0.0, _REPLICATE_TOL)
    r[regular] = r_reg
    if separable.any():
        start = np.tile(r_full, (int(separable.sum()), 1))
        r[separable] = _newton(pb, start, s[separable], n[separable], RIDGE, _REPLICATE_TOL)
    return r, int(separable.sum())


def _bootstrap(
    pb: _Problem, r_full: FloatArray, replicates: int, seed: int, workers: int
) -> tuple[FloatArray, int]:
    cells = _Cells.build(pb)
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


def _sandwich(pb: _Problem, r: FloatArray) -> FloatArray:
    """Standard errors of r from H^+ G H^+ with G the outer products of per-vote scores."""
    prob = expit(LN10 * (r[pb.first] - r[pb.second]))
    h_inv = np.linalg.inv(pb.laplacian(pb.curvature(r[None], pb.total[None]))[0])
    # Per vote, d(loglik)/d(r_i - r_j) = ln10 (outcome - p); a cell's votes share it.
    spread = (
        LN10
        * LN10
        * (pb.wins * (1 - prob) ** 2 + pb.ties * (0.5 - prob) ** 2 + pb.losses * prob**2)
    )
    # G = A^T diag(spread) A; as G 1 = 0, the gauge term inside h_inv drops out of the product.
    g = (pb.incidence.T @ sparse.diags_array(spread) @ pb.incidence).toarray()
    cov = h_inv @ g @ h_inv
    return np.sqrt(np.clip(np.diag(cov), 0.0, None))


# --- ranking ------------------------------------------------------------------------------------
def _to_score(r: FloatArray) -> FloatArray:
    return np.clip(SCALE * r + OFFSET, -SCORE_LIMIT, SCORE_LIMIT)


def rank_votes(
    votes: Votes,
    *,
    bootstrap: int = 1000,
    seed: int = 0,
    ci_method: CIMethod = "bootstrap",
    significant: bool = False,
    min_evals: int = 10,
    workers: int | None = None,
) -> Ranking:
    """Rank the models of ``votes``; see the module docstring for the method."""
    return rank_counts(
        aggregate(votes),
        votes.models,
        bootstrap=bootstrap,
        seed=seed,
        ci_method=ci_method,
        significant=significant,
        min_evals=min_evals,
        workers=workers,
    )


def rank_counts(
    counts: PairCounts,
    models: Sequence[str],
    *,
    bootstrap: int = 1000,
    seed: int = 0,
    ci_method: CIMethod = "bootstrap",
    significant: bool = False,
    min_evals: int = 10,
    workers: int | None = None,
) -> Ranking:
    """Rank aggregated votes; ``models`` names the indices of ``counts``.

    The result depends on the votes only, not on how the models are numbered: everything is
    done in the alphabetical order of the names.
    """
    if len(models) != counts.n_models:
        raise InvalidInput("models: one name per model index is needed")
    if ci_method not in ("bootstrap", "sandwich"):
        raise InvalidInput(f"ci_method: expected 'bootstrap' or 'sandwich', got {ci_method!r}")
    if ci_method == "bootstrap" and bootstrap < 1:
        raise InvalidInput("bootstrap: at least one replicate is needed")
    if seed < 0 or min_evals < 0:
        raise InvalidInput("seed and min_evals must be >= 0")
    counts, names = _alphabetical(counts, models)
    parts = _components(counts, names)
    m_all = counts.n_models
    score = np.full(m_all, np.nan)
    low = np.full(m_all, np.nan)
    high = np.full(m_all, np.nan)
    separable = 0
    replicates = 0
    if parts.main.any():
        pb = _Problem.build(counts, parts.main)
        r = _fit_full(pb)
        if ci_method == "bootstrap":
            replicates = bootstrap
            threads = workers if workers is not None else (os.cpu_count() or 1)
            boot, separable = _bootstrap(pb, r, bootstrap, seed, threads)
            q = np.quantile(_to_score(boot), [0.025, 0.975], axis=0)
            low[parts.main], high[parts.main] = q[0], q[1]
        else:
            half = Z_975 * SCALE * _sandwich(pb, r)
            low[parts.main] = _to_score(r) - half
            high[parts.main] = _to_score(r) + half
            low, high = (
                np.clip(low, -SCORE_LIMIT, SCORE_LIMIT),
                np.clip(high, -SCORE_LIMIT, SCORE_LIMIT),
            )
        score[parts.main] = _to_score(r)
    kept = parts.main & (counts.vote_count >= min_evals)
    ranks = _ranks(names, score, low, high, kept, significant)
    entries = []
    for i, name in enumerate(names):
        reason = parts.reasons.get(i)
        if reason is None and not kept[i]:
            reason = f"fewer than {min_evals} evaluations"
        fitted = not np.isnan(score[i])
        entries.append(
            ModelRanking(
                model=name,
                bt_score=float(score[i]) if fitted else None,
                bootstrap_q025=float(low[i]) if fitted else None,
                bootstrap_q975=float(high[i]) if fitted else None,
                rank=ranks.get(i),
                vote_count=int(counts.vote_count[i]),
                reason=reason,
            )
        )
    entries.sort(key=lambda e: (e.rank is None, e.rank or 0, -(e.bt_score or 0.0), e.model))
    return Ranking(
        entries=tuple(entries),
        n_votes=counts.n_votes,
        ci_method=ci_method,
        bootstrap=replicates,
        seed=seed,
        separable_replicates=separable,
    )


def _alphabetical(counts: PairCounts, models: Sequence[str]) -> tuple[PairCounts, list[str]]:
    order = np.argsort(np.asarray(models, dtype=object), kind="stable")
    new_index = np.empty(len(order), dtype=np.int64)
    new_index[order] = np.arange(len(order))
    a, b = new_index[counts.first], new_index[counts.second]
    swap = a > b
    pair_order = np.lexsort((np.where(swap, a, b), np.where(swap, b, a)))
    first = np.where(swap, b, a)[pair_order]
    second = np.where(swap, a, b)[pair_order]
    wins = np.where(swap, counts.losses, counts.wins)[pair_order]
    losses = np.where(swap, counts.wins, counts.losses)[pair_order]
    return (
        PairCounts(
            n_models=counts.n_models,
            first=first,
            second=second,
            wins=wins,
            ties=counts.ties[pair_order],
            losses=losses,
            vote_count=counts.vote_count[order],
        ),
        [str(models[i]) for i in order],
    )


def _ranks(
    names: Sequence[str],
    score: FloatArray,
    low: FloatArray,
    high: FloatArray,
    kept: NDArray[np.bool_],
    significant: bool,
) -> dict[int, int]:
    idx = [int(i) for i in np.flatnonzero(kept)]
    if significant:
        # 1 + the number of other models whose whole interval lies above this one's.
        above = low[idx][None, :] > high[idx][:, None]
        return {i: 1 + int(k) for i, k in zip(idx, above.sum(axis=1), strict=True)}
    order = sorted(idx, key=lambda i: (-score[i], names[i]))
    return {i: k + 1 for k, i in enumerate(order)}
