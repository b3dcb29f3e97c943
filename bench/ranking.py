"""Ranking benchmarks: our engine against upstream's method on the same votes, and Parquet reading.

``rank/<models>x<votes>``: synthetic votes (hidden strengths, ~10% ties), ranked with B = 1000 by
``common.ranking.rank_votes`` (aggregation included) and by ``bench.upstream`` (upstream's cells +
multinomial + one L-BFGS-B fit per replicate, one process). Each side runs in its own fresh
process (see ``bench.isolated`` for the memory figures). Upstream's per-replicate fits are timed on
a subset of the replicates when a full run would take minutes; its total is then extrapolated
linearly (preprocessing + full fit + B x the mean replicate cost), and the output says so.
Accuracy: ``max_score_diff_elo`` compares the full-data fits; ``max_replicate_diff_elo`` refits
upstream's first replicates exactly with our Newton and shows how far L-BFGS-B stopped from the
optimum; ``max_ci_diff_elo`` (only when upstream ran every replicate) compares the two
independent bootstraps' bounds, so it is Monte-Carlo noise.

``parquet/5M``: ``common.votes.read_votes`` + ``aggregate`` on a 5M-vote file in the fetch stage's
layout (dictionary-encoded model ids and outcomes, plus evaluation_id and evaluated_at), best of 3
after a warm-up read.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench import Benchmark, isolated, mark_start, upstream
from common.ranking import OUTCOMES, PairCounts, Votes, aggregate, fit_ratings, rank_votes

REPLICATES = 1000
TIE_RATE = 0.10
ELO_SD = 100.0


def synthetic_votes(models: int, votes: int, seed: int = 1) -> tuple[Votes, np.ndarray]:
    """Uniformly random pairings, Bradley-Terry outcomes from hidden Elo, ~10% ties."""
    rng = np.random.default_rng(seed)
    elo = rng.normal(0.0, ELO_SD, models)
    a = rng.integers(0, models, votes)
    b = rng.integers(0, models - 1, votes)
    b += b >= a
    p_a = 1.0 / (1.0 + 10.0 ** ((elo[b] - elo[a]) / 400.0))
    outcome = np.where(rng.random(votes) < p_a, 0, 1)
    outcome[rng.random(votes) < TIE_RATE] = 2
    names = tuple(f"model-{i:03d}" for i in range(models))
    return Votes(names, a.astype(np.int32), b.astype(np.int32), outcome.astype(np.int8)), elo


def _save(votes: Votes, path: Path) -> None:
    np.savez(path, models=np.array(votes.models), a=votes.model_a, b=votes.model_b, o=votes.outcome)


def _load(path: Path) -> Votes:
    with np.load(path) as data:
        return Votes(tuple(data["models"].tolist()), data["a"], data["b"], data["o"])


def _ours(path: Path, replicates: int) -> dict[str, Any]:
    votes = _load(path)
    rank_votes(votes, bootstrap=16)  # warm-up: thread pool, first-touch allocations
    mark_start()
    start = time.perf_counter()
    ranking = rank_votes(votes, bootstrap=replicates)
    seconds = time.perf_counter() - start
    by_model = {e.model: e for e in ranking.entries}
    names = votes.models
    return {
        "seconds": seconds,
        "score": np.array([by_model[m].bt_score for m in names], dtype=float),
        "q025": np.array([by_model[m].bootstrap_q025 for m in names], dtype=float),
        "q975": np.array([by_model[m].bootstrap_q975 for m in names], dtype=float),
        "separable": ranking.separable_replicates,
    }


def _pair_counts(cells: upstream.UpstreamCells, counts: np.ndarray) -> PairCounts:
    """Our aggregation of one upstream replicate (its cells repeated by their counts)."""
    reps = np.rint(counts).astype(np.int64)
    code = np.array([1, 2, 0])[(2 * cells.outcomes).astype(int)]  # upstream code -> ours
    votes = Votes(
        tuple(str(i) for i in range(cells.n_models)),
        np.repeat(cells.matchups[:, 0], reps).astype(np.int32),
        np.repeat(cells.matchups[:, 1], reps).astype(np.int32),
        np.repeat(code, reps).astype(np.int8),
    )
    return aggregate(votes)


def _upstream(path: Path, replicates: int, timed: int, checked: int) -> dict[str, Any]:
    votes = _load(path)
    mark_start()
    start = time.perf_counter()
    cells = upstream.preprocess(votes)
    full = upstream.fit(cells, cells.weights)
    fixed = time.perf_counter() - start
    start = time.perf_counter()
    weights = upstream.draw_weights(cells, timed)
    boot = np.array([upstream.fit(cells, w) for w in weights])
    per_replicate = (time.perf_counter() - start) / timed
    seconds = fixed + replicates * per_replicate
    result: dict[str, Any] = {
        "seconds": seconds,
        "score": upstream.scores(full),
        "q025": None,
        "q975": None,
    }
    if timed == replicates:
        q = np.quantile(upstream.scores(boot), [0.025, 0.975], axis=0)
        result["q025"], result["q975"] = q[0], q[1]
    n = cells.weights.sum()
    diffs = [
        np.abs(400.0 * (fit_ratings(_pair_counts(cells, w * n)) - (r - r.mean()))).max()
        for w, r in zip(weights[:checked], boot[:checked], strict=True)
    ]
    result["max_replicate_diff"] = float(max(diffs))
    return result


def _rank_bench(models: int, n_votes: int, timed: int) -> list[dict[str, Any]]:
    name = f"rank/{models}x{_size(n_votes)}"
    with tempfile.TemporaryDirectory(prefix="bench-rank-") as tmp:
        path = Path(tmp) / "votes.npz"
        votes, _ = synthetic_votes(models, n_votes)
        _save(votes, path)
        del votes
        ours = isolated(_ours, path, REPLICATES)
        base = isolated(_upstream, path, REPLICATES, timed, min(timed, 20))
    ci_diff = None
    if base["q025"] is not None:
        ci_diff = float(
            max(
                np.abs(ours["q025"] - base["q025"]).max(), np.abs(ours["q975"] - base["q975"]).max()
            )
        )
    notes = [
        "peak_mb: ru_maxrss of a fresh process running only this side "
        "(interpreter + libraries + input votes + work); work_mb: the part above the RSS before the work"
    ]
    if timed < REPLICATES:
        notes.append(
            f"baseline: {timed} of {REPLICATES} replicates timed, total extrapolated linearly"
        )
    return [
        {
            "bench": name,
            "seconds": round(ours["seconds"], 4),
            "baseline": "upstream-lbfgsb",
            "baseline_seconds": round(base["seconds"], 3),
            "speedup": round(base["seconds"] / ours["seconds"], 1),
            "peak_mb": ours["peak_mb"],
            "work_mb": ours["work_mb"],
            "baseline_peak_mb": base["peak_mb"],
            "baseline_replicates_timed": timed,
            "baseline_extrapolated": timed < REPLICATES,
            "models": models,
            "votes": n_votes,
            "replicates": REPLICATES,
            "separable_replicates": ours["separable"],
            "max_score_diff_elo": float(np.abs(ours["score"] - base["score"]).max()),
            "max_replicate_diff_elo": base["max_replicate_diff"],
            "max_ci_diff_elo": ci_diff,
            "notes": notes,
        }
    ]


def _size(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"


def write_fetch_parquet(votes: Votes, path: Path) -> None:
    """The fetch stage's layout: dictionary-encoded model ids and outcomes, id and timestamp."""
    ids = pa.array([str(uuid.UUID(int=i + 1)) for i in range(len(votes.models))])
    n = votes.n_votes
    table = pa.table(
        {
            "model1_id": pa.DictionaryArray.from_arrays(pa.array(votes.model_a), ids),
            "model2_id": pa.DictionaryArray.from_arrays(pa.array(votes.model_b), ids),
            "outcome": pa.DictionaryArray.from_arrays(
                pa.array(votes.outcome.astype(np.int32)), pa.array(list(OUTCOMES))
            ),
            "evaluation_id": pa.array(np.arange(n, dtype=np.int64)),
            "evaluated_at": pa.array(
                np.datetime64("2025-01-01T00:00:00", "us") + np.arange(n) * np.timedelta64(1, "s")
            ),
        }
    )
    pq.write_table(table, path)


