"""Ranking benchmarks: our engine against upstream's method on the same votes, and Parquet reading.

``rank/<models>x<votes>``: synthetic votes (hidden strengths, ~10% ties), ranked with B = 1000 by
``common.ranking.rank_votes`` (aggregation included) and by ``bench.upstream`` (upstream's cells +
multinomial + one L-BFGS-B fit per replicate, one process). Each side runs in its own fresh
process (see ``bench.isolated`` for the memory figures). Upstream's per-replicate fits are timed on
all replicates only for ``rank/40x3k`` (seconds), elsewhere on a subset (a full run would take
minutes and the replicates cost alike); its total is then extrapolated linearly (preprocessing +
full fit + B x the mean replicate cost), and the output says so.
Accuracy: ``max_score_diff_elo`` compares the full-data fits; ``max_replicate_diff_elo`` refits
upstream's first replicates exactly with our Newton and shows how far L-BFGS-B stopped from the
optimum; ``max_ci_diff_elo`` (only when upstream ran every replicate) compares the two
independent bootstraps' bounds, so it is Monte-Carlo noise. Also measured: CPU time over all
threads on both sides (``cpu_seconds``, ``baseline_cpu_seconds``, ``cpu_speedup``), which other
load on the machine changes least.

``parquet/5M``: ``common.votes.read_votes`` + ``aggregate`` on a 5M-vote file in the fetch stage's
layout (dictionary-encoded model ids and outcomes, plus evaluation_id and evaluated_at), best of 3
after a warm-up read.

Cold starts: how much of a fresh process goes to importing. ``rank/cli-100x1M`` runs the whole
``leaderboard rank`` command on a 100x1M Parquet file; ``rank/stage-cold-100x1M`` is the rank Lambda's
cold start: import ``stages.rank.handler`` (the init; ``handler_import_s``) and botocore's session
(which its first call needs for the S3 client), then one call on the same votes from moto's S3
(moto's own import, boto3's and the upload are left out: the stage itself never imports boto3).
Imports are counted with ``python -X importtime`` (top-level cumulative times, lazy imports
during the call included); ``work_s`` is the rest; ``cpu_s`` is the whole process's CPU time.
Best of 3 by total.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
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
    start, cpu = time.perf_counter(), time.process_time()
    ranking = rank_votes(votes, bootstrap=replicates)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    by_model = {e.model: e for e in ranking.entries}
    names = votes.models
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
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
    start, cpu = time.perf_counter(), time.process_time()
    cells = upstream.preprocess(votes)
    full = upstream.fit(cells, cells.weights)
    fixed, fixed_cpu = time.perf_counter() - start, time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    weights = upstream.draw_weights(cells, timed)
    boot = np.array([upstream.fit(cells, w) for w in weights])
    per_replicate = (time.perf_counter() - start) / timed
    per_replicate_cpu = (time.process_time() - cpu) / timed
    seconds = fixed + replicates * per_replicate
    result: dict[str, Any] = {
        "seconds": seconds,
        "cpu_seconds": fixed_cpu + replicates * per_replicate_cpu,
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
        "peak_mb: VmHWM of a fresh process running only this side "
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
            "cpu_seconds": round(ours["cpu_seconds"], 4),
            "baseline_cpu_seconds": round(base["cpu_seconds"], 3),
            "cpu_speedup": round(base["cpu_seconds"] / ours["cpu_seconds"], 1),
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


def model_ids(votes: Votes) -> list[str]:
    """The UUIDs standing for ``votes.models`` in the fetch layout (model i -> UUID(int=i + 1))."""
    return [str(uuid.UUID(int=i + 1)) for i in range(len(votes.models))]


def write_fetch_parquet(
    votes: Votes, path: Path, model_a: str = "model1_id", model_b: str = "model2_id"
) -> None:
    """The fetch stage's layout: dictionary-encoded model ids and outcomes, id and timestamp."""
    ids = pa.array(model_ids(votes))
    n = votes.n_votes
    table = pa.table(
        {
            model_a: pa.DictionaryArray.from_arrays(pa.array(votes.model_a), ids),
            model_b: pa.DictionaryArray.from_arrays(pa.array(votes.model_b), ids),
            "outcome": pa.DictionaryArray.from_arrays(
                pa.array(votes.outcome.astype(np.int32)), pa.array(list(OUTCOMES))
            ),
            "evaluation_id": _evaluation_ids(n),
            "evaluated_at": pa.array(
                np.datetime64("2025-01-01T00:00:00", "us") + np.arange(n) * np.timedelta64(1, "s")
            ),
        }
    )
    pq.write_table(table, path)


