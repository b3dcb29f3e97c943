"""Operator access: start, watch and redrive leaderboard runs, nothing else.

A managed policy with exactly the Step Functions actions an operator needs, each on the narrowest
resource it applies to (the state machine, or its executions), and a role that the account's
administrators can assume to use it (``aws sts assume-role`` or the console's Switch role).
"""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.config import StackConfig
from infra.nag import acknowledge

STATE_MACHINE_ACTIONS = ("states:StartExecution", "states:ListExecutions")
EXECUTION_ACTIONS = (
    "states:DescribeExecution",
    "states:GetExecutionHistory",
    "states:RedriveExecution",
)


def build_operator_access(
    scope: Construct, config: StackConfig, state_machine_arn: str, executions_arn: str
) -> iam.ManagedPolicy:
    policy = iam.ManagedPolicy(
        scope,
        "OperatorPolicy",
        managed_policy_name=f"{config.name_prefix}-operator",
        description="Start, list, inspect and redrive the leaderboard pipeline's executions",
        statements=[
            iam.PolicyStatement(actions=list(STATE_MACHINE_ACTIONS), resources=[state_machine_arn]),
            iam.PolicyStatement(actions=list(EXECUTION_ACTIONS), resources=[executions_arn]),
        ],
    )
    acknowledge(
        policy,
        f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:"
        f"execution:{config.state_machine_name}:*]",
        "Execution names are chosen at start time (schedule, admin, CLI); this ARN pattern covers "
        "the executions of this one state machine and nothing else.",
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
