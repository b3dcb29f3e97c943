"""The switchable database front used by local runs to take PostgreSQL down and up again."""

from __future__ import annotations

import psycopg
import pytest

from common import db
from common.errors import DatabaseUnavailable
from local.dbproxy import DatabaseProxy


def _socket_path(url: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    host, port = str(info.get("host") or ""), str(info.get("port") or 5432)
    return f"{host}/.s.PGSQL.{port}" if host.startswith("/") else f"{host}:{port}"


def test_proxy_forwards_and_goes_down_and_up(database_url: str) -> None:
    proxy = DatabaseProxy(_socket_path(database_url))
    port = proxy.start()
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    via_proxy = psycopg.conninfo.make_conninfo(
        host="127.0.0.1", port=port, dbname=info["dbname"], user=info.get("user") or "postgres"
    )
    try:
        with (
            pytest.raises(DatabaseUnavailable, match="connection lost"),
            db.connect(via_proxy) as conn,
        ):
            assert conn.execute("SELECT count(*) FROM api.leaderboard").fetchone() == (21,)
            proxy.stop()
            conn.execute("SELECT 1").fetchone()
        with pytest.raises(DatabaseUnavailable, match="cannot connect"), db.connect(via_proxy):
            pass
        proxy.start()
        with db.connect(via_proxy) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        proxy.stop()