def _read(path: Path) -> dict[str, Any]:
    from common.votes import read_votes

    def once() -> tuple[float, PairCounts]:
        start = time.perf_counter()
        votes = read_votes(path, model_a="model1_id", model_b="model2_id")
        counts = aggregate(votes)
        return time.perf_counter() - start, counts

    once()  # warm-up: page cache, imports
    mark_start()
    times, counts = zip(*(once() for _ in range(3)), strict=True)
    return {"seconds": min(times), "votes": counts[0].n_votes}


def _parquet_bench(n_votes: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-parquet-") as tmp:
        path = Path(tmp) / "battles.parquet"
        votes, _ = synthetic_votes(300, n_votes)
        write_fetch_parquet(votes, path)
        del votes
        result = isolated(_read, path)
    return [
        {
            "bench": f"parquet/{_size(n_votes)}",
            "seconds": round(result["seconds"], 4),
            "baseline": None,
            "baseline_seconds": None,
            "speedup": None,
            "peak_mb": result["peak_mb"],
            "work_mb": result["work_mb"],
            "votes": result["votes"],
            "notes": ["read_votes + aggregate, 300 models, best of 3 after a warm-up read"],
        }
    ]


BENCHMARKS = [
    Benchmark(
        "rank/30x50k",
        "30 models, 50k votes, B=1000 vs upstream",
        partial(_rank_bench, 30, 50_000, 1000),
    ),
    Benchmark(
        "rank/100x1M",
        "100 models, 1M votes, B=1000 vs upstream",
        partial(_rank_bench, 100, 1_000_000, 40),
    ),
    Benchmark(
        "rank/300x5M",
        "300 models, 5M votes, B=1000 vs upstream",
        partial(_rank_bench, 300, 5_000_000, 5),
    ),
    Benchmark(
        "parquet/5M", "read + aggregate 5M votes (fetch layout)", partial(_parquet_bench, 5_000_000)
    ),
]
