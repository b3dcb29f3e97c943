"""Notify stage: one Slack message (and an SNS message) per run, on success and on failure.

Success mode: the state machine's last task sends a ``NotifyEvent`` (mode "success") with every
leaderboard's ``PublishResult``; the message summarizes the run. Failure mode: an EventBridge rule
sends the raw "Step Functions Execution Status Change" event of a FAILED, TIMED_OUT or ABORTED
execution; the message names the failing state from the execution history and says how to redrive.

Delivery order and retries: SNS first (when SNS_TOPIC_ARN is set), Slack last. Slack webhooks
cannot deduplicate, so nothing may raise after Slack accepted a message: a retry (by the state
machine, or Lambda's asynchronous retries in failure mode) only ever follows a Slack post that
failed, and Slack never sees the same run twice. The price is on the SNS side: a retry after a
failed Slack post publishes to SNS again. An SNS failure is raised only when Slack is not
configured (otherwise it is logged and Slack still gets the message). Without a webhook URL the
stage logs that Slack is not configured and succeeds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from common import slack
from common.config import Settings, slack_webhook_url
from common.contracts import parse_notify_event
from common.errors import ConfigurationError, PipelineError, TopicUnavailable
from common.observability import bind_correlation_id, logger, metrics
from common.stage_runtime import stage
from common.stepfunctions import failures


@stage("notify")
def handler(event: Any, context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    if isinstance(event, dict) and event.get("source") == failures.SOURCE:
        mode, message, plain = _failure_messages(event, settings.environment)
    else:
        mode, message, plain = _success_messages(event, settings.environment)
    return _deliver(settings, mode, message, plain)


def _success_messages(
    event: dict[str, Any], environment: str
) -> tuple[str, slack.SlackMessage, slack.PlainMessage]:
    run = parse_notify_event(event)
    bind_correlation_id(run["run"]["correlation_id"])
    now = datetime.now(UTC)
    seconds = slack.run_seconds(run, now)
    metrics.add_metric(name="RunDuration", unit=MetricUnit.Seconds, value=seconds)
    return (
        "success",
        slack.success_message(run, now=now, environment=environment),
        slack.success_plain(run, now=now, environment=environment),
    )


def _failure_messages(
    event: dict[str, Any], environment: str
) -> tuple[str, slack.SlackMessage, slack.PlainMessage]:
    change = failures.parse_status_change(event)
    report = failures.describe_failure(change, _history(change))
    bind_correlation_id(report.correlation_id)
    logger.info("run failed", extra={"state": report.state, "error": report.error})
    return (
        "failure",
        slack.failure_message(report, environment=environment),
        slack.failure_plain(report, environment=environment),
    )


def _history(change: failures.StatusChange) -> list[dict[str, Any]] | None:
    """The execution history, or None: an alert without the failing state beats no alert."""
    try:
        client = boto3.client("stepfunctions", region_name=change.region)
        return failures.read_history(client, change.execution_arn)
    except ClientError as exc:
        logger.warning("execution history unavailable", extra={"code": _code(exc)})
    except BotoCoreError as exc:
        logger.warning("execution history unavailable", extra={"code": type(exc).__name__})
    return None


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def _publish(topic_arn: str, plain: slack.PlainMessage) -> str:
    """Publish to SNS; throttling, 5xx and unreachable endpoints are transient, the rest is not."""
    region = topic_arn.split(":")[3] if topic_arn.count(":") >= 5 else None
    try:
        client = boto3.client("sns", region_name=region)
        response = client.publish(
            TopicArn=topic_arn, Subject=plain["subject"], Message=plain["body"]
        )
    except ClientError as exc:
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if status >= 500 or "Throttl" in _code(exc):
            raise TopicUnavailable(f"SNS did not accept the message ({_code(exc)})") from None
        raise ConfigurationError(
            f"SNS refused the message for {topic_arn} ({_code(exc)})"
        ) from None
    except BotoCoreError as exc:
        raise TopicUnavailable(f"SNS could not be reached ({type(exc).__name__})") from None
    return str(response["MessageId"])


def _deliver(
    settings: Settings, mode: str, message: slack.SlackMessage, plain: slack.PlainMessage
) -> dict[str, Any]:
    sns_message_id: str | None = None
    sns_error: PipelineError | None = None
    if settings.sns_topic_arn:
        try:
            sns_message_id = _publish(settings.sns_topic_arn, plain)
        except PipelineError as exc:
            logger.error("SNS publish failed", extra={"error": str(exc)})
            sns_error = exc
    webhook = slack_webhook_url(settings)
    if webhook is None:
        logger.warning("Slack is not configured (no SLACK_WEBHOOK_URL or SLACK_SECRET_ARN)")
        if sns_error is not None:
            raise sns_error
        return {"posted": False, "sns_message_id": sns_message_id, "mode": mode}
    slack.post(webhook, message)
    logger.info("Slack message posted", extra={"mode": mode, "blocks": len(message["blocks"])})
    return {"posted": True, "sns_message_id": sns_message_id, "mode": mode}
