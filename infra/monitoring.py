"""Failures reach people: the alert topic, the failure rule, the alarms, the dashboard.

- A failed, timed-out or aborted execution emits an EventBridge "Execution Status Change" event;
  a rule sends it, raw, to the notify function (failure mode), which reads the execution history
  to name the failing state (docs/adr/0003-no-catch-to-fail.md).
- The alert always arrives somewhere: the rule retries delivering to notify and keeps what it
  could not deliver in its own dead-letter queue; notify, invoked asynchronously, gets Lambda's
  retries, then its failed events go to an on-failure destination queue. The schedule has its
  dead-letter queue too. Each queue is encrypted and SSL-only, and an alarm fires as soon as
  anything lands in any of them.
- CloudWatch alarms on the state machine's metrics (failed, timed out), on the missed day (no
  leaderboard published in 26 hours: notify's ``LeaderboardsPublished`` EMF metric, so a run
  that succeeded but published nothing counts as missed), on each function's errors and on the
  admin endpoint's 5xx answers publish to an encrypted SNS topic, optionally with an e-mail
  subscription.
- The dashboard reads the stages' EMF metrics (namespace BixArena/Leaderboard) with SEARCH
  expressions, so it shows them whatever dimensions a stage adds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import jsii
from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from common.observability import (
    METRICS_NAMESPACE,
    PUBLISHED_METRIC,
    PUBLISHED_METRIC_STAGE,
    SERVICE,
)
from infra.config import StackConfig
from infra.nag import acknowledge

FAILURE_STATUSES = ("FAILED", "TIMED_OUT", "ABORTED")
STALE_AFTER_HOURS = 26
DEAD_LETTER_RETENTION = Duration.days(14)
"""SQS's longest retention: two weeks for an operator to read and redrive what landed there."""
ALERT_RETRY_AGE = Duration.hours(6)
"""How long EventBridge and Lambda keep retrying an alert before it goes to a dead-letter queue."""
RULE_RETRY_ATTEMPTS = 8
NOTIFY_ASYNC_RETRY_ATTEMPTS = 2
"""Lambda's maximum for asynchronous invocations (retried after about 1 and 2 minutes)."""


@dataclass(frozen=True)
class Alerts:
    topic: sns.Topic
    key: kms.Key
    dead_letters: sqs.Queue
    """The schedule's: runs EventBridge Scheduler could not start."""


@dataclass(frozen=True)
class FailurePath:
    rule: events.Rule
    undelivered: sqs.Queue
    """Failure events the rule could not hand to the notify function."""
    unsent: sqs.Queue
    """Failure events the notify function kept failing on (Slack down, a bug), with its error."""


DEAD_LETTER_QUEUES = {
    "UndeliveredEvents": "runs the daily schedule could not start",
    "UndeliveredFailureEvents": "failure events the rule could not deliver to notify",
    "UnsentFailureAlerts": "failure alerts the notify function kept failing on",
}
"""Every dead-letter queue of the stack (construct id -> what lands there)."""


def dead_letter_queue(scope: Construct, construct_id: str) -> sqs.Queue:
    """An encrypted, SSL-only queue that keeps for two weeks what could not be delivered."""
    holds = DEAD_LETTER_QUEUES[construct_id]
    queue = sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=DEAD_LETTER_RETENTION,
    )
    acknowledge(
        queue,
        "AwsSolutions-SQS3",
        f"This queue is itself a dead-letter queue ({holds}); nothing consumes it "
        "automatically, so it needs no dead-letter queue of its own: an alarm watches it.",
    )
    return queue


def build_alerts(scope: Construct, config: StackConfig) -> Alerts:
    key = kms.Key(
        scope,
        "AlertsKey",
        description=f"{config.name_prefix}: encrypts the alert topic",
        enable_key_rotation=True,
    )
    # CloudWatch alarms publish to the encrypted topic as the cloudwatch service principal.
    key.grant(
        iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*"
    )
    topic = sns.Topic(
        scope,
        "AlertsTopic",
        topic_name=f"{config.name_prefix}-alerts",
        display_name="BixArena leaderboard pipeline alerts",
        master_key=key,
        enforce_ssl=True,
    )
    if config.alarm_email:
        topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
    dead_letters = dead_letter_queue(scope, "UndeliveredEvents")
    return Alerts(topic=topic, key=key, dead_letters=dead_letters)


