"""What every ``leaderboard`` command shares: the usage error, argument types, the database."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable


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


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def database_url(args: argparse.Namespace) -> str:
    """The database a command works on: --database-url, else $DATABASE_URL."""
    url = args.database_url or os.environ.get("DATABASE_URL")
    if not url:
        raise UsageError("no database: give --database-url URL or set DATABASE_URL")
    return str(url)


def echo() -> Callable[[str], None]:
    """Print to the terminal even while the local functions' stdout goes to their log file."""
    stream = sys.stdout

    def write(line: str) -> None:
        print(line, file=stream, flush=True)

    return write
