"""Style-control benchmarks: ``rank_with_style`` against FastChat's method on the same votes.

``style/<models>x<votes>``: a synthetic arena with style (``style_arena``: hidden strengths,
per-model verbosity and markdown habits, voters preferring longer answers), ranked with B = 1000
by ``common.ranking.rank_with_style`` and by ``bench.fastchat`` (FastChat's preprocessing, one
L-BFGS-B fit on the vote rows per replicate, one process). Each side runs in its own fresh process
(``bench.isolated``). FastChat's replicates are timed on a subset and its total extrapolated
linearly (preprocessing + full fit + B x the mean replicate), as ``bench.ranking`` does for
upstream. Also measured: CPU time over all threads on both sides (``cpu_seconds``,
``baseline_cpu_seconds``, ``cpu_speedup``: what other load on the machine changes least) and our
sandwich CI (``sandwich_seconds``, fit included).
Accuracy: ``max_score_diff_elo`` / ``max_beta_diff_elo`` compare our exact MLE with FastChat's
full fit, which carries a ridge of 0.25 |theta|^2; ``ridge_effect_elo`` is that ridge's own effect
(our Newton with and without it), and ``max_fit_gap_elo`` how far FastChat's L-BFGS-B stops from
the optimum of its own objective (our Newton on it, on the full data and FastChat's first
replicates).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bench import Benchmark, fastchat, isolated, mark_start
from common.ranking import StyleFeatures, Votes, rank_with_style
from common.ranking._style_likelihood import FIT_TOL, newton, weigh
from common.ranking._style_problem import build, normalized_difference
from common.ranking.scale import LN10
from common.ranking.style import ELO_PER_LOGIT

REPLICATES = 1000
TIE_RATE = 0.10
ELO_SD = 100.0
TOKENS = 300.0


@dataclass(frozen=True)
class StyleArena:
    votes: Votes
    features: StyleFeatures
    elo: NDArray[np.float64]
    """True strengths (Elo, mean 0) in the order of ``votes.models``."""
    effect: NDArray[np.float64]
    """True effect of each feature's normalized difference (natural log-odds per unit)."""


def style_arena(
    models: int,
    votes: int,
    seed: int = 1,
    *,
    length_effect: float = 1.0,
    markdown_effect: float = 0.15,
    verbosity_by_strength: float = 0.0,
) -> StyleArena:
    """Uniformly random pairings; per model a verbosity (log length factor, optionally tied to
    strength: negative makes strong models terse) and mean markdown counts; per answer Poisson
    counts around them; outcomes from ln(10)(r_a - r_b) + sum_j effect_j d_j (d the normalized
    differences), ~10% ties taken half from each side so a's expected points stay p."""
    rng = np.random.default_rng(seed)
    elo = rng.normal(0.0, ELO_SD, models)
    elo -= elo.mean()
    verbosity = verbosity_by_strength * elo / ELO_SD + rng.normal(0.0, 0.3, models)
    markdown = rng.gamma(2.0, 1.5, (models, 3))
    a = rng.integers(0, models, votes)
    b = rng.integers(0, models - 1, votes)
    b += b >= a

    def answers(side: NDArray[np.int64]) -> NDArray[np.int32]:
        length = TOKENS * np.exp(verbosity[side] + 0.5 * rng.standard_normal(len(side)))
        counts = [rng.poisson(length)] + [rng.poisson(markdown[side, j]) for j in range(3)]
        return np.stack(counts, axis=1).astype(np.int32)

    fa, fb = answers(a), answers(b)
    effect = np.array([length_effect, markdown_effect, markdown_effect, markdown_effect])
    diff = normalized_difference(fa.astype(np.float64), fb.astype(np.float64))
    p_a = 1.0 / (1.0 + np.exp(-(LN10 * (elo[a] - elo[b]) / 400.0 + diff @ effect)))
    tie = 4.0 * TIE_RATE * p_a * (1.0 - p_a)
    u = rng.random(votes)
    outcome = np.where(u < p_a - tie / 2, 0, np.where(u < p_a + tie / 2, 2, 1))
    names = tuple(f"model-{i:03d}" for i in range(models))
    return StyleArena(
        votes=Votes(names, a.astype(np.int32), b.astype(np.int32), outcome.astype(np.int8)),
        features=StyleFeatures(fa, fb),
        elo=elo,
        effect=effect,
    )


