"""Notify stage: one Slack message (and an SNS message) per run, on success and on failure.

Success mode: the state machine's last task sends a ``NotifyEvent``. Failure mode: the stack's
EventBridge rule sends the Execution Status Change event of a failed run. The message and its
delivery (SNS first, Slack last, never twice) are ``common.notify``'s work.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from common import notify
from common.config import Settings
from common.observability import PUBLISHED_METRIC, metrics
from common.stage_runtime import stage


@stage("notify")
def handler(event: dict[str, Any], context: LambdaContext) -> notify.Delivered:
    settings = Settings.from_env()
    if notify.is_failure_event(event):
        message = notify.failure_alert(event, settings.environment)
    else:
        message = notify.run_summary(event, settings.environment)
    if message.run_seconds is not None:
        metrics.add_metric(name="RunDuration", unit=MetricUnit.Seconds, value=message.run_seconds)
    if message.published is not None:
        metrics.add_metric(name=PUBLISHED_METRIC, unit=MetricUnit.Count, value=message.published)
    return notify.deliver(settings, message)
