"""PostgreSQL access shared by the stages: connections and transient-error mapping.

Connection failures become ``DatabaseUnavailable`` (retried by the state machine); messages never
carry the password. The schema belongs to BixArena's Flyway; ``local.schema`` recreates it for
tests and local runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from common.errors import DatabaseUnavailable

CONNECT_TIMEOUT_S = 10


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
