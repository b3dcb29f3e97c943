"""Fetch stage: validate the run request, derive the run context once, and export each selected
leaderboard's votes and models from PostgreSQL (read-only) to Parquet under the run's prefix.

Event ``FetchEvent`` -> ``FetchResult`` (see docs/state-machine.md); the work is in
``common.run_context`` (run context) and ``common.fetch`` (filters, streaming, bad rows left
out, unusable and sparse leaderboards skipped).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from common import db, fetch, run_context
from common.config import Settings, database_url
from common.contracts import FetchResult, parse_fetch_event
from common.filters import parse_filters
from common.observability import bind_correlation_id, logger, metrics
from common.stage_runtime import stage
from common.storage import parse_s3_uri
from common.style_boards import parse_style_boards


@stage("fetch")
def handler(event: Any, context: LambdaContext) -> FetchResult:
    started = parse_fetch_event(event)
    request = started["request"]
    bind_correlation_id(request["correlation_id"] or started["execution_name"])
    settings = Settings.from_env()
    filters = parse_filters(settings.filters_json)
    style_targets = frozenset(parse_style_boards(settings.style_control_json).values())
    run_at = run_context.run_start(request, started["execution_id"], datetime.now(UTC))
    run = run_context.derive_run(
        request, started["execution_id"], started["execution_name"], run_at, settings
    )
    with db.connect(database_url(settings), read_only=True) as conn:
        boards, skipped, left_out = fetch.fetch_leaderboards(
            conn, request["leaderboards"], filters, run_at, parse_s3_uri(run["artifacts_prefix"]),
            min_battles=settings.min_battles, min_models=settings.min_models,
            min_evals=settings.min_evals,
            style_targets=style_targets,
        )  # fmt: skip
    metrics.add_metric(
        name="BattlesFetched", unit=MetricUnit.Count, value=sum(b["vote_count"] for b in boards)
    )
    logger.info(
        "votes fetched",
        extra={
            "run_id": run["run_id"],
            "leaderboards": {b["slug"]: b["vote_count"] for b in boards},
            "skipped": skipped,
            "left_out": left_out,
        },
    )
    return FetchResult(run=run, leaderboards=boards, skipped=skipped, left_out=left_out)
