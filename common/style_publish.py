"""Publishing a style-controlled ranking into the leaderboard row the operator mapped it to.

``publish_style_board`` writes the style-controlled entries into the mapped row's snapshot
(``common.style_boards``): the same snapshot identifier, visibility and write
(``common.publish.publish_entries``: inserted once per (leaderboard, snapshot identifier), then
summarized) as the plain leaderboard's. The publish stage calls it inside the transaction that
writes the plain snapshot, so BixArena shows both snapshots of a run or neither, and a retry or a
redrive finds both written and writes nothing. A mapped row that does not exist (BixArena's
admins have not created it yet) skips the style-controlled board with that reason, as does a
leaderboard without a style-controlled ranking; the plain leaderboard publishes all the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from common.contracts import PublishResult, Skipped, StyleBoard, StyleSummary
from common.publish import publish_entries
from common.rank import EntriesDocument
from common.style_rank import read_style_entries


@dataclass(frozen=True)
class StyleToPublish:
    """A leaderboard's style-controlled ranking as publish gets it: the rank stage's summary
    (None from an older rank stage), the mapped row (None: not mapped, reported only) and the
    entries (None unless mapped and ranked)."""

    summary: StyleSummary | None
    target: str | None
    document: EntriesDocument | None


def style_to_publish(
    summary: StyleSummary | None, target: str | None, *, leaderboard: str, snapshot_identifier: str
) -> StyleToPublish:
    """What to publish for a leaderboard's style control: its entries are read (from the rank
    stage's style-entries.json) only when it is mapped and was ranked."""
    document = None
    if target is not None and summary is not None:
        document = read_style_entries(
            summary, leaderboard=leaderboard, snapshot_identifier=snapshot_identifier
        )
    return StyleToPublish(summary=summary, target=target, document=document)


def publish_with_style(
    conn: psycopg.Connection,
    *,
    slug: str,
    leaderboard_id: str,
    snapshot_identifier: str,
    run_at: datetime,
    vote_count: int,
    document: EntriesDocument,
    publish: bool,
    style: StyleToPublish,
) -> PublishResult | Skipped:
    """The plain snapshot (``publish_entries``) and, when mapped, the style-controlled one, in
    one transaction; the result carries the style summary and the style board's outcome. A
    skipped plain leaderboard (deleted since fetch) publishes neither."""
    with conn.transaction():
        result = publish_entries(
            conn, slug=slug, leaderboard_id=leaderboard_id,
            snapshot_identifier=snapshot_identifier, run_at=run_at, vote_count=vote_count,
            document=document, publish=publish,
        )  # fmt: skip
        if "reason" in result:
            return result
        if style.target is not None:
            result["style_board"] = publish_style_board(
                conn, target=style.target, snapshot_identifier=snapshot_identifier, run_at=run_at,
                summary=style.summary, document=style.document, publish=publish,
            )  # fmt: skip
    if style.summary is not None:
        result["style"] = style.summary
    return result


def missing_row_reason(target: str) -> str:
    return (
        f"no leaderboard {target!r} in api.leaderboard to publish the style-controlled ranking "
        "into (BixArena's admins create it)"
    )


def publish_style_board(
    conn: psycopg.Connection,
    *,
    target: str,
    snapshot_identifier: str,
    run_at: datetime,
    summary: StyleSummary | None,
    document: EntriesDocument | None,
    publish: bool,
) -> StyleBoard:
    """Write the style-controlled entries into the ``target`` row's snapshot, or say why not:
    no style-controlled ranking (``summary`` gives the reason), or no such row."""
    if document is None:
        why = summary["reason"] if summary is not None else None
        return StyleBoard(
            slug=target,
            snapshot_id=None,
            created=False,
            skipped=f"no style-controlled ranking: {why or 'the rank stage computed none'}",
        )
    row = conn.execute(
        "SELECT id::text FROM api.leaderboard WHERE slug = %s FOR KEY SHARE", (target,)
    ).fetchone()
    if row is None:
        return StyleBoard(
            slug=target, snapshot_id=None, created=False, skipped=missing_row_reason(target)
        )
    result = publish_entries(
        conn, slug=target, leaderboard_id=row[0], snapshot_identifier=snapshot_identifier,
        run_at=run_at, vote_count=document["vote_count"], document=document, publish=publish,
    )  # fmt: skip
    if "reason" in result:
        return StyleBoard(slug=target, snapshot_id=None, created=False, skipped=result["reason"])
    return StyleBoard(
        slug=target, snapshot_id=result["snapshot_id"], created=result["created"], skipped=None
    )
