"""``common.db.redact`` against every form libpq reads a password from, and the CLI's use of it.

Each case names the secret that must disappear and what must stay readable. The cases are
written from libpq's documentation ("Connection Strings"), not from the regexes.
"""

from __future__ import annotations

import psycopg
import pytest

from common.db import redact

SECRET = "S3cr3t-Pa55"

CASES: list[tuple[str, str, str]] = [
    # (connection string, what it must become, the secret part that must not remain)
    ("postgresql://alice:S3cr3t-Pa55@db.example:5432/arena",
     "postgresql://alice:***@db.example:5432/arena", SECRET),
    ("postgres://alice:S3cr3t-Pa55@h1:5432,h2:5433/arena?sslmode=require",
     "postgres://alice:***@h1:5432,h2:5433/arena?sslmode=require", SECRET),
    ("postgresql://:S3cr3t-Pa55@db.example/arena", "postgresql://:***@db.example/arena", SECRET),
    ("postgresql://alice:pa%40ss?word@db.example/arena",
     "postgresql://alice:***@db.example/arena", "pa%40ss?word"),
    ("postgresql://alice@db.example/arena", "postgresql://alice@db.example/arena", ""),
    ("postgresql://db.example/arena?user=alice&password=S3cr3t-Pa55&sslmode=require",
     "postgresql://db.example/arena?user=alice&password=***&sslmode=require", SECRET),
    ("postgresql://db.example/arena?password=S3cr3t-Pa55",
     "postgresql://db.example/arena?password=***", SECRET),
    ("postgresql://db.example/arena?pass%77ord=S3cr3t-Pa55#frag",
     "postgresql://db.example/arena?pass%77ord=***#frag", SECRET),
    ("postgresql:///arena?host=/tmp&sslpassword=S3cr3t-Pa55",
     "postgresql:///arena?host=/tmp&sslpassword=***", SECRET),
    ("host=db.example password=S3cr3t-Pa55 dbname=arena",
     "host=db.example password=*** dbname=arena", SECRET),
    ("host=db.example password = S3cr3t-Pa55 dbname=arena",
     "host=db.example password = *** dbname=arena", SECRET),
    ("host=db.example password='S3cr3t Pa55' dbname=arena",
     "host=db.example password=*** dbname=arena", "S3cr3t Pa55"),
    (r"password='it\'s S3cr3t' user=alice", "password=*** user=alice", r"it\'s S3cr3t"),
    (r"password=S3cr3t\ Pa55 user=alice", "password=*** user=alice", r"S3cr3t\ Pa55"),
    ("password='' user=alice", "password=*** user=alice", ""),
    ("password= user=alice", "password= ***", "user=alice"),
    ("user=alice sslpassword=S3cr3t-Pa55", "user=alice sslpassword=***", SECRET),
    ("PASSWORD=S3cr3t-Pa55 host=h", "PASSWORD=*** host=h", SECRET),
    ('invalid connection option "password=S3cr3t-Pa55"',
     'invalid connection option "password=***', SECRET),
    ("host=db.example port=5432 dbname=arena user=alice sslmode=require",
     "host=db.example port=5432 dbname=arena user=alice sslmode=require", ""),
    ("mypassword=visible passwords=visible", "mypassword=visible passwords=visible", ""),
]  # fmt: skip


@pytest.mark.parametrize(("text", "redacted", "secret"), CASES)
def test_every_libpq_password_form_is_masked(text: str, redacted: str, secret: str) -> None:
    assert redact(text) == redacted
    if secret:
        assert secret not in redact(text)


@pytest.mark.parametrize(
    "text",
    [c[0] for c in CASES if c[0].startswith(("host=", "password=", "user=", "postgres"))],
)
def test_the_cases_are_what_libpq_reads(text: str) -> None:
    """The table is not made up: libpq's own parser finds the password where the case says."""
    parsed = psycopg.conninfo.conninfo_to_dict(text)
    secret = parsed.get("password") or parsed.get("sslpassword")
    if secret:
        assert str(secret) not in redact(text)


@pytest.mark.parametrize("form", ["keyword", "query"])
def test_the_cli_never_prints_the_password(
    database_url: str, form: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`leaderboard simulate --database-url` echoes where it wrote, password masked (the test
    server trusts local connections, so any password is accepted and must still be hidden)."""
    from cli.main import main

    if form == "keyword":
        url = psycopg.conninfo.make_conninfo(database_url, password=SECRET)
    else:
        info = psycopg.conninfo.conninfo_to_dict(database_url)
        url = (
            f"postgresql://{info.get('user') or ''}@/{info['dbname']}"
            f"?host={info['host']}&port={info.get('port') or 5432}&password={SECRET}"
        )
    assert main(["simulate", "--models", "4", "--battles", "40", "--database-url", url]) == 0
    printed = capsys.readouterr()
    assert "wrote 40 battles" in printed.out
    assert SECRET not in printed.out + printed.err
    assert "password=***" in printed.out


MALFORMED = "postgresql://app:S3cr3t-Pa55%zz@db.example/arena"
"""libpq cannot read it (a bad percent escape in the password) and quotes the bad part."""


@pytest.mark.parametrize(
    "command",
    [
        ["run", "--database-url", MALFORMED],
        ["db", "init", "--database-url", MALFORMED],
        ["simulate", "--database-url", MALFORMED],
        ["snapshots", "list", "--leaderboard", "overall", "--database-url", MALFORMED],
        ["backfill", "--from", "2026-11-01", "--to", "2026-11-02", "--database-url", MALFORMED],
    ],
)
def test_a_connection_string_libpq_cannot_read_is_bad_input(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import main

    assert main(command) == 2
    err = capsys.readouterr().err
    assert err == (
        "leaderboard: error: --database-url: not a PostgreSQL URL or connection string"
        " (postgresql://user@host:5432/dbname)\n"
    )


def test_a_database_url_variable_libpq_cannot_read_is_bad_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import main

    monkeypatch.setenv("DATABASE_URL", MALFORMED)
    assert main(["snapshots", "list", "--leaderboard", "overall"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "leaderboard: error: DATABASE_URL: not a PostgreSQL URL or connection string"
        " (postgresql://user@host:5432/dbname)\n"
    )


def test_a_connection_libpq_cannot_parse_names_no_password() -> None:
    """Stages given such a DATABASE_URL fail with a configuration error, password masked: the
    message reaches the logs, the execution's history and the Slack alert."""
    from common.db import connect
    from common.errors import ConfigurationError

    with pytest.raises(ConfigurationError) as raised, connect(MALFORMED):
        pass
    assert SECRET not in str(raised.value)
