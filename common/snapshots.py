"""Leaderboard snapshots in BixArena's database, as its API reads them.

"Published" means ``visibility = 'public'``; BixArena's API shows, per leaderboard, the newest public
snapshot by ``created_at DESC`` (upstream's ``findLatestPublicByLeaderboard``; ``shown_snapshot``
is that query). Publish writes ``created_at`` = the run's ``run_at``, the instant up to which its
votes count, so ``created_at`` orders snapshots by their data, whenever they were computed: that
is the *data order* every read here follows (``DATA_ORDER``). Upstream breaks no ties on
``created_at``; we break them by identifier, then id, so that "newest" and "the one before" are
always one snapshot. Publish never writes a tie itself: one leaderboard's identifiers are unique
and each one is its ``run_at`` to the second. These reads serve the publish stage
(``common.publish``) and the operator's tools (``cli.snapshots``).
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
from common.standing import Placement

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
_DATA_KEY = '(s.created_at, s.snapshot_identifier COLLATE "C", s.id)'
DATA_ORDER = 's.created_at DESC, s.snapshot_identifier COLLATE "C" DESC, s.id DESC'
"""Newest data first: ``created_at`` (the data time), ties broken by identifier, then id."""
OLDEST_FIRST = 's.created_at, s.snapshot_identifier COLLATE "C", s.id'
"""``DATA_ORDER`` reversed: a history, oldest data first."""


def data_key(info: SnapshotInfo) -> tuple[datetime, str, str]:
    """A snapshot's place in data order, as ``DATA_ORDER`` sorts it (code point order on the
    identifier, as ``COLLATE "C"``; a UUID's text sorts as its bytes)."""
    return (info.created_at, info.snapshot_identifier, info.id)


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


def _newest_public(conn: psycopg.Connection, where: str, value: str) -> SnapshotInfo | None:
    with conn.cursor(row_factory=class_row(SnapshotInfo)) as cur:
        cur.execute(
            SELECT_SNAPSHOTS
            + f"WHERE {where} = %s AND s.visibility = 'public' ORDER BY {DATA_ORDER} LIMIT 1",
            (value,),
        )
        return cur.fetchone()


def latest_public_snapshot(conn: psycopg.Connection, leaderboard: str) -> SnapshotInfo | None:
    """What BixArena shows for a leaderboard (by slug): its newest public snapshot in data order."""
    return _newest_public(conn, "l.slug", leaderboard)


def shown_snapshot(conn: psycopg.Connection, leaderboard_id: str) -> SnapshotInfo | None:
    """What BixArena shows for a leaderboard (by id): its newest public snapshot in data order."""
    return _newest_public(conn, "s.leaderboard_id", leaderboard_id)


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
    """The public snapshot of the same leaderboard immediately before ``snapshot`` in data order
    (never a newer one, whenever either was written): what its movements are measured against.
    For a private snapshot newer than every public one, that is what BixArena shows."""
    with conn.cursor(row_factory=class_row(SnapshotInfo)) as cur:
        cur.execute(
            SELECT_SNAPSHOTS
            + f"WHERE s.leaderboard_id = %s AND s.visibility = 'public' AND {_DATA_KEY}"
            " < (%s::timestamptz, %s::text, %s::uuid)"
            f" ORDER BY {DATA_ORDER} LIMIT 1",
            (
                snapshot.leaderboard_id,
                snapshot.created_at,
                snapshot.snapshot_identifier,
                snapshot.id,
            ),
        )
        return cur.fetchone()


def placement(conn: psycopg.Connection, snapshot: SnapshotInfo) -> Placement:
    """Where ``snapshot`` stands against what BixArena shows for its leaderboard now."""
    shown = shown_snapshot(conn, snapshot.leaderboard_id)
    return Placement(
        slug=snapshot.leaderboard_slug,
        snapshot_identifier=snapshot.snapshot_identifier,
        public=snapshot.visibility == "public",
        shown=shown.snapshot_identifier if shown else None,
        superseded=shown is not None and data_key(shown) > data_key(snapshot),
    )


# --- writing ------------------------------------------------------------------------------------
def lock_leaderboard(conn: psycopg.Connection, leaderboard_id: str) -> None:
    """Serialize, until the transaction ends, the changes to one leaderboard's public snapshots
    (publish, and the operator's publish/unpublish/delete): each then reads what BixArena shows
    after every change committed before it, so two overlapping runs cannot both report "live"."""
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
        (f"bixarena-leaderboard-snapshots:{leaderboard_id}",),
    )
