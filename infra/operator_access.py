"""Operator access: start, watch, stop and redrive leaderboard runs, nothing else.

A managed policy with exactly the actions an operator needs -- the ``leaderboard`` commands, and
the console's pages that the failure alert sends them to (an execution, its Redrive and Stop
buttons, the list of state machines) -- each on the narrowest resource it applies to (the state
machine, its executions, the stack for its outputs; listing state machines takes no resource),
and a role that the account's administrators can assume to use it (``aws sts assume-role`` or
the console's Switch role).
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.config import StackConfig
from infra.nag import acknowledge

STATE_MACHINE_ACTIONS = (
    "states:StartExecution",
    "states:ListExecutions",
    "states:DescribeStateMachine",
)
EXECUTION_ACTIONS = (
    "states:DescribeExecution",
    "states:GetExecutionHistory",
    "states:DescribeStateMachineForExecution",
    "states:RedriveExecution",
    "states:StopExecution",
)
SERVICE_ACTIONS = ("states:ListStateMachines",)
"""The console's list of state machines, the way to the execution: an action on no resource."""
STACK_ACTIONS = ("cloudformation:DescribeStacks",)
"""The stack's outputs (the state machine's ARN: docs/operations.md)."""


def build_operator_access(
    scope: Construct, config: StackConfig, state_machine_arn: str, executions_arn: str
) -> iam.ManagedPolicy:
    policy = iam.ManagedPolicy(
        scope,
        "OperatorPolicy",
        managed_policy_name=f"{config.name_prefix}-operator",
        description="Start, list, inspect, stop and redrive the leaderboard pipeline's executions",
        statements=[
            iam.PolicyStatement(actions=list(STATE_MACHINE_ACTIONS), resources=[state_machine_arn]),
            iam.PolicyStatement(actions=list(EXECUTION_ACTIONS), resources=[executions_arn]),
            iam.PolicyStatement(actions=list(SERVICE_ACTIONS), resources=["*"]),
            iam.PolicyStatement(actions=list(STACK_ACTIONS), resources=[Stack.of(scope).stack_id]),
        ],
    )
    acknowledge(
        policy,
        f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:"
        f"execution:{config.state_machine_name}:*]",
        "Execution names are chosen at start time (schedule, admin, CLI); this ARN pattern covers "
        "the executions of this one state machine and nothing else.",
    )
    acknowledge(
        policy,
        "AwsSolutions-IAM5[Resource::*]",
        "states:ListStateMachines acts on no resource (IAM takes only '*' for it); it lists names"
        " and ARNs, which the console needs to reach the execution an alert names.",
    )
    iam.Role(
        scope,
        "OperatorRole",
        role_name=f"{config.name_prefix}-operator",
        description="Operators of the leaderboard pipeline (assumable by the account's admins)",
        assumed_by=iam.AccountRootPrincipal(),
        managed_policies=[policy],
    )
    return policy
