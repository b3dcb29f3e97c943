"""The notify stage's work: one message per run, to SNS and then Slack.

Success mode: the state machine's last task sends a ``NotifyEvent`` (mode "success") with every
leaderboard's ``PublishResult`` or skip, fetch's skips and the votes it left out; the message
summarizes the run, and says so plainly when nothing was published. Failure mode: an EventBridge rule
sends the raw "Step Functions Execution Status Change" event of a FAILED, TIMED_OUT or ABORTED
execution; the message names the failing state from the execution history and says how to redrive.

Delivery order and retries: SNS first (when SNS_TOPIC_ARN is set), Slack last. Slack webhooks
cannot deduplicate, so nothing may raise after Slack accepted a message: a retry (by the state
machine, or Lambda's asynchronous retries in failure mode) only ever follows a Slack post that
failed. Delivery is at least once, not exactly once: a post that timed out or lost its
connection after Slack received it cannot be told from one Slack never saw, and its retry shows
the message twice (rare: Slack answers in well under the 10 s timeout); in failure mode
EventBridge, too, may deliver an event twice. The price of a retry is also on the SNS side: a
retry after a failed Slack post publishes to SNS again. An SNS failure is raised only when Slack
is not configured (otherwise it is logged and Slack still gets the message). Without a webhook
URL the stage logs that Slack is not configured and succeeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypedDict

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from common import slack
from common.config import Settings, slack_webhook_url
from common.contracts import parse_notify_event
from common.errors import ConfigurationError, PipelineError, TopicUnavailable
from common.observability import bind_correlation_id, logger
from common.slack import PlainMessage, SlackMessage
from common.stepfunctions import failures
from common.stepfunctions.history import read_history, region_of

Mode = Literal["success", "failure"]


@dataclass(frozen=True)
class Outgoing:
    """One run's message, for Slack (Block Kit) and for SNS (plain text)."""

    mode: Mode
    slack: SlackMessage
    plain: PlainMessage
    run_seconds: float | None = None
    published: int | None = None
    """Success mode: the leaderboards the run made public (``slack.published_count``)."""


class Delivered(TypedDict):
    posted: bool
    sns_message_id: str | None
    mode: Mode


def is_failure_event(event: Any) -> bool:
    """Failure mode: the EventBridge event of a failed execution (anything else is a run)."""
    return isinstance(event, dict) and event.get("source") == failures.SOURCE


def run_summary(event: Any, environment: str, now: datetime | None = None) -> Outgoing:
    """The success-mode message of a ``NotifyEvent``."""
    run = parse_notify_event(event)
    bind_correlation_id(run["run"]["correlation_id"])
    now = now or datetime.now(UTC)
    return Outgoing(
        mode="success",
        slack=slack.success_message(run, now=now, environment=environment),
        plain=slack.success_plain(run, now=now, environment=environment),
        run_seconds=slack.run_seconds(run, now),
        published=slack.published_count(run),
    )


def failure_alert(event: Any, environment: str) -> Outgoing:
    """The failure-mode message of an Execution Status Change event, from the history."""
    change = failures.parse_status_change(event)
    report = failures.describe_failure(change, _history(change))
    bind_correlation_id(report.correlation_id)
    logger.info("run failed", extra={"state": report.state, "error": report.error})
    return Outgoing(
        mode="failure",
        slack=slack.failure_message(report, environment=environment),
        plain=slack.failure_plain(report, environment=environment),
    )


def _history(change: failures.StatusChange) -> list[dict[str, Any]] | None:
    """The execution history, or None: an alert without the failing state beats no alert."""
    try:
        client = boto3.client("stepfunctions", region_name=change.region)
        return read_history(client, change.execution_arn)
    except ClientError as exc:
        logger.warning("execution history unavailable", extra={"code": _code(exc)})
    except BotoCoreError as exc:
        logger.warning("execution history unavailable", extra={"code": type(exc).__name__})
    return None


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def publish_to_topic(topic_arn: str, plain: PlainMessage) -> str:
    """Publish to SNS; throttling, 5xx and unreachable endpoints are transient, the rest is not."""
    try:
        client = boto3.client("sns", region_name=region_of(topic_arn))
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


def deliver(settings: Settings, message: Outgoing) -> Delivered:
    """SNS, then Slack (see the module docstring for why in this order)."""
    sns_message_id: str | None = None
    sns_error: PipelineError | None = None
    if settings.sns_topic_arn:
        try:
            sns_message_id = publish_to_topic(settings.sns_topic_arn, message.plain)
        except PipelineError as exc:
            logger.error("SNS publish failed", extra={"error": str(exc)})
            sns_error = exc
    webhook = slack_webhook_url(settings)
    if webhook is None:
        logger.warning("Slack is not configured (no SLACK_WEBHOOK_URL or SLACK_SECRET_ARN)")
        if sns_error is not None:
            raise sns_error
        return Delivered(posted=False, sns_message_id=sns_message_id, mode=message.mode)
    slack.post(webhook, message.slack)
    logger.info(
        "Slack message posted", extra={"mode": message.mode, "blocks": len(message.slack["blocks"])}
    )
    return Delivered(posted=True, sns_message_id=sns_message_id, mode=message.mode)
