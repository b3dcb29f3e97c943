"""Publish stage: one leaderboard's entries (JSON in S3) -> a snapshot in BixArena's database.

Event ``RankResult`` -> ``PublishResult``. The snapshot, its entries and its visibility ('public'
unless the run says ``publish: false``) are written in one transaction, once per
(leaderboard, snapshot identifier), dated the run's ``run_at``; see ``common.publish``. Event
``RankSkipped`` (nobody could be ranked) -> its ``Skipped``, unchanged, with nothing written: the
Map's result for that leaderboard, which notify lists. A leaderboard or ranked model deleted
since fetch -> a ``Skipped`` naming it, nothing written.

Style control: the rank stage's ``style`` summary is passed on in the result. When
STYLE_CONTROL_LEADERBOARDS maps the leaderboard to a style-controlled row, its style-controlled
entries are published there in the same transaction as the plain snapshot
(``common.style_publish``), and ``style_board`` says how that went.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from common import db, standing, storage
from common.config import Settings, database_url
from common.contracts import PublishResult, Skipped, parse_publish_event, parse_timestamp
from common.observability import bind_correlation_id, logger, metrics
from common.rank import parse_entries
from common.stage_runtime import stage
from common.style_boards import parse_style_boards
from common.style_publish import publish_with_style, style_to_publish


@stage("publish")
def handler(event: Any, context: LambdaContext) -> PublishResult | Skipped:
    ranked = parse_publish_event(event)
    run, board = ranked["run"], ranked["leaderboard"]
    bind_correlation_id(run["correlation_id"])
    if "skipped" in ranked:
        logger.info("leaderboard skipped", extra={**ranked["skipped"]})
        return ranked["skipped"]
    settings = Settings.from_env()
    style_boards = parse_style_boards(settings.style_control_json)
    if board["slug"] in style_boards.values():
        # Fetch never selects such a row; a mapping deployed since this run's fetch makes one.
        # Its snapshots are its base leaderboard's style-controlled ones, which would collide.
        skipped = Skipped(
            slug=board["slug"],
            reason="a style-controlled leaderboard (STYLE_CONTROL_LEADERBOARDS) now: its"
            " snapshots come from its base leaderboard's publish",
        )
        logger.info("leaderboard skipped", extra={**skipped})
        return skipped
    uri = storage.parse_s3_uri(ranked["entries_uri"], "entries_uri")
    document = parse_entries(
        storage.get_json(uri),
        uri,
        leaderboard=board["slug"],
        snapshot_identifier=run["snapshot_identifier"],
    )
    style = style_to_publish(
        ranked.get("style"),
        style_boards.get(board["slug"]),
        leaderboard=board["slug"],
        snapshot_identifier=run["snapshot_identifier"],
    )
    with db.connect(database_url(settings)) as conn:
        result = publish_with_style(
            conn, slug=board["slug"], leaderboard_id=board["leaderboard_id"],
            snapshot_identifier=run["snapshot_identifier"],
            run_at=parse_timestamp(run["run_at"], "run.run_at"), vote_count=board["vote_count"],
            document=document, publish=run["publish"],
            style=style,
        )  # fmt: skip
    if "reason" in result:
        metrics.add_metric(name="SnapshotPublished", unit=MetricUnit.Count, value=0)
        logger.info("leaderboard skipped", extra={**result})
        return result
    # What BixArena now shows: not a private snapshot, nor an older one that joined the history.
    published = result["created"] and standing.of_result(result).standing == "live"
    metrics.add_metric(name="SnapshotPublished", unit=MetricUnit.Count, value=int(published))
    logger.info(
        "snapshot published" if published else "snapshot stored",
        extra={
            "leaderboard": result["slug"],
            "snapshot_id": result["snapshot_id"],
            "snapshot_identifier": result["snapshot_identifier"],
            "visibility": result["visibility"],
            "standing": standing.of_result(result).standing,
            "shown_snapshot_identifier": result["shown_snapshot_identifier"],
            "new_snapshot": result["created"],
            "entries": result["entry_count"],
            **({"style_board": result["style_board"]} if "style_board" in result else {}),
        },
    )
    return result
