"""The daily run: an EventBridge Scheduler schedule that starts the state machine.

The input carries the scheduled time (``<aws.scheduler.scheduled-time>``) as ``run_at``: fetch
derives the run id and the snapshot identifier from it, so a retried delivery of the same
occurrence names the same snapshot. The schedule's role may only start this state machine;
deliveries that still fail after the retries go to the dead-letter queue.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, TimeZone
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.config import StackConfig


def scheduled_input(config: StackConfig) -> dict[str, Any]:
    """The execution input of a scheduled run (a RunRequest; fetch fills in the rest)."""
    return {
        "leaderboards": config.leaderboards,
        "bootstrap": config.bootstrap,
        "trigger": "scheduled",
        "run_at": scheduler.ContextAttribute.scheduled_time,
    }


def build_schedule(
    scope: Construct,
    config: StackConfig,
    state_machine: sfn.IStateMachine,
    dead_letters: sqs.IQueue,
) -> scheduler.Schedule:
    role = iam.Role(
        scope,
        "ScheduleRole",
        assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com"),
        description="EventBridge Scheduler: start the leaderboard state machine, nothing else",
    )
    return scheduler.Schedule(
        scope,
        "DailySchedule",
        schedule_name=f"{config.name_prefix}-daily",
        description="Daily BixArena leaderboard snapshot",
        schedule=scheduler.ScheduleExpression.expression(
            config.schedule_expression, TimeZone.of(config.schedule_time_zone)
        ),
        enabled=config.schedule_enabled,
        target=scheduler_targets.StepFunctionsStartExecution(
            state_machine,
            input=scheduler.ScheduleTargetInput.from_object(scheduled_input(config)),
            role=role,
            dead_letter_queue=dead_letters,
            retry_attempts=10,
            max_event_age=Duration.hours(6),
        ),
    )
