"""PostgreSQL access shared by the stages: connections and transient-error mapping.

Failures that pass -- the server unreachable, restarting or failing over, a lost connection, a
deadlock -- become ``DatabaseUnavailable`` (retried by the state machine); the rest, such as a
statement timeout or a permission refused, keep psycopg's own class, named for what happened, and
are not retried: they would fail the same way each time. A connection string libpq cannot read is
a ``ConfigurationError``. Messages never carry the password. The schema belongs to BixArena's
Flyway; ``local.schema`` recreates it for tests and local runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from common.errors import ConfigurationError, DatabaseUnavailable

CONNECT_TIMEOUT_S = 10
KEEPALIVES: dict[str, int] = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,
}
"""TCP settings for connections the connection string leaves unset: a server that vanished (a
failover's old host) is noticed within about a minute as a lost connection, which is retried,
rather than waited on until the Lambda times out, which is not."""
TRANSIENT_SQLSTATES = frozenset({"53300", "55P03", "57P01", "57P02", "57P03", "25006"})
"""Server errors that pass: too many connections, lock not available, the server shutting down,
crashed or starting, and a read-only transaction (the writer demoted by a failover). Besides
these, class 08 (connection exceptions) and class 40 (a serialization failure or deadlock: the
stage's transaction is redone whole on retry)."""
_MASK = "***"
_SECRET_KEYWORDS = frozenset({"password", "sslpassword"})
"""libpq keywords whose values are secrets (sslpassword unlocks the client's TLS key)."""

# The three places libpq takes a password from a connection string (docs: "Connection Strings"),
# parsed as libpq parses them: a URL's userinfo (postgresql://user:secret@host, up to the first
# "@"), a URL's query parameters (?password=secret, keys and values percent-encoded), and
# keyword/value pairs (password=secret, password = 'a b', backslash escapes in or out of quotes).
_URL_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:@/\s]*:)[^@/\s]*@")
_URL_PARAMETER = re.compile(r"(?P<head>[?&](?P<key>[^=&#\s]*)=)[^&#\s]*")
_KEYWORD_VALUE = re.compile(
    r"(?<![\w.?&%-])(?P<head>(?P<key>[A-Za-z_]+)\s*=\s*)"
    r"(?:'(?:\\[\s\S]?|[^'\\])*'?|(?:\\[\s\S]?|[^\s'\\])(?:\\[\s\S]?|[^\s\\])*)?"
)


def redact(text: str) -> str:
    """``text`` (a connection string, or a message quoting one) with every password as ***."""
    text = _URL_USERINFO.sub(lambda m: f"{m['head']}{_MASK}@", text)
    text = _URL_PARAMETER.sub(_masked_if_secret, text)
    return _KEYWORD_VALUE.sub(_masked_if_secret, text)


def _masked_if_secret(match: re.Match[str]) -> str:
    if unquote(match["key"]).lower() not in _SECRET_KEYWORDS:
        return match[0]
    return f"{match['head']}{_MASK}"


def _describe(exc: BaseException) -> str:
    # psycopg puts the host and sometimes the whole conninfo in its message: the first line only.
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return redact(first)


def passes(exc: psycopg.Error) -> bool:
    """Whether the same work may succeed when tried again: a connection failure (no SQLSTATE: the
    client lost the server) or a server error of TRANSIENT_SQLSTATES, class 08 or class 40."""
    state = exc.sqlstate
    if state is None:
        return isinstance(exc, psycopg.OperationalError)
    return state in TRANSIENT_SQLSTATES or state[:2] in ("08", "40")


def conninfo(url: str) -> dict[str, Any]:
    """The keywords of a connection string (URL or keyword/value pairs), as libpq reads them; one
    it cannot read is a ``ConfigurationError`` that does not quote it: libpq's message quotes the
    part it could not read, which may be the password."""
    try:
        return conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise ConfigurationError(
            "the database connection string is not one libpq can read"
            " (postgresql://user@host:5432/dbname or keyword=value pairs)"
        ) from None


@contextmanager
def connect(
    url: str, *, read_only: bool = False, autocommit: bool = False
) -> Iterator[psycopg.Connection]:
    """Open a connection (with KEEPALIVES where ``url`` sets none); failures that pass
    (``passes``) raise ``DatabaseUnavailable``, others keep their psycopg class."""
    given = conninfo(url)
    tcp = {key: value for key, value in KEEPALIVES.items() if key not in given}
    try:
        conn = psycopg.connect(
            make_conninfo(url, connect_timeout=CONNECT_TIMEOUT_S, **tcp), autocommit=autocommit
        )
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {_describe(exc)}") from None
    try:
        if read_only:
            conn.read_only = True
        yield conn
    except psycopg.Error as exc:
        if not passes(exc):
            raise
        if exc.sqlstate is None or exc.sqlstate[:2] in ("08", "57"):
            raise DatabaseUnavailable(f"PostgreSQL connection lost: {_describe(exc)}") from None
        raise DatabaseUnavailable(
            f"PostgreSQL refused for now (SQLSTATE {exc.sqlstate}): {_describe(exc)}"
        ) from None
    finally:
        conn.close()
