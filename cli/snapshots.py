"""``leaderboard snapshots list|show|publish|unpublish|delete`` and ``leaderboard history``: the
operator's snapshot tools.

The database functions take an open connection and commit their own change; the commands turn
unknown snapshots and leaderboards into one-line usage errors (exit 2).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import class_row

from cli.arguments import UsageError, database
from cli.tables import entries_table, placement_lines, snapshot_heading, snapshot_table
from common import snapshots, standing
from common.errors import InvalidInput, LeaderboardNotFound, SnapshotNotFound
from common.snapshots import (
    SELECT_SNAPSHOTS,
    VISIBILITIES,
    EntryRow,
    SnapshotInfo,
    Visibility,
    find_snapshot,
    get_snapshot,
    parse_snapshot_id,
)


# --- the database ---------------------------------------------------------------------------------
def set_visibility(
    conn: psycopg.Connection, snapshot_id: str, visibility: Visibility
) -> SnapshotInfo:
    """Publish (``'public'``) or unpublish (``'private'``) a snapshot; commits."""
    if visibility not in VISIBILITIES:
        raise InvalidInput(f"visibility: expected one of {', '.join(VISIBILITIES)}")
    with conn.transaction():
        snapshots.lock_leaderboard(conn, get_snapshot(conn, snapshot_id).leaderboard_id)
        updated = conn.execute(
            "UPDATE api.leaderboard_snapshot SET visibility = %s, updated_at = now()"
            " WHERE id = %s RETURNING id",
            (visibility, parse_snapshot_id(snapshot_id)),
        ).fetchone()
        if updated is None:  # deleted while we waited for the lock
            raise SnapshotNotFound(f"snapshot_id: no snapshot {snapshot_id}")
        info = get_snapshot(conn, snapshot_id)
    # Inside a transaction the caller already had open, the block above was only a savepoint.
    conn.commit()
    return info


def delete_snapshot(conn: psycopg.Connection, snapshot_id: str) -> SnapshotInfo:
    """Delete a snapshot and (by cascade) its entries; returns what was deleted; commits."""
    with conn.transaction():
        info = get_snapshot(conn, snapshot_id)
        # As a visibility change does: a publish reading the previous snapshot's entries or what
        # BixArena shows must not see this snapshot vanish half-way.
        snapshots.lock_leaderboard(conn, info.leaderboard_id)
        deleted = conn.execute(
            "DELETE FROM api.leaderboard_snapshot WHERE id = %s RETURNING id", (info.id,)
        ).fetchone()
        if deleted is None:  # deleted while we waited for the lock
            raise SnapshotNotFound(f"snapshot_id: no snapshot {snapshot_id}")
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
            SELECT_SNAPSHOTS
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


# --- the commands ---------------------------------------------------------------------------------
@contextlib.contextmanager
def _snapshot_db(args: argparse.Namespace, *, read_only: bool = False) -> Iterator[Any]:
    """A connection to the snapshots' database; unknown leaderboards and snapshots are bad input."""
    from common import db
    from common.errors import LeaderboardNotFound, SnapshotNotFound

    try:
        # Autocommit: each operator function's transaction is then a real one, not a savepoint
        # inside a transaction that closing the connection would roll back.
        with (
            database(args) as url,
            db.connect(url, read_only=read_only, autocommit=True) as conn,
        ):
            yield conn
    except (SnapshotNotFound, LeaderboardNotFound) as exc:
        raise UsageError(f"{exc} (see `leaderboard snapshots list`)") from None


def _snapshot(conn: Any, args: argparse.Namespace) -> Any:
    """The snapshot named by id, or by identifier and --leaderboard."""
    try:
        snapshot_id = str(uuid.UUID(args.snapshot))
    except ValueError:
        if not args.leaderboard:
            raise UsageError(
                f"SNAPSHOT: {args.snapshot[:100]!r} is not a snapshot id (UUID); to name a "
                "snapshot by its identifier, add --leaderboard SLUG"
            ) from None
        return snapshot_by_identifier(conn, args.leaderboard, args.snapshot)
    info = snapshots.get_snapshot(conn, snapshot_id)
    if args.leaderboard and info.leaderboard_slug != args.leaderboard:
        raise UsageError(
            f"SNAPSHOT: {snapshot_id} belongs to {info.leaderboard_slug}, not {args.leaderboard}"
        )
    return info


