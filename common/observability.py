"""Structured JSON logs and EMF metrics shared by every function (Powertools for AWS Lambda).

Every log line carries the run's correlation id; secrets are never passed to the logger.
"""

from __future__ import annotations

import logging
import os

from aws_lambda_powertools import Logger, Metrics

SERVICE = "bixarena-leaderboard"
METRICS_NAMESPACE = "BixArena/Leaderboard"
"""The names the stack gives every function (POWERTOOLS_SERVICE_NAME, ..._METRICS_NAMESPACE);
constants, so that what the stack synthesizes never depends on the synthesizing process."""

PUBLISHED_METRIC = "LeaderboardsPublished"
"""Emitted by notify once per finished run (dimensions service and stage=notify): how many
leaderboards the run made public. The missed-day alarm (infra/monitoring.py) watches its sum, so a
run that published nothing counts as no update."""
PUBLISHED_METRIC_STAGE = "notify"

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE))

# At DEBUG, botocore logs whole response bodies, GetSecretValue's included: never let it go below
# INFO, whatever level the function is configured with.
for _name in ("botocore", "boto3", "urllib3"):
    logging.getLogger(_name).setLevel(max(logging.getLogger(_name).level, logging.INFO))
metrics = Metrics(
    service=os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE),
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", METRICS_NAMESPACE),
)


def bind_correlation_id(correlation_id: str | None) -> None:
    """Attach the run's correlation id to every following log line of this invocation."""
    logger.set_correlation_id(correlation_id)