def _evaluation_ids(n: int) -> pa.ExtensionArray:
    """UUID(int=i) for vote i, in the fetch layout's type (Parquet's UUID)."""
    # Here, not at the top: the measured processes import this module, and fetch loads psycopg.
    from common.fetch import uuid_array

    raw = np.zeros((n, 16), dtype=np.uint8)
    raw[:, 8:] = np.arange(n, dtype=">u8").view(np.uint8).reshape(n, 8)
    return uuid_array(raw)


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


def import_seconds(importtime: str, phase: str | None = None) -> float:
    """Seconds of imports in ``python -X importtime`` output: the top-level cumulative times, all
    of them or those after the ``#phase <phase>`` marker line up to the next marker."""
    total_us = 0
    inside = phase is None
    for line in importtime.splitlines():
        if line.startswith("#phase "):
            inside = phase is None or line == f"#phase {phase}"
            continue
        if not inside or not line.startswith("import time:"):
            continue
        _, cumulative, name = line.split("|")
        if cumulative.strip().isdigit() and not name.startswith("  "):  # one space: not nested
            total_us += int(cumulative)
    return total_us / 1e6


def _fresh_process(args: list[str]) -> tuple[float, float, str, str]:
    """Run ``python -X importtime`` with ``args`` from the repository root: wall and CPU seconds,
    output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if done.returncode != 0:
        raise RuntimeError(f"fresh process {args[:2]} failed:\n{done.stderr[-2000:]}")
    return seconds, cpu, done.stdout, done.stderr


def _import_row(name: str, runs: list[dict[str, Any]], notes: list[str]) -> dict[str, Any]:
    best = min(runs, key=lambda r: r["total_s"])
    return {
        "bench": name,
        "seconds": round(best["total_s"], 3),
        "baseline": None,
        "baseline_seconds": None,
        "speedup": None,
        "peak_mb": best["peak_mb"],
        **{k: round(v, 3) if isinstance(v, float) else v for k, v in best.items()},
        "import_share": round(best["import_s"] / best["total_s"], 3),
        "notes": notes,
    }


# VmHWM, not ru_maxrss (see bench.peak_rss_mb): an expression, as importing bench into the
# measured process would add to its imports before the work or to its peak after it (1-2 MB).
_PEAK_KB = "next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM'))"


def _cli_cold(models: int, n_votes: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        path = Path(tmp) / "battles.parquet"
        votes, _ = synthetic_votes(models, n_votes)
        write_fetch_parquet(votes, path, model_a="model_a", model_b="model_b")
        del votes
        code = (
            "import sys; from cli.main import main; code = main(sys.argv[1:]); "
            f"print('#peak_kb', {_PEAK_KB}); sys.exit(code)"
        )
        runs = []
        for _ in range(3):
            total, cpu, out, err = _fresh_process(
                ["-c", code, "rank", str(path), "--output", str(Path(tmp) / "ranking.txt")]
            )
            imports = import_seconds(err)
            peak = round(int(out.split("#peak_kb")[1].split()[0]) / 1024, 1)
            runs.append(
                {
                    "total_s": total,
                    "import_s": imports,
                    "work_s": total - imports,
                    "cpu_s": cpu,
                    "peak_mb": peak,
                }
            )
    notes = [
        "whole process (`leaderboard rank`, B=1000): import_s = top-level -X importtime total, "
        "work_s = wall - import_s; target import_share <= 0.333"
    ]
    return [_import_row(f"rank/cli-{models}x{_size(n_votes)}", runs, notes)]


_STAGE_CHILD = """
import json, sys, time
votes_path, models_path, n_votes, n_models = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:5])
start = time.perf_counter()
from stages.rank.handler import handler
handler_import = time.perf_counter() - start
import botocore.config, botocore.session
init = time.perf_counter() - start
print("#phase setup", file=sys.stderr, flush=True)
import boto3
from moto import mock_aws
from local.moto_lambda import InvocationContext
with mock_aws():
    s3 = boto3.session.Session().client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="bench")
    for key, path in (("votes.parquet", votes_path), ("models.parquet", models_path)):
        with open(path, "rb") as body:
            s3.put_object(Bucket="bench", Key=f"run/overall/{key}", Body=body.read())
    run = {
        "run_id": "20250601T060000Z-bench", "execution_id": "bench", "execution_name": "bench",
        "correlation_id": "bench", "trigger": "manual", "requested_by": None,
        "run_at": "2025-06-01T06:00:00Z", "snapshot_identifier": "snapshot_2025-06-01_06-00-00",
        "bootstrap": 1000, "seed": 0, "publish": False, "artifacts_prefix": "s3://bench/run/",
    }
    board = {
        "slug": "overall", "leaderboard_id": "00000000-0000-4000-8000-000000000001",
        "name": "Overall", "votes_uri": "s3://bench/run/overall/votes.parquet",
        "models_uri": "s3://bench/run/overall/models.parquet",
        "vote_count": n_votes, "model_count": n_models,
    }
    context = InvocationContext(
        function_name="rank", invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:rank",
        memory_limit_in_mb=3008, timeout_s=900,
    )
    print("#phase call", file=sys.stderr, flush=True)
    start = time.perf_counter()
    handler({"run": run, "leaderboard": board}, context)
    call = time.perf_counter() - start
    print("#phase end", file=sys.stderr, flush=True)
