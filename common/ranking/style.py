"""Style-controlled Bradley-Terry: model scores with answer length and markdown held equal.

Method ("Controlling for Style in Chatbot Arena", LMSYS, 2024-08-28; FastChat's code for it).
Each vote compares answer a (model_a) and answer b on K style features, by default answer length
in tokens, markdown headers, list items and bold spans, given as raw non-negative counts per side.
Per vote and feature the normalized difference d = (a - b) / (a + b + 1) is taken (FastChat's
code, which produced the blog's numbers; the blog's text writes (a - b) / (a + b), which the +1
turns into 0 for 0 vs 0 and grades small counts: 1 header vs 0 is 0.5, not the same 1 as 10 vs 0),
then standardized over the ranked votes: z = (d - mean) / sd, sd with ddof 0. One logistic model
holds the model indicators and the features:

    logit P(a beats b) = ln(10) (r_a - r_b) + z . beta,

a tie counting as half a win and half a loss (one row with label 1/2), exactly as in the plain
fit. Ratings r (log10-odds, gauge mean(r) = 0) give scores 400 r + 1000 on the plain fit's
scale; beta is in natural log-odds per standard deviation of the feature's normalized difference,
reported as well in Elo, 400 / ln(10) beta: the score gap that a one-SD style difference is worth.
There is no prior on r and no penalty on beta: this is the exact maximum-likelihood estimate.
(FastChat adds a ridge of 0.25 |theta|^2 because sklearn / L-BFGS needs one; the blog's method
does not call for it, and at Arena sizes it moves nothing visible.)

Features out of the fit. A feature whose normalized difference has zero variance over the ranked
votes carries no information (z would be rounding noise); one that the model indicators and the
features before it explain exactly has no identified coefficient. Both are dropped and reported
with the reason; with every feature dropped the fit is the plain fit.

Existence. Only the plain fit's main strongly connected "beats-or-ties" component is ranked
(``_components``; the others get the plain fit's reasons), using the votes inside it; a model that
never lost has no finite score with or without style. On that component the MLE can still fail
to exist if the features separate the outcomes (only on tiny data): the fit then raises
``NotEnoughData`` rather than report where an optimizer stopped.

Estimator. Newton's method on the per-vote likelihood with a backtracking line search, started
at the plain fit's ratings (exact and cheap, on pair counts) and beta = 0. Votes are oriented from
the lower-indexed model of their pair and sorted by pair, so a gradient or a Hessian costs O(N k),
not O(N m): the ratings block of the Hessian is ln(10)^2 times the Laplacian of per-pair sums of
w = p (1 - p), the cross block ln(10) times per-pair sums of w z scattered to the two models (+ to
the first, - to the second), the style block Z^T diag(w) Z; c 11^T added to the ratings block
fixes the gauge as in the plain fit. It converges quadratically, in ~5 iterations, to
max |step| < 1e-11 (4e-9 Elo); a fit that instead runs away (|r| or |beta| beyond 50, or a
singular Hessian) has no MLE.

Bootstrap (default). B replicates (default 1000), each Multinomial(N, 1/N) counts over the N
ranked votes used as per-vote weights (no resampled rows), replicate b drawn from child b of
``numpy.random.SeedSequence(seed)``. The full data's standardization is kept (as FastChat does).
Each replicate starts at the full fit: a first step with the full-data Hessian needs no new logits
(p is the full fit's), then chord steps (the same Hessian, a new gradient; contraction by a factor
40 to 100 per step at 1M votes, much less on small boards) run until the next step would be below
1e-7 (4e-5 Elo): 2-3 gradients in all at 1M votes, ~11 at 3k. Above 32k votes each replicate is
fitted on its own, its gradients over cache-sized blocks of whole pairs (the draw is blocked the
same way); up to 32k votes, where per-call overhead would dominate, consecutive replicates are
fitted together in chunks of ~1M counts, one pass per step for the whole chunk (``_style_batch``).
Chunks depend only on N and B, never on the threads, which share out whole chunks: the output is
bit-identical for a seed whatever the number of worker threads. A replicate where the chord steps
do not contract gets its own damped Newton; one without an MLE (its beats-or-ties graph not
strongly connected, or separated by the features) is fitted with the plain bootstrap's ridge
RIDGE/2 |theta|^2 and counted in ``separable_replicates``. CIs are the 2.5% / 97.5% quantiles of
replicate scores and betas; the reported values are the full-data fit.

Sandwich (``ci_method="sandwich"``). Normal intervals from H^+ G H^+, G the sum over votes of
x x^T (y - p)^2: one Hessian-sized pass, about the time of one fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from common.errors import InvalidInput, NotEnoughData
from common.ranking._components import components
from common.ranking._quantiles import percentile_interval
from common.ranking._sandwich import Z_975
from common.ranking._style_bootstrap import bootstrap_thetas
from common.ranking._style_likelihood import fit_full, sandwich_se
from common.ranking._style_problem import build, normalized_difference
from common.ranking._threads import default_threads, single_threaded_blas
from common.ranking.bradley_terry import check_options, ranked_entries
from common.ranking.counts import Votes, aggregate
from common.ranking.result import CIMethod, Ranking
from common.ranking.scale import LN10, SCALE, SCORE_LIMIT, to_score
from common.scores import round6

STYLE_FEATURES: tuple[str, ...] = ("length", "headers", "lists", "bold")
"""The default features: answer tokens, markdown headers (h1-h6), list items, bold spans."""
ELO_PER_LOGIT = SCALE / LN10
"""Elo points per natural log-odds unit: 400 / ln(10)."""


@dataclass(frozen=True, eq=False)
class StyleFeatures:
    """Raw style counts of each vote's two answers: ``a[k, j]`` is feature ``names[j]`` of vote
    k's model_a answer, ``b`` the same for model_b; shape (votes, features), non-negative."""

    a: NDArray[Any]
    b: NDArray[Any]
    names: tuple[str, ...] = STYLE_FEATURES

    def __post_init__(self) -> None:
        a, b = np.asarray(self.a), np.asarray(self.b)
        if a.ndim != 2 or a.shape != b.shape:
            raise InvalidInput("style features: a and b must be 2-D arrays of one shape")
        if a.shape[1] != len(self.names):
            raise InvalidInput(
                f"style features: {a.shape[1]} columns but {len(self.names)} feature names"
            )
        if len(set(self.names)) != len(self.names):
            raise InvalidInput("style features: feature names must be unique")
        for side, x in (("a", a), ("b", b)):
            if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
                raise InvalidInput(f"style features: {side} must hold numbers, not {x.dtype}")
            if x.size and not np.isfinite(x).all():
                raise InvalidInput(f"style features: {side} has a missing or infinite count")
            if x.size and x.min() < 0:
                raise InvalidInput(f"style features: {side} has a negative count")
        # Stored as arrays, whatever array-like came in (the dataclass is frozen).
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "b", b)
        object.__setattr__(self, "names", tuple(self.names))


