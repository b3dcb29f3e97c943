"""What every ``leaderboard`` command shares: the usage error, argument types, the database."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


class UsageError(Exception):
    """Bad arguments or bad input file: printed as one line, exit code 2."""


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def int_between(low: int, high: int) -> Callable[[str], int]:
    """An argument type: an integer from ``low`` to ``high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {low} to {high}, got {value}")
        return value

    return parse


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def checked_database_url(text: str, where: str) -> str:
    """``text`` when it is a PostgreSQL URL or keyword/value connection string libpq can read,
    else UsageError naming ``where`` it came from (``common.db.conninfo``: the text is not
    repeated, it may hold the password)."""
    from common import db
    from common.errors import ConfigurationError

    try:
        db.conninfo(text)
    except ConfigurationError:
        raise UsageError(
            f"{where}: not a PostgreSQL URL or connection string"
            " (postgresql://user@host:5432/dbname)"
        ) from None
    return text


@contextmanager
def database(args: argparse.Namespace) -> Iterator[str]:
    """The database a command reads or corrects: --database-url, else $DATABASE_URL, else the
    database of this machine's local runs (``--state-dir``), its server started for the command
    and stopped after it when it was not running already."""
    if args.database_url:  # checked by ``main``, as every command's --database-url
        yield str(args.database_url)
        return
    if url := os.environ.get("DATABASE_URL"):
        yield checked_database_url(url, "DATABASE_URL")
        return
    from common.errors import DatabaseUnavailable
    from local import postgres

    data_dir = Path(getattr(args, "state_dir", None) or ".local") / "postgres"
    try:
        with postgres.local_database(data_dir) as local_url:
            print(f"leaderboard: the local runs' database ({data_dir})", file=sys.stderr)
            yield local_url
    except postgres.NoLocalDatabase:
        raise UsageError(
            "no database: give --database-url URL (or set DATABASE_URL), or run "
            f"`leaderboard run` (make run) first to create the local one in {data_dir}"
        ) from None
    except postgres.EmbeddedPostgresFailed as exc:
        raise DatabaseUnavailable(str(exc)) from None


def echo() -> Callable[[str], None]:
    """Print to the terminal even while the local functions' stdout goes to their log file."""
    stream = sys.stdout

    def write(line: str) -> None:
        print(line, file=stream, flush=True)

    return write