@jsii.implements(lambda_.IDestination)
class SendOnlyQueueDestination:
    """An SQS destination for a function's asynchronous invocations that grants the function
    only sqs:SendMessage, all Lambda needs (CDK's SqsDestination also grants GetQueueUrl and
    GetQueueAttributes)."""

    def __init__(self, queue: sqs.IQueue) -> None:
        self.queue = queue

    def bind(
        self,
        scope: Construct,
        fn: lambda_.IFunction,
        *,
        type: lambda_.DestinationType | None = None,
    ) -> lambda_.DestinationConfig:
        fn.add_to_role_policy(
            iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self.queue.queue_arn])
        )
        return lambda_.DestinationConfig(destination=self.queue.queue_arn)


def failure_path(
    scope: Construct, state_machine_arn: str, notify: lambda_.IFunction
) -> FailurePath:
    """The rule on failed executions, notify's asynchronous retries, and where alerts that
    still could not be sent are kept."""
    undelivered = dead_letter_queue(scope, "UndeliveredFailureEvents")
    unsent = dead_letter_queue(scope, "UnsentFailureAlerts")
    notify.configure_async_invoke(
        retry_attempts=NOTIFY_ASYNC_RETRY_ATTEMPTS,
        max_event_age=ALERT_RETRY_AGE,
        on_failure=SendOnlyQueueDestination(unsent),
    )
    rule = events.Rule(
        scope,
        "ExecutionFailedRule",
        description="A leaderboard run failed, timed out or was aborted: notify (failure mode)",
        event_pattern=events.EventPattern(
            source=["aws.states"],
            detail_type=["Step Functions Execution Status Change"],
            detail={"status": list(FAILURE_STATUSES), "stateMachineArn": [state_machine_arn]},
        ),
    )
    rule.add_target(
        targets.LambdaFunction(
            notify,
            dead_letter_queue=undelivered,
            retry_attempts=RULE_RETRY_ATTEMPTS,
            max_event_age=ALERT_RETRY_AGE,
        )
    )
    return FailurePath(rule=rule, undelivered=undelivered, unsent=unsent)


def alarms(scope: Construct, state_machine: sfn.StateMachine, topic: sns.ITopic) -> list[cw.Alarm]:
    failed = _on_any(
        scope,
        "ExecutionsFailedAlarm",
        "A leaderboard run failed: see the notify message or redrive it",
        state_machine.metric_failed(period=Duration.minutes(5), statistic="Sum"),
        topic,
    )
    timed_out = _on_any(
        scope,
        "ExecutionsTimedOutAlarm",
        "A leaderboard run hit the state machine's execution timeout",
        state_machine.metric_timed_out(period=Duration.minutes(5), statistic="Sum"),
        topic,
    )
    # "No leaderboard published in 26 hours": hourly sums of the leaderboards notify reports as
    # made public, alarming when all of the last 26 are below 1. A run that succeeded with every
    # leaderboard skipped reports 0, and no run reports nothing, so missing data must count as
    # breaching. CloudWatch caps period x evaluation periods at 7 days for periods of an hour
    # or more (1 day below an hour): 1 h x 26 = 26 h is allowed, 5 min x 312 would not be.
    published = cw.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=PUBLISHED_METRIC,
        dimensions_map={"service": SERVICE, "stage": PUBLISHED_METRIC_STAGE},
        period=Duration.hours(1),
        statistic="Sum",
    )
    stale = cw.Alarm(
        scope,
        "NoRecentSuccessAlarm",
        alarm_description=(
            f"No leaderboard was published in the last {STALE_AFTER_HOURS} hours"
            " (no run, failed runs, or runs that skipped every leaderboard)"
        ),
        metric=published,
        threshold=1,
        comparison_operator=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
        evaluation_periods=STALE_AFTER_HOURS,
        datapoints_to_alarm=STALE_AFTER_HOURS,
        treat_missing_data=cw.TreatMissingData.BREACHING,
    )
    return [failed, timed_out, _alert_on(stale, topic)]


def _alert_on(alarm: cw.Alarm, topic: sns.ITopic) -> cw.Alarm:
    action = cw_actions.SnsAction(topic)
    alarm.add_alarm_action(action)
    alarm.add_ok_action(action)
    return alarm


def _on_any(
    scope: Construct, construct_id: str, description: str, metric: cw.IMetric, topic: sns.ITopic
) -> cw.Alarm:
    """An alarm, alerting ``topic``, in alarm while one period of ``metric`` is at least 1 (no
    data: nothing happened, so OK)."""
    return _alert_on(
        cw.Alarm(
            scope,
            construct_id,
            alarm_description=description,
            metric=metric,
            threshold=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        ),
        topic,
    )