@dataclass(frozen=True)
class StyleCoefficient:
    """One feature's effect: natural log-odds per SD of its normalized difference (None when the
    feature is out of the fit, with the reason), and the mean / SD used to standardize it (None
    when nothing was ranked)."""

    feature: str
    estimate: float | None
    q025: float | None
    q975: float | None
    mean: float | None
    sd: float | None
    reason: str | None = None

    @property
    def elo(self) -> float | None:
        """The estimate in Elo: the score gap a one-SD style difference is worth."""
        return None if self.estimate is None else ELO_PER_LOGIT * self.estimate

    @property
    def elo_q025(self) -> float | None:
        return None if self.q025 is None else ELO_PER_LOGIT * self.q025

    @property
    def elo_q975(self) -> float | None:
        return None if self.q975 is None else ELO_PER_LOGIT * self.q975


@dataclass(frozen=True)
class StyleRanking:
    """A style-controlled leaderboard: the models (a plain ``Ranking``, scores controlled for
    style) and the style coefficients, with the votes the fit used and those it left out (votes
    touching a model outside the ranked component)."""

    ranking: Ranking
    coefficients: tuple[StyleCoefficient, ...]
    votes_used: int
    votes_left_out: int

    def to_records(self) -> dict[str, Any]:
        """JSON-ready: the entries as ``Ranking.to_records`` and one object per coefficient."""
        style = []
        for c in self.coefficients:
            record: dict[str, Any] = {
                "feature": c.feature,
                "estimate": _optional6(c.estimate),
                "q025": _optional6(c.q025),
                "q975": _optional6(c.q975),
                "elo": _optional6(c.elo),
                "elo_q025": _optional6(c.elo_q025),
                "elo_q975": _optional6(c.elo_q975),
                "mean": _optional6(c.mean),
                "sd": _optional6(c.sd),
            }
            if c.reason is not None:
                record["reason"] = c.reason
            style.append(record)
        return {
            "entries": self.ranking.to_records(),
            "style": style,
            "votes_used": self.votes_used,
            "votes_left_out": self.votes_left_out,
        }

    def to_table(self) -> str:
        """The model table, then one line per style coefficient (Elo per SD, with its CI)."""
        lines = [self.ranking.to_table(), "", f"{'style feature':<16} {'Elo/SD':>8}  95% CI"]
        for c in self.coefficients:
            if c.elo is None:
                lines.append(f"{c.feature:<16} {'-':>8}  {c.reason}")
                continue
            interval = (
                "-"
                if c.elo_q025 is None or c.elo_q975 is None
                else f"[{c.elo_q025:.2f}, {c.elo_q975:.2f}]"
            )
            lines.append(f"{c.feature:<16} {c.elo:8.2f}  {interval}")
        lines.append(f"{self.votes_used} votes in the fit, {self.votes_left_out} left out")
        return "\n".join(lines)


