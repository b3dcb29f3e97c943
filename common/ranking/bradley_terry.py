"""Ranking arena votes with Bradley-Terry: scores, bootstrap or sandwich CIs, ranks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from common.errors import InvalidInput
from common.ranking._bootstrap import bootstrap_ratings
from common.ranking._components import (
    Components,
    beats_or_ties,
    components,
    strongly_connected,
)
from common.ranking._likelihood import Problem, fit_full
from common.ranking._quantiles import percentile_interval
from common.ranking._sandwich import Z_975, sandwich_se
from common.ranking._threads import default_threads, single_threaded_blas
from common.ranking.counts import PairCounts, Votes, aggregate
from common.ranking.result import CIMethod, ModelRanking, Ranking
from common.ranking.scale import SCALE, SCORE_LIMIT, FloatArray, to_score


def fit_ratings(counts: PairCounts) -> FloatArray:
    """Maximum-likelihood ratings (log10-odds units, mean 0) of a strongly connected arena."""
    single_threaded_blas()
    keep = np.ones(counts.n_models, dtype=bool)
    if counts.n_models < 2 or not strongly_connected(beats_or_ties(counts)[None])[0]:
        raise InvalidInput("the beats-or-ties graph is not strongly connected: no MLE exists")
    pb = Problem.build(counts, keep)
    return fit_full(pb)


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
    check_options(ci_method, bootstrap, seed, min_evals)
    single_threaded_blas()
    counts, names = _alphabetical(counts, models)
    parts = components(counts, names)
    m_all = counts.n_models
    score = np.full(m_all, np.nan)
    low = np.full(m_all, np.nan)
    high = np.full(m_all, np.nan)
    separable = 0
    replicates = 0
    if parts.main.any():
        pb = Problem.build(counts, parts.main)
        r = fit_full(pb)
        if ci_method == "bootstrap":
            replicates = bootstrap
            threads = workers if workers is not None else default_threads()
            boot, separable = bootstrap_ratings(pb, r, bootstrap, seed, threads)
            q = percentile_interval(to_score(boot))
            low[parts.main], high[parts.main] = q[0], q[1]
        else:
            half = Z_975 * SCALE * sandwich_se(pb, r)
            low[parts.main] = to_score(r) - half
            high[parts.main] = to_score(r) + half
            low, high = (
                np.clip(low, -SCORE_LIMIT, SCORE_LIMIT),
                np.clip(high, -SCORE_LIMIT, SCORE_LIMIT),
            )
        score[parts.main] = to_score(r)
    entries = ranked_entries(names, counts, parts, score, low, high, min_evals, significant)
    return Ranking(
        entries=entries,
        n_votes=counts.n_votes,
        ci_method=ci_method,
        bootstrap=replicates,
        seed=seed,
        separable_replicates=separable,
    )


def check_options(ci_method: CIMethod, bootstrap: int, seed: int, min_evals: int) -> None:
    """The options every ranking entry point shares; a bad one raises ``InvalidInput``."""
    if ci_method not in ("bootstrap", "sandwich"):
        raise InvalidInput(f"ci_method: expected 'bootstrap' or 'sandwich', got {ci_method!r}")
    if ci_method == "bootstrap" and bootstrap < 1:
        raise InvalidInput("bootstrap: at least one replicate is needed")
    if seed < 0 or min_evals < 0:
        raise InvalidInput("seed and min_evals must be >= 0")


def ranked_entries(
    names: Sequence[str],
    counts: PairCounts,
    parts: Components,
    score: FloatArray,
    low: FloatArray,
    high: FloatArray,
    min_evals: int,
    significant: bool,
) -> tuple[ModelRanking, ...]:
    """One line per model (NaN score = not fitted), ranked first, then the others by name."""
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
    return tuple(entries)


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
