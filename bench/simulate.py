"""Simulator benchmarks: ``leaderboard simulate`` with 100 models and a million battles.

``simulate/1M``: the command writing into a fresh database (created from the migrated template on
the bench's embedded server in ``.local/bench/postgres``, just before; the server's own memory is
not in ``peak_mb``); ``simulate-parquet/1M``: the same arena to a Parquet file. Each runs the
command's ``main`` once in a fresh process (see ``bench.isolated``); no baseline.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import Benchmark, isolated, mark_start
from bench.e2e import BENCH_DIR
from local import postgres

MODELS = 100
BATTLES = 1_000_000


def _command(argv: list[str]) -> dict[str, Any]:
    """``leaderboard`` with ``argv``, in this fresh process; its one output line comes back."""
    from cli.main import main

    mark_start()
    printed = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(printed):
        code = main(argv)
    seconds = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"simulate bench: `leaderboard {' '.join(argv)}` exited with {code}")
    return {"seconds": round(seconds, 3), "printed": printed.getvalue().strip()}


def _measurement(name: str, measured: dict[str, Any], target: str) -> dict[str, Any]:
    return {
        "bench": name,
        "seconds": measured["seconds"],
        "baseline": None,
        "baseline_seconds": None,
        "speedup": None,
        "peak_mb": measured["peak_mb"],
        "work_mb": measured["work_mb"],
        "models": MODELS,
        "battles": BATTLES,
        "notes": [f"{target}: {measured['printed']}"],
    }


def _simulate() -> list[dict[str, Any]]:
    size = f"{BATTLES // 1_000_000}M"
    common = ["simulate", "--models", str(MODELS), "--battles", str(BATTLES)]
    admin = postgres.embedded_server(BENCH_DIR / "postgres")
    url = postgres.create_database(admin, "bench_simulate", replace=True)
    into_database = isolated(_command, [*common, "--database-url", url])
    with tempfile.TemporaryDirectory(prefix="bench-simulate-") as folder:
        into_parquet = isolated(_command, [*common, "--output", str(Path(folder, "arena.parquet"))])
    return [
        _measurement(f"simulate/{size}", into_database, "fresh embedded database"),
        _measurement(f"simulate-parquet/{size}", into_parquet, "Parquet file"),
    ]


BENCHMARKS = [
    Benchmark(
        "simulate/1M",
        "leaderboard simulate: 100 models, 1M battles into a fresh database, and to Parquet",
        _simulate,
        default=False,
    ),
]
