"""``common.db``'s connections: TCP keepalives, and which server errors are retried."""

from __future__ import annotations

import psycopg
import pytest

from common import db
from common.errors import DatabaseUnavailable


def test_connections_keep_alive_unless_the_string_says_otherwise(database_url: str) -> None:
    with db.connect(database_url) as conn:
        given = conn.info.get_parameters()
    assert (given["keepalives_idle"], given["tcp_user_timeout"]) == ("30", "60000")
    own = psycopg.conninfo.make_conninfo(database_url, keepalives_idle=7)
    with db.connect(own) as conn:
        assert conn.info.get_parameters()["keepalives_idle"] == "7"


@pytest.mark.parametrize(
    ("statement", "retried"),
    [
        ("SET LOCAL statement_timeout = 1; SELECT pg_sleep(1)", False),  # 57014: would repeat
        ("SET LOCAL lock_timeout = 1; LOCK TABLE api.leaderboard", True),  # 55P03: passes
        ("SET TRANSACTION READ ONLY; CREATE TEMP TABLE t (x int)", True),  # 25006: a failover
        ("SELECT 1 / 0", False),  # 22012: a bug, not a database that is down
    ],
)
def test_server_errors_are_retried_only_when_they_pass(
    database_url: str, statement: str, retried: bool
) -> None:
    """Each statement runs in a transaction of its own; the lock case holds the table from a
    second connection so that the lock cannot be had."""
    with db.connect(database_url) as holder, holder.transaction():
        holder.execute("LOCK TABLE api.leaderboard")
        expected: type[Exception] = DatabaseUnavailable if retried else psycopg.Error
        with (
            pytest.raises(expected) as raised,
            db.connect(database_url) as conn,
            conn.transaction(),
        ):
            for part in statement.split("; "):
                conn.execute(part)
        assert isinstance(raised.value, DatabaseUnavailable) == retried
