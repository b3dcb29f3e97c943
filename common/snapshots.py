"""Leaderboard snapshots in BixArena's database, as its API reads them.

"Published" means ``visibility = 'public'``; BixArena's API shows, per leaderboard, the newest public
snapshot by ``created_at DESC`` (``latest_public_snapshot`` is that query). These reads serve the
publish stage (``common.publish``) and the operator's tools (``cli.snapshots``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

import psycopg
from psycopg.rows import class_row

from common.errors import (
    InvalidInput,
    SnapshotNotFound,
)

Visibility = Literal["public", "private"]
VISIBILITIES: tuple[str, str] = ("public", "private")
_UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


@dataclass(frozen=True)
class SnapshotInfo:
    id: str
    leaderboard_id: str
    leaderboard_slug: str
    snapshot_identifier: str
    description: str | None
    visibility: str
    created_at: datetime
    updated_at: datetime
    entry_count: int


@dataclass(frozen=True)
class EntryRow:
    model_id: str
    model_slug: str
    model_name: str
    rank: int
    bt_score: Decimal
    bootstrap_q025: Decimal
    bootstrap_q975: Decimal
    vote_count: int


_SNAPSHOT_COLUMNS = """
    s.id::text AS id, s.leaderboard_id::text AS leaderboard_id, l.slug AS leaderboard_slug,
    s.snapshot_identifier, s.description, s.visibility, s.created_at, s.updated_at,
    (SELECT count(*) FROM api.leaderboard_entry e WHERE e.snapshot_id = s.id)::int AS entry_count
"""
_SNAPSHOT_FROM = (
    " FROM api.leaderboard_snapshot s JOIN api.leaderboard l ON l.id = s.leaderboard_id "
)
SELECT_SNAPSHOTS = "SELECT" + _SNAPSHOT_COLUMNS + _SNAPSHOT_FROM
"""``SELECT ... FROM`` snapshots with their leaderboard's slug and entry count (as SnapshotInfo);
add ``WHERE``/``ORDER BY``."""


def parse_snapshot_id(value: str) -> str:
    if not isinstance(value, str) or not _UUID_RE.fullmatch(value):
        raise InvalidInput(f"snapshot_id: {str(value)[:40]!r} is not a UUID")
    return value.lower()


# --- reading ------------------------------------------------------------------------------------
def find_snapshot(
    conn: psycopg.Connection, leaderboard_id: str, snapshot_identifier: str
) -> SnapshotInfo | None:
    with conn.cursor(row_factory=class_row(SnapshotInfo)) as cur:
        cur.execute(
            SELECT_SNAPSHOTS
            + "WHERE s.leaderboard_id = %s AND s.snapshot_identifier = %s",
            (leaderboard_id, snapshot_identifier),
        )  # fmt: skip
        return cur.fetchone()


def get_snapshot(conn: psycopg.Connection, snapshot_id: str) -> SnapshotInfo:
    with conn.cursor(row_factory=class_row(SnapshotInfo)) as cur:
        cur.execute(
            SELECT_SNAPSHOTS + "WHERE s.id = %s",
            (parse_snapshot_id(snapshot_id),),
        )
        found = cur.fetchone()
    if found is None:
        raise SnapshotNotFound(f"snapshot_id: no snapshot {snapshot_id}")
    return found


def latest_public_snapshot(conn: psycopg.Connection, leaderboard: str) -> SnapshotInfo | None:
    """What BixArena shows for a leaderboard: its newest public snapshot by created_at."""
    with conn.cursor(row_factory=class_row(SnapshotInfo)) as cur:
        cur.execute(
            SELECT_SNAPSHOTS
            + "WHERE l.slug = %s AND s.visibility = 'public'"
            " ORDER BY s.created_at DESC, s.id DESC LIMIT 1",
            (leaderboard,),
        )  # fmt: skip
        return cur.fetchone()


def snapshot_entries(conn: psycopg.Connection, snapshot_id: str) -> list[EntryRow]:
    """A snapshot's entries by rank (then name), with the models' slugs and names."""
    with conn.cursor(row_factory=class_row(EntryRow)) as cur:
        cur.execute(
            "SELECT e.model_id::text AS model_id, m.slug AS model_slug, m.name AS model_name,"
            " e.rank, e.bt_score, e.bootstrap_q025, e.bootstrap_q975, e.vote_count"
            " FROM api.leaderboard_entry e JOIN api.model m ON m.id = e.model_id"
            " WHERE e.snapshot_id = %s ORDER BY e.rank, m.name, e.model_id",
            (parse_snapshot_id(snapshot_id),),
        )
        return cur.fetchall()


def previous_public_snapshot(
    conn: psycopg.Connection, snapshot: SnapshotInfo
) -> SnapshotInfo | None:
    """The newest public snapshot of the same leaderboard created before ``snapshot``."""
    with conn.cursor(row_factory=class_row(SnapshotInfo)) as cur:
        cur.execute(
            SELECT_SNAPSHOTS
            + "WHERE s.leaderboard_id = %s AND s.visibility = 'public' AND s.id <> %s"
            " AND s.created_at < %s ORDER BY s.created_at DESC, s.id DESC LIMIT 1",
            (snapshot.leaderboard_id, snapshot.id, snapshot.created_at),
        )  # fmt: skip
        return cur.fetchone()
