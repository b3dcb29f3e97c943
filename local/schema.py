"""BixArena's schema for tests and local runs: the migrations in ``local/sql``, applied once.

In production the schema belongs to BixArena's Flyway; these files recreate the tables the pipeline
reads and writes, exactly as upstream defines them, in a database of our own. No production database
runs them, so they are edited in place; each applied file's checksum is recorded, and a database
whose files have changed since is stale (``is_current``), never silently taken as up to date.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import psycopg

from common.db import connect

_HISTORY_TABLE = "public.leaderboard_pipeline_migrations"
SQL_DIR = Path(__file__).parent / "sql"


class SchemaChanged(RuntimeError):
    """The database was migrated with other versions of the files in ``local/sql``."""


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


def migrations() -> dict[str, str]:
    """Every migration file by name, with the SHA-256 of its content."""
    return {
        name: hashlib.sha256((SQL_DIR / name).read_bytes()).hexdigest()
        for name in migration_names()
    }


def schema_version() -> str:
    """A short digest of all migration files: changes whenever any of them changes."""
    listing = "".join(f"{name}\0{digest}\n" for name, digest in migrations().items())
    return hashlib.sha256(listing.encode()).hexdigest()[:12]


def _applied(conn: psycopg.Connection) -> dict[str, str | None]:
    # to_jsonb reads history tables written before checksums were recorded (checksum NULL) too.
    rows = conn.execute(f"SELECT name, to_jsonb(m) ->> 'checksum' FROM {_HISTORY_TABLE} m")
    return dict(rows.fetchall())


def is_current(url: str) -> bool:
    """True when exactly today's migration files, as they are now, have been applied to ``url``."""
    if not _tracked(url):
        return False
    with connect(url) as conn:
        return _applied(conn) == migrations()


def _stale(applied: dict[str, str | None], files: dict[str, str]) -> str | None:
    for name, checksum in sorted(applied.items()):
        if name not in files:
            return f"migration {name} was applied but is no longer in {SQL_DIR}"
        if checksum != files[name]:
            return f"migration {name} changed after it was applied"
    return None


def apply_migrations(url: str) -> list[str]:
    """Apply the schema migrations not yet applied; returns the names applied now.

    Raises ``SchemaChanged`` when an applied file has changed since: the database must be recreated.
    """
    files = migrations()
    applied_now: list[str] = []
    with connect(url) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('leaderboard_pipeline_migrations'))")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {_HISTORY_TABLE} (name TEXT PRIMARY KEY, checksum TEXT,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        conn.execute(f"ALTER TABLE {_HISTORY_TABLE} ADD COLUMN IF NOT EXISTS checksum TEXT")
        applied = _applied(conn)
        problem = _stale(applied, files)
        if problem:
            raise SchemaChanged(f"{problem}: this database has an outdated schema; recreate it")
        for name, checksum in files.items():
            if name in applied:
                continue
            conn.execute((SQL_DIR / name).read_text())
            conn.execute(
                f"INSERT INTO {_HISTORY_TABLE} (name, checksum) VALUES (%s, %s)", (name, checksum)
            )
            applied_now.append(name)
        conn.commit()
    return applied_now
