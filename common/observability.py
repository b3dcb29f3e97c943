"""Structured JSON logs and EMF metrics shared by every function (Powertools for AWS Lambda).

Every log line carries the run's correlation id; secrets are never passed to the logger.
"""

from __future__ import annotations

import logging
import os

from aws_lambda_powertools import Logger, Metrics

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "bixarena-leaderboard")
METRICS_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "BixArena/Leaderboard")

logger = Logger(service=SERVICE)

# At DEBUG, botocore logs whole response bodies, GetSecretValue's included: never let it go below
# INFO, whatever level the function is configured with.
for _name in ("botocore", "boto3", "urllib3"):
    logging.getLogger(_name).setLevel(max(logging.getLogger(_name).level, logging.INFO))
metrics = Metrics(service=SERVICE, namespace=METRICS_NAMESPACE)


def bind_correlation_id(correlation_id: str | None) -> None:
    """Attach the run's correlation id to every following log line of this invocation."""
    logger.set_correlation_id(correlation_id)
