"""Leaderboard snapshots in BixArena's database: publishing one, and the operator's tools.

``publish_entries`` writes a snapshot, its entries and its visibility in ONE transaction, exactly
once per (leaderboard, snapshot_identifier): a retry, a redrive or a concurrent duplicate finds the
snapshot already there (``INSERT ... ON CONFLICT DO NOTHING`` waits for a concurrent inserter to
commit or roll back) and writes nothing. It then compares the snapshot with the previous public one
(newest by ``created_at`` among those created before it), so that a rerun reports the same
movements. A crash before COMMIT leaves nothing behind.

"Published" means ``visibility = 'public'``; BixArena's API shows, per leaderboard, the newest public
snapshot by ``created_at DESC`` (``latest_public_snapshot`` is that query). The operator functions
(list, show, set visibility, delete) take an open connection and commit their own change.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import psycopg
from psycopg.rows import class_row

from common.contracts import PublishResult, snapshot_description
from common.errors import (
    InvalidInput,
    LeaderboardNotFound,
    ModelNotFound,
    NotEnoughData,
    SnapshotNotFound,
)
from common.movements import RankedModel, movements
from common.rank import EntriesDocument
from common.scores import as_decimal

Visibility = Literal["public", "private"]
VISIBILITIES: tuple[str, str] = ("public", "private")
_UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
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


def _snapshot_id(value: str) -> str:
    if not isinstance(value, str) or not _UUID_RE.match(value):
        raise InvalidInput(f"snapshot_id: {str(value)[:40]!r} is not a UUID")
    return value.lower()


# --- reading ------------------------------------------------------------------------------------
def find_snapshot(
    conn: psycopg.Connection, leaderboard_id: str, snapshot_identifier: str
) -> SnapshotInfo | None:
    with conn.cursor(row_factory=class_row(SnapshotInfo)) as cur:
        cur.execute(
            "SELECT" + _SNAPSHOT_COLUMNS + _SNAPSHOT_FROM
            + "WHERE s.leaderboard_id = %s AND s.snapshot_identifier = %s",
            (leaderboard_id, snapshot_identifier),
        )  # fmt: skip
        return cur.fetchone()


def get_snapshot(conn: psycopg.Connection, snapshot_id: str) -> SnapshotInfo:
    with conn.cursor(row_factory=class_row(SnapshotInfo)) as cur:
        cur.execute(
            "SELECT" + _SNAPSHOT_COLUMNS + _SNAPSHOT_FROM + "WHERE s.id = %s",
            (_snapshot_id(snapshot_id),),
        )
        found = cur.fetchone()
    if found is None:
        raise SnapshotNotFound(f"snapshot_id: no snapshot {snapshot_id}")
    return found


def list_snapshots(
    conn: psycopg.Connection,
    leaderboard: str | None = None,
    visibility: Visibility | None = None,
) -> list[SnapshotInfo]:
    """Snapshots with their entry counts, by leaderboard slug then newest first."""
    if visibility is not None and visibility not in VISIBILITIES:
        raise InvalidInput(f"visibility: expected one of {', '.join(VISIBILITIES)}")
    with conn.cursor(row_factory=class_row(SnapshotInfo)) as cur:
        cur.execute(
            "SELECT" + _SNAPSHOT_COLUMNS + _SNAPSHOT_FROM
            + "WHERE (%(slug)s::text IS NULL OR l.slug = %(slug)s)"
            " AND (%(visibility)s::text IS NULL OR s.visibility = %(visibility)s)"
            " ORDER BY l.slug, s.created_at DESC, s.id DESC",
            {"slug": leaderboard, "visibility": visibility},
        )  # fmt: skip
        return cur.fetchall()


def latest_public_snapshot(conn: psycopg.Connection, leaderboard: str) -> SnapshotInfo | None:
    """What BixArena shows for a leaderboard: its newest public snapshot by created_at."""
    with conn.cursor(row_factory=class_row(SnapshotInfo)) as cur:
        cur.execute(
            "SELECT" + _SNAPSHOT_COLUMNS + _SNAPSHOT_FROM
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
            (_snapshot_id(snapshot_id),),
        )
        return cur.fetchall()


def previous_public_snapshot(
    conn: psycopg.Connection, snapshot: SnapshotInfo
) -> SnapshotInfo | None:
    """The newest public snapshot of the same leaderboard created before ``snapshot``."""
    with conn.cursor(row_factory=class_row(SnapshotInfo)) as cur:
        cur.execute(
            "SELECT" + _SNAPSHOT_COLUMNS + _SNAPSHOT_FROM
            + "WHERE s.leaderboard_id = %s AND s.visibility = 'public' AND s.id <> %s"
            " AND s.created_at < %s ORDER BY s.created_at DESC, s.id DESC LIMIT 1",
            (snapshot.leaderboard_id, snapshot.id, snapshot.created_at),
        )  # fmt: skip
        return cur.fetchone()


# --- publishing ---------------------------------------------------------------------------------
def _insert_snapshot(
    conn: psycopg.Connection,
    leaderboard_id: str,
    snapshot_identifier: str,
    document: EntriesDocument,
    description: str,
    visibility: Visibility,
) -> bool:
    """Insert the snapshot and its entries unless it exists; True when this call inserted it."""
    if (
        conn.execute(
            "SELECT 1 FROM api.leaderboard WHERE id = %s FOR KEY SHARE", (leaderboard_id,)
        ).fetchone()
        is None
    ):
        raise LeaderboardNotFound(f"leaderboard.leaderboard_id: {leaderboard_id} no longer exists")
    wanted = [e["model_id"] for e in document["entries"]]
    # FOR KEY SHARE keeps these models from being deleted until we commit.
    present = {
        row[0]
        for row in conn.execute(
            "SELECT id::text FROM api.model WHERE id = ANY(%s::uuid[]) ORDER BY id FOR KEY SHARE",
            (wanted,),
        )
    }
    missing = sorted(set(wanted) - present)
    if missing:
        raise ModelNotFound(
            f"entries: model(s) no longer in api.model: {', '.join(missing[:20])}"
            + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
        )
    row = conn.execute(
        "INSERT INTO api.leaderboard_snapshot (leaderboard_id, snapshot_identifier, description,"
        " visibility) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (leaderboard_id, snapshot_identifier) DO NOTHING RETURNING id",
        (leaderboard_id, snapshot_identifier, description, visibility),
    ).fetchone()
    if row is None:
        return False
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO api.leaderboard_entry (leaderboard_id, model_id, snapshot_id, bt_score,"
            " vote_count, rank, bootstrap_q025, bootstrap_q975)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    leaderboard_id,
                    e["model_id"],
                    row[0],
                    as_decimal(e["bt_score"]),
                    e["vote_count"],
                    e["rank"],
                    as_decimal(e["bootstrap_q025"]),
                    as_decimal(e["bootstrap_q975"]),
                )
                for e in document["entries"]
            ],
        )
    return True


def _ranked(rows: Sequence[EntryRow]) -> list[RankedModel]:
    return [
        RankedModel(
            model_id=r.model_id,
            name=r.model_name,
            rank=r.rank,
            bt_score=float(r.bt_score),
            bootstrap_q025=float(r.bootstrap_q025),
            bootstrap_q975=float(r.bootstrap_q975),
            vote_count=r.vote_count,
        )
        for r in rows
    ]


def publish_entries(
    conn: psycopg.Connection,
    *,
    slug: str,
    leaderboard_id: str,
    snapshot_identifier: str,
    vote_count: int,
    document: EntriesDocument,
    publish: bool,
) -> PublishResult:
    """Write the snapshot once (see the module docstring) and summarize it against the previous
    public snapshot. Everything returned is read back from the database, so a rerun returns the
    same result (with ``created`` false)."""
    if not document["entries"]:
        reasons = sorted({u["reason"] for u in document["unranked"]})
        raise NotEnoughData(
            f"{slug}: no model could be ranked ({'; '.join(reasons) or 'no models'}); "
            "nothing published"
        )
    visibility: Visibility = "public" if publish else "private"
    description = snapshot_description(vote_count, len(document["entries"]))
    with conn.transaction():
        snapshot = find_snapshot(conn, leaderboard_id, snapshot_identifier)
        created = False
        if snapshot is None:
            created = _insert_snapshot(
                conn, leaderboard_id, snapshot_identifier, document, description, visibility
            )
            snapshot = find_snapshot(conn, leaderboard_id, snapshot_identifier)
        if snapshot is None:  # the concurrent inserter we waited for rolled back
            raise SnapshotNotFound(f"{slug}: {snapshot_identifier} vanished while publishing")
        previous = previous_public_snapshot(conn, snapshot)
        current = _ranked(snapshot_entries(conn, snapshot.id))
        before = _ranked(snapshot_entries(conn, previous.id)) if previous else None
    moved = movements(current, before)
    return PublishResult(
        slug=slug,
        snapshot_id=snapshot.id,
        snapshot_identifier=snapshot.snapshot_identifier,
        visibility="public" if snapshot.visibility == "public" else "private",
        entry_count=snapshot.entry_count,
        vote_count=vote_count,
        created=created,
        previous_snapshot_identifier=previous.snapshot_identifier if previous else None,
        top=moved.top,
        new_models=moved.new_models,
        dropped_models=moved.dropped_models,
    )


# --- operator tools -----------------------------------------------------------------------------
def set_visibility(
    conn: psycopg.Connection, snapshot_id: str, visibility: Visibility
) -> SnapshotInfo:
    """Publish (``'public'``) or unpublish (``'private'``) a snapshot; commits."""
    if visibility not in VISIBILITIES:
        raise InvalidInput(f"visibility: expected one of {', '.join(VISIBILITIES)}")
    with conn.transaction():
        updated = conn.execute(
            "UPDATE api.leaderboard_snapshot SET visibility = %s, updated_at = now()"
            " WHERE id = %s RETURNING id",
            (visibility, _snapshot_id(snapshot_id)),
        ).fetchone()
        if updated is None:
            raise SnapshotNotFound(f"snapshot_id: no snapshot {snapshot_id}")
        info = get_snapshot(conn, snapshot_id)
    # Inside a transaction the caller already had open, the block above was only a savepoint.
    conn.commit()
    return info


def delete_snapshot(conn: psycopg.Connection, snapshot_id: str) -> SnapshotInfo:
    """Delete a snapshot and (by cascade) its entries; returns what was deleted; commits."""
    with conn.transaction():
        info = get_snapshot(conn, snapshot_id)
        conn.execute("DELETE FROM api.leaderboard_snapshot WHERE id = %s", (info.id,))
    conn.commit()
    return info


def as_dict(info: SnapshotInfo | EntryRow) -> dict[str, Any]:
    """JSON-ready form for the CLI (timestamps ISO 8601, decimals as strings)."""
    out: dict[str, Any] = {}
    for key, value in info.__dict__.items():
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Decimal):
            value = str(value)
        out[key] = value
    return out


# --- operator CLI lookups (leaderboard snapshots list/show) ------------------------------------
def leaderboard_id(conn: psycopg.Connection, slug: str) -> str:
    """The id of the leaderboard with this slug; LeaderboardNotFound when there is none."""
    row = conn.execute("SELECT id::text FROM api.leaderboard WHERE slug = %s", (slug,)).fetchone()
    if row is None:
        raise LeaderboardNotFound(f"leaderboard: no leaderboard {slug[:100]!r}")
    return str(row[0])


def recent_snapshots(
    conn: psycopg.Connection,
    leaderboard: str | None = None,
    visibility: Visibility | None = None,
    limit: int = 20,
) -> list[SnapshotInfo]:
    """The newest snapshots first (across leaderboards unless one is named), at most ``limit``."""
    if visibility is not None and visibility not in VISIBILITIES:
        raise InvalidInput(f"visibility: expected one of {', '.join(VISIBILITIES)}")
    if leaderboard is not None:
        leaderboard_id(conn, leaderboard)
    with conn.cursor(row_factory=class_row(SnapshotInfo)) as cur:
        cur.execute(
            "SELECT" + _SNAPSHOT_COLUMNS + _SNAPSHOT_FROM
            + "WHERE (%(slug)s::text IS NULL OR l.slug = %(slug)s)"
            " AND (%(visibility)s::text IS NULL OR s.visibility = %(visibility)s)"
            " ORDER BY s.created_at DESC, l.slug, s.id DESC LIMIT %(limit)s",
            {"slug": leaderboard, "visibility": visibility, "limit": limit},
        )  # fmt: skip
        return cur.fetchall()


def snapshot_by_identifier(
    conn: psycopg.Connection, leaderboard: str, snapshot_identifier: str
) -> SnapshotInfo:
    """A snapshot named by its leaderboard's slug and its identifier."""
    found = find_snapshot(conn, leaderboard_id(conn, leaderboard), snapshot_identifier)
    if found is None:
        raise SnapshotNotFound(
            f"snapshot: {leaderboard} has no snapshot {snapshot_identifier[:100]!r}"
        )
    return found