peak = PEAK_KB
print("#result " + json.dumps({"handler_import_s": handler_import, "init_s": init, "call_s": call, "peak_kb": peak}))
"""


def _stage_cold(models: int, n_votes: int) -> list[dict[str, Any]]:
    child = _STAGE_CHILD.replace("PEAK_KB", f"int({_PEAK_KB})")
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        votes_path, models_path = Path(tmp) / "votes.parquet", Path(tmp) / "models.parquet"
        votes, _ = synthetic_votes(models, n_votes)
        write_fetch_parquet(votes, votes_path)
        ids = model_ids(votes)
        slugs = [f"model-{i:03d}" for i in range(len(ids))]
        pq.write_table(pa.table({"id": ids, "slug": slugs, "name": slugs}), models_path)
        del votes
        runs = []
        for _ in range(3):
            _, cpu, out, err = _fresh_process(
                ["-c", child, str(votes_path), str(models_path), str(n_votes), str(models)]
            )
            timed = json.loads(out.split("#result ")[1])
            imports = timed["init_s"] + import_seconds(err, "call")
            total = timed["init_s"] + timed["call_s"]
            runs.append(
                {
                    "total_s": total,
                    "import_s": imports,
                    "work_s": total - imports,
                    "handler_import_s": timed["handler_import_s"],
                    "cpu_s": cpu,
                    "peak_mb": round(timed["peak_kb"] / 1024, 1),
                }
            )
    notes = [
        "rank Lambda cold start (B=1000): import stages.rank.handler + botocore, then one call "
        "(S3 = moto in-process, its import and the upload left out); target import_share <= 0.333"
    ]
    return [_import_row(f"rank/stage-cold-{models}x{_size(n_votes)}", runs, notes)]


BENCHMARKS = [
    Benchmark(
        "rank/40x3k",
        "40 models, 3k votes, B=1000 vs upstream",
        partial(_rank_bench, 40, 3_000, 1000),
    ),
    Benchmark(
        "rank/30x50k",
        "30 models, 50k votes, B=1000 vs upstream",
        partial(_rank_bench, 30, 50_000, 200),
    ),
    Benchmark(
        "rank/100x1M",
        "100 models, 1M votes, B=1000 vs upstream",
        partial(_rank_bench, 100, 1_000_000, 10),
    ),
    Benchmark(
        "rank/300x5M",
        "300 models, 5M votes, B=1000 vs upstream",
        partial(_rank_bench, 300, 5_000_000, 2),
        default=False,
    ),
    Benchmark(
        "rank/cli-100x1M",
        "whole-process `leaderboard rank`, 100 models x 1M votes: import vs work",
        partial(_cli_cold, 100, 1_000_000),
    ),
    Benchmark(
        "rank/stage-cold-100x1M",
        "rank Lambda cold start, 100 models x 1M votes: import vs work",
        partial(_stage_cold, 100, 1_000_000),
    ),
    Benchmark(
        "parquet/5M", "read + aggregate 5M votes (fetch layout)", partial(_parquet_bench, 5_000_000)
    ),
]
