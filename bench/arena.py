"""The benchmarks' simulated arenas: databases on one embedded PostgreSQL (``.local/bench``),
each seeded once by ``local.simulate`` and reused by every benchmark and every later ``make bench``
that asks for the same arena. A database's name is its key: models, battles, seed, the answers'
length (or none), and a version hashing the schema (``local/sql``) and the simulator, so a change
to either seeds a new one (and drops the stale ones of the same kind). Benchmarks that write
(snapshots) work on a clone.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench import isolated
from common import answer_style
from local import answers, postgres, schema, simulate

MODELS = 100
SEED = 1
BENCH_DIR = Path(os.environ.get("LEADERBOARD_LOCAL_DIR", ".local")) / "bench"
# Share of simulated battles that count for `overall`: voted x validated x biomedical.
OVERALL_SHARE = (
    (1 - simulate.UNVOTED_RATE) * (1 - simulate.UNVALIDATED_RATE) * simulate.BIOMEDICAL_RATE
)
_clones = itertools.count()


def admin_url() -> str:
    return postgres.embedded_server(BENCH_DIR / "postgres")


def arena_version() -> str:
    """What a seeded arena is a function of, besides its size and seed."""
    digest = hashlib.sha256(schema.schema_version().encode())
    for module in (simulate, answers, answer_style):
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.hexdigest()[:8]


def seeded_database(votes: int, models: int = MODELS, *, answer_tokens: float | None = None) -> str:
    """URL of a database holding a simulated arena with about ``votes`` votes in ``overall``;
    its battles have answers of about ``answer_tokens`` tokens, or no round at all (None: the
    votes alone, for benchmarks of the votes pass)."""
    battles = math.ceil(votes / OVERALL_SHARE)
    return seeded_arena(models, battles, SEED, answer_tokens=answer_tokens)


def seeded_arena(models: int, battles: int, seed: int, *, answer_tokens: float | None) -> str:
    """URL of the arena ``simulate_arena(models, battles, seed)`` with answers of about
    ``answer_tokens`` tokens (None: battles without rounds), seeded on first use, its tables and
    indexes just read (``warm_page_cache``)."""
    admin = admin_url()
    texts = "_votes" if answer_tokens is None else f"_t{answer_tokens:g}"
    stem = f"bench_{models}x{battles}_s{seed}{texts}"
    name = f"{stem}_{arena_version()}"
    url = postgres.with_database(admin, name)
    with psycopg.connect(admin, autocommit=True) as conn:
        found = [
            str(row[0])
            for row in conn.execute("SELECT datname FROM pg_database")
            if str(row[0]) == stem  # unversioned, as earlier benchmarks named it
            or (str(row[0]).startswith(f"{stem}_") and "_clone" not in str(row[0]))
        ]
        for stale in (n for n in found if n != name):
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(stale)))
    if not (name in found and schema.is_current(url) and _battles(url) == battles):
        url = postgres.create_database(admin, name, replace=True)
        print(
            f"#   seeding {battles:,} battles into {name} (once; kept in {BENCH_DIR})", flush=True
        )
        # In a child process: the simulated arena is gigabytes at 5M votes, which the parent of
        # the measured processes should not keep.
        isolated(_seed, url, models, battles, seed, answer_tokens)
    warm_page_cache(url)
    return url


def _battles(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM api.battle").fetchone()
    return int(row[0]) if row else 0


def clone(url: str) -> str:
    """A fresh copy of the database at ``url`` (PostgreSQL copies the files: seconds at most)."""
    source = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    name = f"{source}_clone{os.getpid()}_{next(_clones)}"[:63]
    admin = admin_url()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(str(source))
            )
        )
    return postgres.with_database(admin, name)


def drop(url: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(name)))
        )


WARMED_TABLES = (
    "battle_evaluation",
    "battle",
    "battle_validation",
    "battle_categorization",
    "battle_categorization_category",
    "battle_round",
    "message",
)
"""Every table a fetch reads rows of (``common.filters``, ``common.fetch``)."""


def warm_page_cache(url: str) -> None:
    """Read the tables a fetch scans, their indexes and TOAST, so that no measured run pays for a
    cold page cache (the first fetch of a 5M arena took 45 s instead of 17 s; an e2e/1M run after
    other work, a fetch of 23 s instead of 3 s). The indexes count: every leaderboard's fetch
    merges categorizations in index order, and with only the tables warm the first e2e-all after
    other benchmarks still fetched in 14-22 s instead of 6-7 s. ``seeded_arena`` does it for
    every arena it hands out; a clone is a database of its own. pg_prewarm ships with
    PostgreSQL; its 'read' mode reads the files into the operating system's cache."""
    tables = [f"api.{table}" for table in WARMED_TABLES]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        conn.execute(_PREWARM, {"tables": tables}).fetchone()


_PREWARM = """
SELECT sum(pg_prewarm(c.oid, 'read')) FROM pg_class c
WHERE c.oid = ANY(%(tables)s::regclass[])
   OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = ANY(%(tables)s::regclass[]))
   OR c.oid IN (SELECT reltoastrelid FROM pg_class WHERE oid = ANY(%(tables)s::regclass[]))
"""


def _seed(
    url: str, models: int, battles: int, seed: int, answer_tokens: float | None
) -> dict[str, Any]:
    arena = simulate.simulate_arena(
        models,
        battles,
        seed=seed,
        answer_tokens=answer_tokens or simulate.ANSWER_TOKENS,
        with_answers=answer_tokens is not None,
    )
    started = time.perf_counter()
    simulate.write_database(arena, url)
    print(f"#   seeded in {time.perf_counter() - started:.1f} s", flush=True)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return {}
