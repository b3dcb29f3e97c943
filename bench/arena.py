"""The benchmarks' simulated arena: an embedded PostgreSQL seeded once by ``local.simulate``,
then reused by every benchmark that reads it (fetch, e2e) while its size and schema match (a
change to ``local/sql`` reseeds it)."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import psycopg

from bench import isolated
from local import postgres, schema, simulate

MODELS = 100
SEED = 1
BENCH_DIR = Path(os.environ.get("LEADERBOARD_LOCAL_DIR", ".local")) / "bench"
# Share of simulated battles that count for `overall`: voted x validated x biomedical.
OVERALL_SHARE = (
    (1 - simulate.UNVOTED_RATE) * (1 - simulate.UNVALIDATED_RATE) * simulate.BIOMEDICAL_RATE
)


def seeded_database(votes: int, models: int = MODELS, *, answer_tokens: float | None = None) -> str:
    """URL of a database holding a simulated arena with about ``votes`` votes in ``overall``;
    its battles have answers of about ``answer_tokens`` tokens, or no round at all (None: the
    votes alone, for benchmarks of the votes pass)."""
    battles = math.ceil(votes / OVERALL_SHARE)
    admin = postgres.embedded_server(BENCH_DIR / "postgres")
    texts = "_votes" if answer_tokens is None else f"_t{answer_tokens:g}"
    name = f"bench_{models}x{battles}_s{SEED}{texts}"
    url = postgres.with_database(admin, name)
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    if exists and schema.is_current(url):
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM api.battle").fetchone()
        if row and row[0] == battles:
            return url
    url = postgres.create_database(admin, name, replace=True)
    print(f"#   seeding {battles:,} battles into {name} (once; kept in {BENCH_DIR})", flush=True)
    # In a child process: a child's ru_maxrss starts from its parent's, so the parent of the
    # measured processes must never hold the simulated arena.
    isolated(_seed, url, models, battles, answer_tokens)
    return url


def _seed(url: str, models: int, battles: int, answer_tokens: float | None) -> dict[str, Any]:
    arena = simulate.simulate_arena(
        models,
        battles,
        seed=SEED,
        answer_tokens=answer_tokens or simulate.ANSWER_TOKENS,
        with_answers=answer_tokens is not None,
    )
    started = time.perf_counter()
    simulate.write_database(arena, url)
    print(f"#   seeded in {time.perf_counter() - started:.1f} s", flush=True)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return {}
