"""The Lambda functions: one container image, one function per stage plus the admin endpoint's.

The image is built from the Dockerfile at the repository root (docs/adr/0002-one-container-image.md);
each function overrides the image's command with its handler. Synthesis copies the build context
into cdk.out, so .dockerignore keeps it to what the image needs (common/, stages/, the lock).

Each function gets its own role with only what every function needs: writing to its own log
group, X-Ray segments, and (in the VPC) the network-interface actions Lambda performs on its
behalf. The stack adds each stage's data permissions on top.

Sizes are for a run over 5M votes: fetch streams votes into Parquet (memory for the batches,
/tmp for the file), rank fits all bootstrap replicates at once (Lambda's CPU grows with memory:
3008 MB is about two vCPUs), publish inserts a few hundred rows per leaderboard, notify posts one
message. Rank's largest job is the style-controlled fit: at 5M votes, 300 models and B = 1000 the
stage (read, plain and style fit) took 190 s of CPU and peaked at 1.8 GB; at 1M votes 31 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Duration, Size, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.nag import acknowledge

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Sizing:
    memory_mb: int
    timeout: Duration
    ephemeral_mb: int = 512
    reserved_concurrency: int | None = None


SIZING: dict[str, Sizing] = {
    # Reserved concurrency caps how many copies can hold database connections at once, whatever
    # starts executions (schedule, admin, redrives). Fetch runs once per execution; publish runs
    # once per leaderboard, so its cap is set to the Map's concurrency in ``stage_sizing``.
    "fetch": Sizing(2048, Duration.minutes(10), ephemeral_mb=2048, reserved_concurrency=2),
    "rank": Sizing(3008, Duration.minutes(10), ephemeral_mb=2048),
    "publish": Sizing(1024, Duration.minutes(5)),
    "notify": Sizing(256, Duration.minutes(1)),
    # Behind API Gateway, whose integration timeout is 29 s. Only requests the authorizer let
    # through reach it: a couple of admins at a time at most.
    "admin": Sizing(256, Duration.seconds(25), reserved_concurrency=2),
    # API Gateway's TOKEN authorizer: one JWKS fetch at most (3 s timeout), then cached.
    "authorizer": Sizing(256, Duration.seconds(10)),
}


def stage_sizing(stage: str, map_max_concurrency: int) -> Sizing:
    sizing = SIZING[stage]
    if stage == "publish":
        return Sizing(
            sizing.memory_mb,
            sizing.timeout,
            sizing.ephemeral_mb,
            reserved_concurrency=map_max_concurrency,
        )
    return sizing


def handler_path(stage: str) -> str:
    return f"stages.{stage}.handler.handler"


@dataclass(frozen=True)
class Placement:
    """Where a function runs in the VPC; None for functions outside it."""

    vpc: ec2.IVpc
    subnets: ec2.SubnetSelection
    security_group: ec2.ISecurityGroup


def image_code(stage: str) -> lambda_.DockerImageCode:
    # Same directory, file and options for every stage: one asset hash, one image in ECR.
    return lambda_.DockerImageCode.from_image_asset(
        str(REPO_ROOT),
        file="Dockerfile",
        cmd=[handler_path(stage)],
        platform=ecr_assets.Platform.LINUX_AMD64,
    )


def _role(scope: Construct, construct_id: str, log_group: logs.LogGroup, in_vpc: bool) -> iam.Role:
    role = iam.Role(
        scope,
        construct_id,
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=f"{construct_id}: its own log group, X-Ray, and its stage's data only",
    )
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[log_group.log_group_arn],
        )
    )
    if in_vpc:
        # What AWSLambdaVPCAccessExecutionRole grants, minus its logs:* on every log group, and
        # with the actions that take resource ARNs limited to this account and region.
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"], resources=["*"]
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "ec2:CreateNetworkInterface",
                    "ec2:DeleteNetworkInterface",
                    "ec2:AssignPrivateIpAddresses",
                    "ec2:UnassignPrivateIpAddresses",
                ],
                resources=[
                    Stack.of(scope).format_arn(service="ec2", resource="*", resource_name="*")
                ],
            )
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:*/*]",
            "Lambda creates and deletes the function's network interfaces in subnets and security "
            "groups it picks at run time; the ARN is limited to this account and region.",
        )
    acknowledge(
        role,
        "AwsSolutions-IAM5[Resource::*]",
        "X-Ray PutTraceSegments/PutTelemetryRecords and EC2 DescribeNetworkInterfaces/"
        "DescribeSubnets support no resource-level permissions: they accept only *.",
    )
    return role


def build_function(
    scope: Construct,
    stage: str,
    *,
    function_name: str,
    sizing: Sizing,
    environment: dict[str, str],
    log_retention: logs.RetentionDays,
    placement: Placement | None,
) -> lambda_.DockerImageFunction:
    title = stage.capitalize()
    log_group = logs.LogGroup(scope, f"{title}Logs", retention=log_retention)
    role = _role(scope, f"{title}Role", log_group, in_vpc=placement is not None)
    return lambda_.DockerImageFunction(
        scope,
        f"{title}Function",
        function_name=function_name,
        description=f"BixArena leaderboard pipeline: {stage} ({handler_path(stage)})",
        code=image_code(stage),
        architecture=lambda_.Architecture.X86_64,
        memory_size=sizing.memory_mb,
        timeout=sizing.timeout,
        ephemeral_storage_size=Size.mebibytes(sizing.ephemeral_mb),
        reserved_concurrent_executions=sizing.reserved_concurrency,
        environment=environment,
        tracing=lambda_.Tracing.ACTIVE,
        log_group=log_group,
        role=role,
        vpc=placement.vpc if placement else None,
        vpc_subnets=placement.subnets if placement else None,
        security_groups=[placement.security_group] if placement else None,
    )
