"""PostgreSQL access shared by the stages: connections and transient-error mapping.

Connection failures become ``DatabaseUnavailable`` (retried by the state machine); messages never
carry the password. The schema belongs to BixArena's Flyway; ``local.schema`` recreates it for
tests and local runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import unquote

import psycopg

from common.errors import DatabaseUnavailable

CONNECT_TIMEOUT_S = 10
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