def rank_with_style(
    votes: Votes,
    features: StyleFeatures,
    *,
    bootstrap: int = 1000,
    seed: int = 0,
    ci_method: CIMethod = "bootstrap",
    significant: bool = False,
    min_evals: int = 10,
    workers: int | None = None,
) -> StyleRanking:
    """Rank the models of ``votes`` controlling for ``features`` (one row per vote); see the
    module docstring. Options mean what they mean for ``rank_votes``."""
    check_options(ci_method, bootstrap, seed, min_evals)
    single_threaded_blas()
    if len(features.a) != votes.n_votes:
        raise InvalidInput(
            f"style features: {len(features.a)} rows for {votes.n_votes} votes; one row per vote"
        )
    # Alphabetical model order, so that nothing depends on how the models are numbered.
    order = np.argsort(np.asarray(votes.models, dtype=object), kind="stable")
    new_index = np.empty(len(order), dtype=np.int64)
    new_index[order] = np.arange(len(order))
    names = [votes.models[i] for i in order]
    model_a = new_index[votes.model_a]
    model_b = new_index[votes.model_b]
    counts = aggregate(Votes(tuple(names), model_a, model_b, votes.outcome))
    parts = components(counts, names)
    m_all = counts.n_models
    score = np.full(m_all, np.nan)
    low = np.full(m_all, np.nan)
    high = np.full(m_all, np.nan)
    k_all = len(features.names)
    beta = np.full(k_all, np.nan)
    beta_low = np.full(k_all, np.nan)
    beta_high = np.full(k_all, np.nan)
    mean: tuple[float | None, ...] = (None,) * k_all
    sd: tuple[float | None, ...] = (None,) * k_all
    dropped: tuple[str | None, ...] = ("no ranked votes",) * k_all
    separable = replicates = used = 0
    if parts.main.any():
        inside = parts.main[model_a] & parts.main[model_b]
        used = int(inside.sum())
        index = np.cumsum(parts.main) - 1
        diff = normalized_difference(
            np.asarray(features.a, dtype=np.float64)[inside],
            np.asarray(features.b, dtype=np.float64)[inside],
        )
        pb, standardization = build(
            index[model_a[inside]],
            index[model_b[inside]],
            np.array([1.0, 0.0, 0.5])[votes.outcome[inside]],
            diff,
            int(parts.main.sum()),
        )
        del diff
        mean, sd = standardization.mean, standardization.sd
        dropped = standardization.dropped
        kept = list(standardization.kept)
        theta, converged = fit_full(pb)
        if not converged:
            raise NotEnoughData(
                "style features separate the ranked votes' outcomes: no maximum-likelihood "
                "estimate exists (too few votes for style control)"
            )
        r, b = theta[: pb.m], theta[pb.m :]
        score[parts.main] = to_score(r)
        beta[kept] = b
        if ci_method == "bootstrap":
            replicates = bootstrap
            threads = workers if workers is not None else default_threads()
            boot, separable = bootstrap_thetas(pb, theta, bootstrap, seed, threads)
            q = percentile_interval(to_score(boot[:, : pb.m]))
            low[parts.main], high[parts.main] = q[0], q[1]
            qb = percentile_interval(boot[:, pb.m :])
            beta_low[kept], beta_high[kept] = qb[0], qb[1]
        else:
            se = sandwich_se(pb, theta)
            half = Z_975 * SCALE * se[: pb.m]
            low[parts.main] = np.clip(to_score(r) - half, -SCORE_LIMIT, SCORE_LIMIT)
            high[parts.main] = np.clip(to_score(r) + half, -SCORE_LIMIT, SCORE_LIMIT)
            beta_low[kept] = b - Z_975 * se[pb.m :]
            beta_high[kept] = b + Z_975 * se[pb.m :]
    entries = ranked_entries(names, counts, parts, score, low, high, min_evals, significant)
    coefficients = tuple(
        StyleCoefficient(
            feature=features.names[j],
            estimate=_finite(beta[j]),
            q025=_finite(beta_low[j]),
            q975=_finite(beta_high[j]),
            mean=mean[j],
            sd=sd[j],
            reason=dropped[j],
        )
        for j in range(k_all)
    )
    return StyleRanking(
        ranking=Ranking(
            entries=entries,
            n_votes=counts.n_votes,
            ci_method=ci_method,
            bootstrap=replicates,
            seed=seed,
            separable_replicates=separable,
        ),
        coefficients=coefficients,
        votes_used=used,
        votes_left_out=votes.n_votes - used,
    )


def _finite(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _optional6(value: float | None) -> float | None:
    return None if value is None else round6(value)
