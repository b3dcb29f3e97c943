"""The switchable database front used by local runs to take PostgreSQL down and up again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from common import db
from common.errors import DatabaseUnavailable
from local.dbproxy import DatabaseProxy

REPO_ROOT = Path(__file__).resolve().parents[2]


def _socket_path(url: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    host, port = str(info.get("host") or ""), str(info.get("port") or 5432)
    return f"{host}/.s.PGSQL.{port}" if host.startswith("/") else f"{host}:{port}"


def _started_proxy(database_url: str) -> tuple[DatabaseProxy, str]:
    """A running proxy to the test database, and the connection string that goes through it."""
    proxy = DatabaseProxy(_socket_path(database_url))
    port = proxy.start()
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    via_proxy = psycopg.conninfo.make_conninfo(
        host="127.0.0.1", port=port, dbname=info["dbname"], user=info.get("user") or "postgres"
    )
    return proxy, via_proxy


def test_proxy_forwards_and_goes_down_and_up(database_url: str) -> None:
    proxy, via_proxy = _started_proxy(database_url)
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


def test_proxy_outlives_ctrl_c(database_url: str) -> None:
    """Ctrl-C reaches every process of the terminal's group; the runner lets the execution under
    way end, and that execution still needs the database."""
    proxy, via_proxy = _started_proxy(database_url)
    try:
        assert proxy._process is not None and proxy._process.pid is not None
        os.kill(proxy._process.pid, signal.SIGINT)
        time.sleep(0.5)
        with db.connect(via_proxy) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        proxy.stop()


def test_proxy_ends_with_its_parent(database_url: str, tmp_path: Path) -> None:
    """A runner killed outright (SIGKILL, a closed terminal) cannot stop its proxy: the proxy
    notices and ends, so nothing is left listening on 127.0.0.1."""
    script = (
        "import sys, time\n"
        "from local.dbproxy import DatabaseProxy\n"
        "if __name__ == '__main__':\n"
        f"    proxy = DatabaseProxy({_socket_path(database_url)!r})\n"
        "    proxy.start()\n"
        "    print(proxy._process.pid, flush=True)\n"
        "    time.sleep(60)\n"
    )
    path = tmp_path / "runner.py"
    path.write_text(script)
    runner = subprocess.Popen(
        [sys.executable, str(path)], stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT
    )
    try:
        assert runner.stdout is not None
        child = int(runner.stdout.readline())
        runner.kill()
        runner.wait(10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(child), "the proxy outlived the process that started it"
    finally:
        runner.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