def _shown(conn: Any, slug: str) -> str:

    latest = snapshots.latest_public_snapshot(conn, slug)
    shown = latest.snapshot_identifier if latest else "no snapshot"
    return f"BixArena now shows {shown} for {slug}"


def cmd_list(args: argparse.Namespace) -> int:
    with _snapshot_db(args, read_only=True) as conn:
        found = recent_snapshots(conn, args.leaderboard, args.visibility, args.limit)
    if args.format == "json":
        print(json.dumps([as_dict(info) for info in found], indent=2))
    else:
        print(snapshot_table(found))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with _snapshot_db(args, read_only=True) as conn:
        info = _snapshot(conn, args)
        entries = snapshots.snapshot_entries(conn, info.id)
        placed = snapshots.placement(conn, info)
        baseline = snapshots.previous_public_snapshot(conn, info)
        before = (
            {e.model_id: e.rank for e in snapshots.snapshot_entries(conn, baseline.id)}
            if baseline
            else None
        )
    if args.format == "json":
        document = {
            **as_dict(info),
            "standing": placed.standing,
            "shown_snapshot_identifier": placed.shown,
            "superseded": placed.superseded,
            "compared_with": baseline.snapshot_identifier if baseline else None,
            "entries": [
                {**as_dict(e), "previous_rank": (before or {}).get(e.model_id)} for e in entries
            ],
        }
        print(json.dumps(document, indent=2))
    else:
        print(snapshot_heading(info))
        print(placement_lines(info, placed, baseline))
        print(entries_table(entries, before))
    return 0


def cmd_visibility(args: argparse.Namespace) -> int:

    with _snapshot_db(args) as conn:
        info = set_visibility(conn, _snapshot(conn, args).id, args.visibility)
        placed = snapshots.placement(conn, info)
        change = f"{info.leaderboard_slug} {info.snapshot_identifier} is now {info.visibility}"
        if placed.standing == "history":
            change += f", {standing.describe(placed)}"
        print(change)
        print(_shown(conn, info.leaderboard_slug))
    return 0


def cmd_delete(args: argparse.Namespace) -> int:

    with _snapshot_db(args) as conn:
        info = _snapshot(conn, args)
        what = (
            f"{info.leaderboard_slug} {info.snapshot_identifier} "
            f"({info.visibility}, {info.entry_count} entries, id {info.id})"
        )
        if not args.yes:
            if not sys.stdin.isatty():
                raise UsageError(
                    "snapshots delete: standard input is not a terminal to confirm on; pass --yes"
                )
            try:
                answer = input(f"delete {what} and its entries? [y/N] ")
            except EOFError:
                answer = ""
            if answer.strip().lower() not in ("y", "yes"):
                print("nothing deleted")
                return 1
        delete_snapshot(conn, info.id)
        print(f"deleted {what}")
        print(_shown(conn, info.leaderboard_slug))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from cli import history, history_plot

    since = history.parse_since(args.since) if args.since else None
    models = history.parse_models(args.models) if args.models else None
    plot = history_plot.check_path(args.plot) if args.plot else None
    with _snapshot_db(args, read_only=True) as conn:
        leaderboard_id(conn, args.leaderboard)
        found = history.read(
            conn,
            args.leaderboard,
            since=since,
            models=models,
            top=args.top or history.DEFAULT_TOP,
        )
    formats = {"table": history.to_table, "json": history.to_json, "csv": history.to_csv}
    if plot is not None:
        history_plot.save(found, plot)
    print(formats[args.format](found))
    if plot is not None:
        print(
            f"chart of {len(found.series)} model(s) over {len(found.snapshots)} snapshot(s) written to {plot}",
            file=sys.stderr,
        )
    return 0
