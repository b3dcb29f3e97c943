"""A toy state machine with the pipeline's shape, for tests of the local runner's mechanics
(in-process dispatch, redrive) and of the operator commands: Fetch -> Map over leaderboards
(Rank -> Publish) -> Notify, each task retrying DatabaseUnavailable once after 1 s."""

from __future__ import annotations

from typing import Any

import boto3

STAGES = ("fetch", "rank", "publish", "notify")


def task(function: str, parameters: dict[str, Any], nxt: str | None) -> dict[str, Any]:
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": function, **parameters},
        "OutputPath": "$.Payload",
        "Retry": [
            {
                "ErrorEquals": ["DatabaseUnavailable"],
                "IntervalSeconds": 1,
                "MaxAttempts": 2,
                "BackoffRate": 2,
            }
        ],
    }
    state.update({"Next": nxt} if nxt else {"End": True})
    return state


DEFINITION: dict[str, Any] = {
    "StartAt": "Fetch",
    "States": {
        "Fetch": task(
            "fetch",
            {"Payload": {"request.$": "$", "execution_name.$": "$$.Execution.Name"}},
            "RankAndPublish",
        ),
        "RankAndPublish": {
            "Type": "Map",
            "ItemsPath": "$.leaderboards",
            "ItemSelector": {"run.$": "$.run", "leaderboard.$": "$$.Map.Item.Value"},
            "MaxConcurrency": 1,
            "ResultPath": "$.results",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "Rank",
                "States": {
                    "Rank": task("rank", {"Payload.$": "$"}, "Publish"),
                    "Publish": task("publish", {"Payload.$": "$"}, None),
                },
            },
            "Next": "Notify",
        },
        "Notify": task("notify", {"Payload": {"run.$": "$.run", "results.$": "$.results"}}, None),
    },
}


def create_role(region: str) -> str:
    """moto checks that a state machine's and a function's role exists."""
    iam = boto3.client("iam", region_name=region)
    return str(iam.create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"])


def create_functions(role: str, region: str) -> None:
    lam = boto3.client("lambda", region_name=region)
    for name in STAGES:
        lam.create_function(
            FunctionName=name,
            Role=role,
            PackageType="Image",
            Code={"ImageUri": f"123456789012.dkr.ecr.{region}.amazonaws.com/leaderboard:test"},
        )