def dead_letter_alarms(
    scope: Construct, queues: list[sqs.Queue], topic: sns.ITopic
) -> list[cw.Alarm]:
    """One alarm per dead-letter queue, in alarm as long as a message waits there (an operator
    reads it, acts, and purges the queue: docs/operations.md)."""
    return [
        _on_any(
            scope,
            f"{queue.node.id}Alarm",
            f"Something landed in a dead-letter queue: {DEAD_LETTER_QUEUES[queue.node.id]}."
            " See docs/operations.md, 'A message in a dead-letter queue'.",
            queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(5), statistic="Maximum"
            ),
            topic,
        )
        for queue in queues
    ]


def function_error_alarms(
    scope: Construct, functions: Mapping[str, lambda_.IFunction], topic: sns.ITopic
) -> list[cw.Alarm]:
    """An alarm per function on any error in five minutes. A stage's error the state machine
    retried away still shows here: the alarm says the stage failed, the execution's own
    alarms say whether the run did."""
    return [
        _on_any(
            scope,
            f"{name.capitalize()}ErrorsAlarm",
            f"The {name} function failed at least once in 5 minutes: see its logs "
            "(a retried stage may still have succeeded)",
            function.metric_errors(period=Duration.minutes(5), statistic="Sum"),
            topic,
        )
        for name, function in functions.items()
    ]


def admin_api_alarm(scope: Construct, api: apigw.RestApi, topic: sns.ITopic) -> cw.Alarm:
    """5xx from the admin endpoint: the function failed, timed out, or answered 503 because
    BixArena's JWKS or Step Functions could not be reached."""
    return _on_any(
        scope,
        "AdminApi5xxAlarm",
        "The admin endpoint answered 5xx: see the admin function's audit lines and "
        "docs/operations.md",
        api.metric_server_error(period=Duration.minutes(5), statistic="Sum"),
        topic,
    )


def _emf(metric_name: str, statistic: str) -> cw.MathExpression:
    return cw.MathExpression(
        expression=(
            f'SEARCH(\'Namespace="{METRICS_NAMESPACE}" MetricName="{metric_name}"\', '
            f"'{statistic}', 3600)"
        ),
        label=metric_name,
        period=Duration.hours(1),
    )


def dashboard(
    scope: Construct,
    config: StackConfig,
    state_machine: sfn.StateMachine,
    functions: dict[str, lambda_.IFunction],
) -> cw.Dashboard:
    hourly = Duration.hours(1)
    board = cw.Dashboard(scope, "Dashboard", dashboard_name=f"{config.name_prefix}")
    board.add_widgets(
        cw.GraphWidget(
            title="Executions",
            left=[
                state_machine.metric_started(period=hourly, statistic="Sum"),
                state_machine.metric_succeeded(period=hourly, statistic="Sum"),
                state_machine.metric_failed(period=hourly, statistic="Sum"),
                state_machine.metric_timed_out(period=hourly, statistic="Sum"),
                state_machine.metric_aborted(period=hourly, statistic="Sum"),
            ],
            width=12,
        ),
        cw.GraphWidget(
            title="Execution time (ms)",
            left=[state_machine.metric_time(period=hourly, statistic="Maximum")],
            width=12,
        ),
    )
    board.add_widgets(
        cw.GraphWidget(
            title="Stage duration (ms, max)",
            left=[
                fn.metric_duration(period=hourly, statistic="Maximum", label=stage)
                for stage, fn in functions.items()
            ],
            width=12,
        ),
        cw.GraphWidget(
            title="Stage errors and throttles",
            left=[
                fn.metric_errors(period=hourly, statistic="Sum", label=f"{stage} errors")
                for stage, fn in functions.items()
            ],
            right=[
                fn.metric_throttles(period=hourly, statistic="Sum", label=f"{stage} throttles")
                for stage, fn in functions.items()
            ],
            width=12,
        ),
    )
    board.add_widgets(
        cw.GraphWidget(title="Votes fetched", left=[_emf("BattlesFetched", "Sum")], width=5),
        cw.GraphWidget(
            title="Models ranked (max)", left=[_emf("ModelsRanked", "Maximum")], width=5
        ),
        cw.GraphWidget(
            title="Snapshots published", left=[_emf("SnapshotPublished", "Sum")], width=5
        ),
        cw.GraphWidget(
            title="Stage duration (ms, EMF)", left=[_emf("StageDuration", "Maximum")], width=5
        ),
        cw.GraphWidget(title="Run duration (s)", left=[_emf("RunDuration", "Maximum")], width=4),
    )
    return board
