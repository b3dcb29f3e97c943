"""Fixtures and helpers shared by the fetch, rank and publish stage tests.

A simulated arena is written once per session into a database that each test clones (a fresh,
seeded database in milliseconds); S3 is moto's, one bucket per test; the handlers are called as
Lambda calls them, with a Lambda context object. The arena is written with a fixed "now" and runs
use a fixed ``run_at`` after it, so results do not depend on the wall clock.
"""

from __future__ import annotations

import io
import itertools
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import boto3
import psycopg
import pytest
from moto import mock_aws
from psycopg import sql

from common import storage
from common.observability import logger
from local import postgres, simulate
from local.moto_lambda import InvocationContext

REGION = "us-east-1"
BUCKET = "leaderboard-test-artifacts"
ARENA_MODELS, ARENA_BATTLES, ARENA_SEED = 12, 6000, 7
SEED_NOW = datetime(2025, 6, 1, tzinfo=UTC)
RUN_AT = "2025-06-01T06:00:00Z"
BOOTSTRAP = 20
EXECUTION_NAME = "exec-test-1"
EXECUTION_ID = f"arn:aws:states:{REGION}:123456789012:execution:leaderboard:{EXECUTION_NAME}"
_STAGE_ENV = (
    "DATABASE_URL", "DATABASE_SECRET_ARN", "LEADERBOARD_FILTERS", "MIN_BATTLES", "MIN_MODELS",
    "MIN_EVALS", "ARTIFACTS_PREFIX",
)  # fmt: skip
_clones = itertools.count()


def _drop(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def seeded_template(pg_admin_url: str) -> Iterator[str]:
    """Name of a database holding the schema and the simulated arena (never used directly)."""
    name = f"stages_seed_{os.getpid()}"
    url = postgres.create_database(pg_admin_url, name, replace=True)
    arena = simulate.simulate_arena(ARENA_MODELS, ARENA_BATTLES, seed=ARENA_SEED)
    simulate.write_database(arena, url, now=SEED_NOW)
    yield name
    _drop(pg_admin_url, name)


def _clone(admin_url: str, template: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    return postgres.with_database(admin_url, name)


@pytest.fixture
def seeded_url(pg_admin_url: str, seeded_template: str) -> Iterator[str]:
    """A fresh copy of the seeded database for one test (publish tests write to it)."""
    name = f"stages_{os.getpid()}_{next(_clones)}"
    yield _clone(pg_admin_url, seeded_template, name)
    _drop(pg_admin_url, name)


@pytest.fixture(scope="session")
def readonly_seeded_url(pg_admin_url: str, seeded_template: str) -> Iterator[str]:
    """One copy of the seeded database shared by the tests that only read (fetch, rank); the
    server refuses writes to it, so no test can change what the others read."""
    name = f"stages_ro_{os.getpid()}"
    url = _clone(pg_admin_url, seeded_template, name)
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(
                sql.Identifier(name)
            )
        )
    yield url
    _drop(pg_admin_url, name)


@pytest.fixture
def stage_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto's AWS with the artifacts bucket; yields an S3 client for assertions."""
    for key, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "ARTIFACTS_BUCKET": BUCKET,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        yield s3


def _stage_env(monkeypatch: pytest.MonkeyPatch, url: str) -> str:
    for key in _STAGE_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DATABASE_URL", url)
    return url


@pytest.fixture
def stage_env(stage_aws: Any, readonly_seeded_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The environment a stage function gets, over the shared read-only seeded database;
    returns its URL (for fetch and rank, which only read)."""
    return _stage_env(monkeypatch, readonly_seeded_url)


@pytest.fixture
def publish_env(stage_aws: Any, seeded_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The environment of a stage over a fresh seeded database of its own; returns its URL."""
    return _stage_env(monkeypatch, seeded_url)


@pytest.fixture
def lambda_context() -> InvocationContext:
    return InvocationContext(
        function_name="leaderboard-stage",
        invoked_function_arn=f"arn:aws:lambda:{REGION}:123456789012:function:leaderboard-stage",
        memory_limit_in_mb=1024,
        timeout_s=900,
    )


@pytest.fixture
def stage_logs() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The Powertools JSON log lines written during the test, parsed."""
    stream = io.StringIO()
    handler = logger.registered_handler
    previous = handler.setStream(stream)  # type: ignore[attr-defined]
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    handler.setStream(previous)  # type: ignore[attr-defined]


# --- helpers ------------------------------------------------------------------------------------
def fetch_event(**request: Any) -> dict[str, Any]:
    """A FetchEvent as the state machine builds it; the request defaults to a small fixed run."""
    body = {"leaderboards": "all", "bootstrap": BOOTSTRAP, "run_at": RUN_AT, **request}
    return {"request": body, "execution_id": EXECUTION_ID, "execution_name": EXECUTION_NAME}


def object_keys(s3: Any, bucket: str = BUCKET) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


@contextmanager
def s3_requests(operations: list[str]) -> Iterator[list[Any]]:
    """The requests the stages' S3 client sends for ``operations``, as they leave."""
    client = storage.s3_client()
    sent: list[Any] = []

    def record(request: Any, **_: Any) -> None:
        sent.append(request)

    events = [f"before-send.s3.{operation}" for operation in operations]
    for event in events:
        client.meta.events.register(event, record)
    try:
        yield sent
    finally:
        for event in events:
            client.meta.events.unregister(event, record)


def object_bytes(s3: Any, uri: str) -> bytes:
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def put_object(s3: Any, uri: str, data: bytes) -> None:
    bucket, _, key = uri[len("s3://") :].partition("/")
    s3.put_object(Bucket=bucket, Key=key, Body=data)


def rank_events(fetch_result: dict[str, Any]) -> list[dict[str, Any]]:
    """The Map's items, as its ItemSelector builds them."""
    return [{"run": fetch_result["run"], "leaderboard": b} for b in fetch_result["leaderboards"]]


def payload(value: Any) -> Any:
    """``value`` as the next state receives it: through JSON, as Step Functions passes it."""
    return json.loads(json.dumps(value))