def _save(arena: StyleArena, path: Path) -> None:
    v, f = arena.votes, arena.features
    np.savez(path, models=np.array(v.models), a=v.model_a, b=v.model_b, o=v.outcome, fa=f.a, fb=f.b)


def _load(path: Path) -> tuple[Votes, StyleFeatures]:
    with np.load(path) as data:
        votes = Votes(tuple(data["models"].tolist()), data["a"], data["b"], data["o"])
        return votes, StyleFeatures(data["fa"], data["fb"])


def _ours(path: Path, replicates: int) -> dict[str, Any]:
    votes, features = _load(path)
    rank_with_style(votes, features, bootstrap=8)  # warm-up: thread pool, first-touch allocations
    mark_start()
    start, cpu = time.perf_counter(), time.process_time()
    result = rank_with_style(votes, features, bootstrap=replicates)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    rank_with_style(votes, features, ci_method="sandwich")
    sandwich = time.perf_counter() - start
    by_model = {e.model: e for e in result.ranking.entries}
    names = votes.models
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "sandwich_seconds": sandwich,
        "score": np.array([by_model[m].bt_score for m in names], dtype=float),
        "beta": np.array([c.estimate for c in result.coefficients], dtype=float),
        "separable": result.ranking.separable_replicates,
    }


def _newton_on(
    votes: Votes, features: StyleFeatures, counts: NDArray[np.float64], ridge: float
) -> NDArray[np.float64]:
    """Our Newton on FastChat's objective (ridge 0.5) or the MLE (0), with per-vote counts in
    input order; votes are laid out in pair order (see ``StyleProblem``)."""
    m = len(votes.models)
    a, b = votes.model_a.astype(np.int64), votes.model_b.astype(np.int64)
    diff = normalized_difference(
        np.asarray(features.a, dtype=np.float64), np.asarray(features.b, dtype=np.float64)
    )
    points = np.array([1.0, 0.0, 0.5])[votes.outcome]
    pb, _ = build(a, b, points, diff, m)
    order = np.argsort(np.minimum(a, b) * m + np.maximum(a, b), kind="stable")
    theta, _ = newton(pb, np.zeros(pb.m + pb.k), weigh(pb, counts[order]), ridge, FIT_TOL)
    return theta


def _fastchat(path: Path, replicates: int, timed: int, checked: int) -> dict[str, Any]:
    votes, features = _load(path)
    mark_start()
    start, cpu = time.perf_counter(), time.process_time()
    data = fastchat.preprocess_for_style(votes, features)
    full = fastchat.fit_contextual_bt(data)
    fixed, fixed_cpu = time.perf_counter() - start, time.process_time() - cpu
    idxs = fastchat.bootstrap_indices(votes.n_votes, timed)
    start, cpu = time.perf_counter(), time.process_time()
    boot = [fastchat.fit_contextual_bt(data, idx) for idx in idxs]
    per_replicate = (time.perf_counter() - start) / timed
    per_replicate_cpu = (time.process_time() - cpu) / timed
    m, n = data.n_models, votes.n_votes
    ones = np.ones(n)
    exact = _newton_on(votes, features, ones, 0.0)
    ridged = _newton_on(votes, features, ones, fastchat.REG)
    gaps = [np.abs(ridged - full)]
    for idx, params in zip(idxs[:checked], boot[:checked], strict=True):
        counts = np.bincount(idx, minlength=n).astype(np.float64)
        gaps.append(np.abs(_newton_on(votes, features, counts, fastchat.REG) - params))
    elo_gap = [max(400.0 * g[:m].max(), ELO_PER_LOGIT * g[m:].max()) for g in gaps]
    return {
        "seconds": fixed + replicates * per_replicate,
        "cpu_seconds": fixed_cpu + replicates * per_replicate_cpu,
        "per_replicate": per_replicate,
        "score": fastchat.scores(full, m),
        "beta": full[m:],
        "ridge_effect": float(
            max(
                400.0 * np.abs(exact[:m] - ridged[:m]).max(),
                ELO_PER_LOGIT * np.abs(exact[m:] - ridged[m:]).max(),
            )
        ),
        "fit_gap": float(max(elo_gap)),
        # FastChat draws every replicate's row indices at once: B x N int64.
        "index_mb": replicates * n * 8 / 2**20,
    }


