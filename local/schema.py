"""BixArena's schema for tests and local runs: the migrations in ``local/sql``, applied once.

In production the schema belongs to BixArena's Flyway; these files recreate the tables the pipeline
reads and writes, exactly as upstream defines them, in a database of our own.
"""

from __future__ import annotations

from pathlib import Path

from common.db import connect

_HISTORY_TABLE = "public.leaderboard_pipeline_migrations"
SQL_DIR = Path(__file__).parent / "sql"


def schema_exists(url: str) -> bool:
    """True when BixArena's ``api`` tables are already there (created by us or by Flyway)."""
    with connect(url) as conn:
        row = conn.execute("SELECT to_regclass('api.leaderboard_snapshot') IS NOT NULL").fetchone()
    return bool(row and row[0])


def ensure_schema(url: str) -> list[str]:
    """Create the schema in a database that has none; leave an existing one (e.g. Flyway's) alone."""
    return [] if schema_exists(url) and not _tracked(url) else apply_migrations(url)


def _tracked(url: str) -> bool:
    with connect(url) as conn:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (_HISTORY_TABLE,)).fetchone()
    return bool(row and row[0])


def migration_names() -> list[str]:
    return sorted(p.name for p in SQL_DIR.glob("*.sql"))


def apply_migrations(url: str) -> list[str]:
    """Apply the schema migrations not yet applied; returns the names applied now."""
    applied_now: list[str] = []
    with connect(url) as conn:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {_HISTORY_TABLE} "
            "(name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('leaderboard_pipeline_migrations'))")
        done = {row[0] for row in conn.execute(f"SELECT name FROM {_HISTORY_TABLE}")}
        for name in migration_names():
            if name in done:
                continue
            sql = (SQL_DIR / name).read_text()
            conn.execute(sql)
            conn.execute(f"INSERT INTO {_HISTORY_TABLE} (name) VALUES (%s)", (name,))
            applied_now.append(name)
        conn.commit()
    return applied_now
