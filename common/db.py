"""PostgreSQL access shared by the stages: connections, transient-error mapping, migrations.

Connection failures become ``DatabaseUnavailable`` (retried by the state machine); messages never
carry the password. Migrations in ``common/sql`` recreate BixArena's schema for tests and local
runs only: in production the schema belongs to BixArena's Flyway.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from common.errors import DatabaseUnavailable

CONNECT_TIMEOUT_S = 10
_HISTORY_TABLE = "public.leaderboard_pipeline_migrations"
SQL_DIR = Path(__file__).parent / "sql"


def redact(url: str) -> str:
    """A database URL fit for a log line: the password replaced by ***."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _describe(exc: BaseException) -> str:
    # psycopg puts the host and sometimes the whole conninfo in its message: keep the first line only
    # and scrub anything that looks like a password assignment.
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"password=\S+", "password=***", first)


@contextmanager
def connect(
    url: str, *, read_only: bool = False, autocommit: bool = False
) -> Iterator[psycopg.Connection]:
    """Open a connection; failures to reach the server raise ``DatabaseUnavailable``."""
    try:
        conn = psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {_describe(exc)}") from None
    try:
        if read_only:
            conn.read_only = True
        yield conn
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"PostgreSQL connection lost: {_describe(exc)}") from None
    finally:
        conn.close()


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
