"""Rank stage: one leaderboard's votes (Parquet in S3) -> Bradley-Terry entries (JSON in S3).

Event ``RankEvent`` (one item of the Map) -> ``RankResult``, or ``RankSkipped`` when nobody could
be ranked; the work is in ``common.rank`` over ``common.votes`` and ``common.ranking``.
Deterministic: a rerun writes the same bytes.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from common.config import Settings
from common.contracts import RankResult, RankSkipped, parse_rank_event
from common.observability import bind_correlation_id, logger, metrics
from common.rank import rank_leaderboard
from common.stage_runtime import stage


@stage("rank")
def handler(event: Any, context: LambdaContext) -> RankResult | RankSkipped:
    rank_event = parse_rank_event(event)
    bind_correlation_id(rank_event["run"]["correlation_id"])
    settings = Settings.from_env()
    result, ranking = rank_leaderboard(rank_event, min_evals=settings.min_evals)
    ranked = len(ranking.ranked)
    metrics.add_metric(name="ModelsRanked", unit=MetricUnit.Count, value=ranked)
    logger.info(
        "leaderboard skipped" if "skipped" in result else "leaderboard ranked",
        extra={
            "leaderboard": rank_event["leaderboard"]["slug"],
            "votes": ranking.n_votes,
            "ranked": ranked,
            "unranked": len(ranking.unranked),
            "separable_replicates": ranking.separable_replicates,
            **({"reason": result["skipped"]["reason"]} if "skipped" in result else {}),
        },
    )
    return result