def _style_bench(models: int, n_votes: int, timed: int) -> list[dict[str, Any]]:
    name = f"style/{models}x{_size(n_votes)}"
    with tempfile.TemporaryDirectory(prefix="bench-style-") as tmp:
        path = Path(tmp) / "arena.npz"
        _save(style_arena(models, n_votes), path)
        ours = isolated(_ours, path, REPLICATES)
        base = isolated(_fastchat, path, REPLICATES, timed, min(timed, 3))
    notes = [
        "peak_mb: VmHWM of a fresh process running only this side; work_mb: above the RSS "
        "before the work",
        f"baseline: {timed} of {REPLICATES} replicates timed, total extrapolated linearly; "
        "FastChat maps replicates over an mp.Pool: on 2 cores at best half of baseline_seconds, "
        "and its up-front B x N int64 row indices alone would take "
        f"{base['index_mb']:.0f} MB",
    ]
    return [
        {
            "bench": name,
            "seconds": round(ours["seconds"], 3),
            "baseline": "fastchat-lbfgsb",
            "baseline_seconds": round(base["seconds"], 1),
            "speedup": round(base["seconds"] / ours["seconds"], 1),
            "speedup_vs_2_process_pool": round(base["seconds"] / 2 / ours["seconds"], 1),
            "peak_mb": ours["peak_mb"],
            "work_mb": ours["work_mb"],
            "cpu_seconds": round(ours["cpu_seconds"], 1),
            "baseline_cpu_seconds": round(base["cpu_seconds"], 1),
            "cpu_speedup": round(base["cpu_seconds"] / ours["cpu_seconds"], 1),
            "baseline_peak_mb": base["peak_mb"],
            "baseline_replicate_seconds": round(base["per_replicate"], 3),
            "baseline_replicates_timed": timed,
            "sandwich_seconds": round(ours["sandwich_seconds"], 3),
            "models": models,
            "votes": n_votes,
            "replicates": REPLICATES,
            "separable_replicates": ours["separable"],
            "max_score_diff_elo": float(np.abs(ours["score"] - base["score"]).max()),
            "max_beta_diff_elo": float(ELO_PER_LOGIT * np.abs(ours["beta"] - base["beta"]).max()),
            "ridge_effect_elo": base["ridge_effect"],
            "max_fit_gap_elo": base["fit_gap"],
            "notes": notes,
        }
    ]


def _size(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"


BENCHMARKS = [
    Benchmark(
        "style/20x5k",
        "style control: 20 models, 5k votes, 4 features, B=1000 vs FastChat (batched replicates)",
        partial(_style_bench, 20, 5_000, 20),
    ),
    Benchmark(
        "style/30x50k",
        "style control: 30 models, 50k votes, 4 features, B=1000 vs FastChat",
        partial(_style_bench, 30, 50_000, 5),
    ),
    Benchmark(
        "style/100x1M",
        "style control: 100 models, 1M votes, 4 features, B=1000 vs FastChat",
        partial(_style_bench, 100, 1_000_000, 2),
    ),
]
