"""Rank stage: one leaderboard's votes (Parquet in S3) -> Bradley-Terry entries (JSON in S3).

Event ``RankEvent`` (one item of the Map) -> ``RankResult``, or ``RankSkipped`` when nobody could
be ranked; the work is in ``common.rank`` over ``common.votes`` and ``common.ranking``. A ranked
leaderboard whose votes carry style counts is also ranked with style held equal
(``common.style_rank``: style-entries.json, and ``RankResult.style``).
Deterministic: a rerun writes the same bytes.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from common.config import Settings
from common.contracts import RankResult, RankSkipped, StyleSummary, parse_rank_event
from common.observability import bind_correlation_id, logger, metrics
from common.rank import rank_leaderboard, read_inputs
from common.stage_runtime import stage
from common.style_rank import rank_style


@stage("rank")
def handler(event: Any, context: LambdaContext) -> RankResult | RankSkipped:
    rank_event = parse_rank_event(event)
    bind_correlation_id(rank_event["run"]["correlation_id"])
    settings = Settings.from_env()
    inputs = read_inputs(rank_event)
    min_evals, threads = settings.min_evals, settings.rank_threads
    result, ranking = rank_leaderboard(rank_event, inputs, min_evals=min_evals, threads=threads)
    if "skipped" not in result:
        result["style"] = rank_style(
            rank_event, inputs, ranking, min_evals=min_evals, threads=threads
        )
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
            **({"style": _style_log(result["style"])} if "style" in result else {}),
        },
    )
    return result


def _style_log(style: StyleSummary) -> dict[str, Any]:
    return {
        "ranked": style["ranked_count"],
        "votes_used": style["votes_used"],
        "votes_without_style": style["votes_without_style"],
        "elo_per_sd": {e["feature"]: e["elo"] for e in style["effects"]},
        **({"reason": style["reason"]} if style["reason"] else {}),
    }
