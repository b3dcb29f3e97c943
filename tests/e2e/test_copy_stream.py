"""COPY straight on libpq, against the seeded database: a stream abandoned half-way, errors from
the server and from a dropped connection, the garbage collector's pause, the GIL left free."""

from __future__ import annotations

import gc
import threading
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from common import copy_stream
from common.fetch import copy_row


def _votes_statement() -> tuple[Any, dict[str, Any]]:
    from common.filters import LeaderboardFilters, plan_fetch, votes_query

    return votes_query(
        plan_fetch(["overall"], LeaderboardFilters(), datetime(2025, 6, 1, 6, tzinfo=UTC))
    )


def test_copy_out_abandoned_half_way_leaves_the_connection_usable(readonly_seeded_url: str) -> None:
    statement, params = _votes_statement()
    with psycopg.connect(readonly_seeded_url) as conn:
        conn.execute("SELECT 1")
        messages = copy_stream.copy_out(conn, statement, params)
        assert next(messages)[:11] == copy_stream.COPY_SIGNATURE
        messages.close()
        # The COPY was cancelled: the transaction failed, the connection is idle and usable.
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM api.model").fetchone() == (12,)
        complete = sum(len(m) for m in copy_stream.copy_out(conn, statement, params))
        assert (complete - 21) % copy_row(0)[0].itemsize == 0


def test_copy_out_pauses_the_cyclic_collector_only_while_it_gathers_rows(
    readonly_seeded_url: str,
) -> None:
    from psycopg import sql

    statement, params = _votes_statement()
    collections = 0

    def count(phase: str, info: dict[str, int]) -> None:
        nonlocal collections
        collections += phase == "start"

    with psycopg.connect(readonly_seeded_url) as conn:
        conn.execute("SELECT 1")
        gc.callbacks.append(count)
        try:
            # One chunk: the whole stream is gathered in one go.
            stream = b"".join(copy_stream.copy_out(conn, statement, params, chunk_bytes=1 << 30))
        finally:
            gc.callbacks.remove(count)
        rows = (len(stream) - 21) // copy_row(0)[0].itemsize
        # A tuple and a memoryview a row: with the collector on, one collection per ~350 rows.
        assert rows > 3_000, rows
        assert collections <= 2, collections  # the statement and the selector set-up may take one
        assert gc.isenabled()
        conn.rollback()

        # The consumer of a chunk runs with the collector on.
        conn.execute("SELECT 1")
        messages = copy_stream.copy_out(conn, statement, params, chunk_bytes=1024)
        next(messages)
        assert gc.isenabled()
        messages.close()  # abandoned half-way
        assert gc.isenabled()
        conn.rollback()

        conn.execute("SELECT 1")
        with pytest.raises(psycopg.errors.UndefinedTable):
            next(copy_stream.copy_out(conn, sql.SQL("SELECT * FROM api.nothing"), {}))
        assert gc.isenabled()
        conn.rollback()

        # A caller that turned the collector off keeps it off.
        gc.disable()
        try:
            conn.execute("SELECT 1")
            assert list(copy_stream.copy_out(conn, statement, params))
            assert not gc.isenabled()
        finally:
            gc.enable()


def test_copy_out_errors(readonly_seeded_url: str, pg_admin_url: str) -> None:
    from psycopg import sql

    statement, params = _votes_statement()
    with psycopg.connect(readonly_seeded_url) as conn:
        with pytest.raises(copy_stream.CopyFormatError, match="inside an open transaction"):
            next(copy_stream.copy_out(conn, statement, params))
        conn.execute("SELECT 1")
        with pytest.raises(psycopg.errors.UndefinedTable):
            next(copy_stream.copy_out(conn, sql.SQL("SELECT * FROM api.nothing"), {}))
    # The server goes away mid-stream: a connection error, which db.connect maps to
    # DatabaseUnavailable.
    conn = psycopg.connect(readonly_seeded_url)
    try:
        conn.execute("SELECT 1")
        endless = sql.SQL("SELECT a.id FROM api.battle a CROSS JOIN api.battle b")
        messages = copy_stream.copy_out(conn, endless, {})
        next(messages)
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
        with pytest.raises(psycopg.OperationalError):
            for _ in messages:
                pass
    finally:
        conn.close()


def test_copy_out_leaves_the_gil_free_while_the_server_works(readonly_seeded_url: str) -> None:
    """A driver call blocking in C with the GIL held starves every other thread (the local
    runner's database proxy hung on it); waiting on a selector does not. A counting thread must
    make, while the server sleeps half a second, a good share of the progress it makes while
    this thread sleeps as long."""
    from psycopg import sql

    ticks = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    with psycopg.connect(readonly_seeded_url) as conn:
        conn.execute("SELECT 1")
        counter = threading.Thread(target=count)
        counter.start()
        try:
            before = ticks
            time.sleep(0.5)
            idle = ticks - before
            before = ticks
            messages = list(copy_stream.copy_out(conn, sql.SQL("SELECT 1 FROM pg_sleep(0.5)"), {}))
            during = ticks - before
        finally:
            stop.set()
            counter.join()
    stream = b"".join(messages)
    assert stream.startswith(copy_stream.COPY_SIGNATURE) and stream.endswith(b"\xff\xff")
    assert during > idle / 4
