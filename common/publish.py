"""The publish stage's work: a leaderboard's entries become a snapshot in BixArena's database.

``publish_entries`` writes a snapshot, its entries and its visibility in ONE transaction, exactly
once per (leaderboard, snapshot_identifier): a retry, a redrive or a concurrent duplicate finds the
snapshot already there and writes nothing. A crash before COMMIT leaves nothing behind.

The snapshot and its entries are written with ``created_at`` = the run's ``run_at``, the instant up
to which its votes count (``updated_at`` stays the time of writing), so BixArena, which shows the
newest public snapshot by ``created_at``, sees snapshots in data order whenever they were computed:
a redriven or late run with older votes is published as history and never replaces what BixArena
shows (see ``common.snapshots``). The result says where the snapshot stands (live, history or
private; ``common.standing``) and compares it with the public snapshot immediately before it in
data order, never a newer one. Publishes of one leaderboard are serialized (an advisory lock), so
of two overlapping runs the one that commits second sees the first: it reports history when its
votes are older, and its movements against the first when they are newer. A rerun reports the
same unless a public snapshot was added or removed around it meanwhile.

If the leaderboard or a ranked model was deleted from BixArena's database after fetch read it,
the snapshot cannot be written as ranked: the leaderboard is skipped with that reason (the data
changed under the run; a redrive would meet the same rows, the next run ranks without them).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import psycopg

from common.contracts import PublishResult, Skipped, snapshot_description
from common.errors import NotEnoughData, SnapshotNotFound
from common.movements import RankedModel, movements
from common.rank import EntriesDocument
from common.scores import as_decimal
from common.snapshots import (
    EntryRow,
    Visibility,
    find_snapshot,
    lock_leaderboard,
    placement,
    previous_public_snapshot,
    snapshot_entries,
)


def deleted_since_fetch(
    conn: psycopg.Connection, leaderboard_id: str, model_ids: list[str]
) -> str | None:
    """Why the snapshot can no longer be written, or None: the leaderboard or ranked models were
    deleted after fetch. FOR KEY SHARE keeps the rows found from being deleted until we commit."""
    if (
        conn.execute(
            "SELECT 1 FROM api.leaderboard WHERE id = %s FOR KEY SHARE", (leaderboard_id,)
        ).fetchone()
        is None
    ):
        return f"the leaderboard (id {leaderboard_id}) was deleted during the run"
    present = {
        row[0]
        for row in conn.execute(
            "SELECT id::text FROM api.model WHERE id = ANY(%s::uuid[]) ORDER BY id FOR KEY SHARE",
            (model_ids,),
        )
    }
    missing = sorted(set(model_ids) - present)
    if not missing:
        return None
    return (
        f"ranked model(s) deleted from api.model during the run: {', '.join(missing[:10])}"
        + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        + " (the next run ranks without them)"
    )


def _insert_snapshot(
    conn: psycopg.Connection,
    leaderboard_id: str,
    snapshot_identifier: str,
    document: EntriesDocument,
    description: str,
    visibility: Visibility,
    data_time: datetime,
) -> bool:
    """Insert the snapshot and its entries unless it exists; True when this call inserted it.
    ``created_at`` is ``data_time`` (see the module docstring), ``updated_at`` now."""
    row = conn.execute(
        "INSERT INTO api.leaderboard_snapshot (leaderboard_id, snapshot_identifier, description,"
        " visibility, created_at) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (leaderboard_id, snapshot_identifier) DO NOTHING RETURNING id",
        (leaderboard_id, snapshot_identifier, description, visibility, data_time),
    ).fetchone()
    if row is None:
        return False
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO api.leaderboard_entry (leaderboard_id, model_id, snapshot_id, bt_score,"
            " vote_count, rank, bootstrap_q025, bootstrap_q975, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
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
                    data_time,
                )
                for e in document["entries"]
            ],
        )
    return True


def _ranked(rows: Sequence[EntryRow]) -> list[RankedModel]:
    # A model row with an empty name is still a model: people recognize it by its slug.
    return [
        RankedModel(
            model_id=r.model_id,
            name=r.model_name or r.model_slug or r.model_id,
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
    run_at: datetime,
    vote_count: int,
    document: EntriesDocument,
    publish: bool,
) -> PublishResult | Skipped:
    """Write the snapshot once, dated ``run_at`` (see the module docstring), and summarize it
    against the public snapshot before it in data order. Everything returned is read back from the
    database, so a rerun returns the same result (with ``created`` false). A leaderboard or model
    deleted since fetch: Skipped."""
    if not document["entries"]:
        # Rank skips a leaderboard where nobody could be ranked, so its RankResult always has
        # entries: an empty document here breaks the contract between the stages.
        reasons = sorted({u["reason"] for u in document["unranked"]})
        raise NotEnoughData(
            f"{slug}: the entries document ranks no model ({'; '.join(reasons) or 'no models'}),"
            " though rank reported ranked models; nothing published"
        )
    visibility: Visibility = "public" if publish else "private"
    description = snapshot_description(vote_count, len(document["entries"]))
    with conn.transaction():
        lock_leaderboard(conn, leaderboard_id)
        snapshot = find_snapshot(conn, leaderboard_id, snapshot_identifier)
        created = False
        if snapshot is None:
            gone = deleted_since_fetch(
                conn, leaderboard_id, [e["model_id"] for e in document["entries"]]
            )
            if gone is not None:
                return Skipped(slug=slug, reason=gone)
            created = _insert_snapshot(
                conn,
                leaderboard_id,
                snapshot_identifier,
                document,
                description,
                visibility,
                run_at,
            )
            snapshot = find_snapshot(conn, leaderboard_id, snapshot_identifier)
        if snapshot is None:  # the concurrent inserter we waited for rolled back
            raise SnapshotNotFound(f"{slug}: {snapshot_identifier} vanished while publishing")
        previous = previous_public_snapshot(conn, snapshot)
        placed = placement(conn, snapshot)
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
        shown_snapshot_identifier=placed.shown,
        superseded=placed.superseded,
        top=moved.top,
        new_models=moved.new_models,
        dropped_models=moved.dropped_models,
    )
