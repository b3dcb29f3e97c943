"""Failures reach people: the alert topic, the failure rule, the alarms, the dashboard.

- A failed, timed-out or aborted execution emits an EventBridge "Execution Status Change" event;
  a rule sends it, raw, to the notify function (failure mode), which reads the execution history
  to name the failing state (docs/adr/0003-no-catch-to-fail.md).
- CloudWatch alarms on the state machine's metrics (failed, timed out) and on the missed day (no
  leaderboard published in 26 hours: notify's ``LeaderboardsPublished`` EMF metric, so a run
  that succeeded but published nothing counts as missed) publish to an encrypted SNS topic,
  optionally with an e-mail subscription.
- Events that EventBridge or Scheduler could not deliver land in one encrypted dead-letter queue.
- The dashboard reads the stages' EMF metrics (namespace BixArena/Leaderboard) with SEARCH
  expressions, so it shows them whatever dimensions a stage adds.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
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


@dataclass(frozen=True)
class Alerts:
    topic: sns.Topic
    key: kms.Key
    dead_letters: sqs.Queue


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
    dead_letters = sqs.Queue(
        scope,
        "UndeliveredEvents",
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(14),
    )
    acknowledge(
        dead_letters,
        "AwsSolutions-SQS3",
        "This queue is itself the dead-letter queue of the schedule's target and of the failure "
        "rule's target; nothing consumes it automatically, so it needs no dead-letter queue.",
    )
    return Alerts(topic=topic, key=key, dead_letters=dead_letters)


def failure_rule(
    scope: Construct,
    state_machine_arn: str,
    notify: lambda_.IFunction,
    dead_letters: sqs.IQueue,
) -> events.Rule:
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
            dead_letter_queue=dead_letters,
            retry_attempts=8,
            max_event_age=Duration.hours(6),
        )
    )
    return rule


def alarms(scope: Construct, state_machine: sfn.StateMachine, topic: sns.ITopic) -> list[cw.Alarm]:
    failed = cw.Alarm(
        scope,
        "ExecutionsFailedAlarm",
        alarm_description="A leaderboard run failed: see the notify message or redrive it",
        metric=state_machine.metric_failed(period=Duration.minutes(5), statistic="Sum"),
        threshold=1,
        comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluation_periods=1,
        treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
    )
    timed_out = cw.Alarm(
        scope,
        "ExecutionsTimedOutAlarm",
        alarm_description="A leaderboard run hit the state machine's execution timeout",
        metric=state_machine.metric_timed_out(period=Duration.minutes(5), statistic="Sum"),
        threshold=1,
        comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluation_periods=1,
        treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
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
    action = cw_actions.SnsAction(topic)
    for alarm in (failed, timed_out, stale):
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
    return [failed, timed_out, stale]


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
