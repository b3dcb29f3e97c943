"""The one stack: functions, state machine, schedule, failure path, data, operator and admin access.

The pieces live in their own modules (network, storage, functions, state_machine, schedule,
monitoring, admin_api, operator_access); this module wires them together and grants each function
exactly what its stage does. The state machine has a name derived from the environment, so the
functions' environment and IAM policies refer to its ARN as a string and no dependency cycle
arises (the state machine depends on the functions, not the other way round).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import ArnFormat, CfnOutput, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from common.observability import METRICS_NAMESPACE, SERVICE
from infra import monitoring
from infra.admin_api import build_admin_api
from infra.config import LOG_RETENTION_DAYS, StackConfig
from infra.functions import Placement, build_function, stage_sizing
from infra.nag import acknowledge
from infra.network import Network, build_network
from infra.operator_access import build_operator_access
from infra.schedule import build_schedule
from infra.state_machine import StageFunctions, build_definition
from infra.storage import ARTIFACTS_PREFIX, build_storage

EXECUTION_TIMEOUT = Duration.hours(2)
RETENTION = dict(
    zip(LOG_RETENTION_DAYS, [r for r in logs.RetentionDays if r.name != "INFINITE"], strict=True)
)


class LeaderboardStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: StackConfig, **kwargs: Any):
        super().__init__(
            scope,
            construct_id,
            description=f"BixArena leaderboard snapshot pipeline ({config.environment})",
            **kwargs,
        )
        self.config = config
        retention = RETENTION[config.log_retention_days]

        def log_group(construct_id: str) -> logs.LogGroup:
            return logs.LogGroup(self, construct_id, retention=retention)

        network = build_network(
            self, config, log_group("VpcFlowLogs") if config.creates_vpc else None
        )
        storage = build_storage(self, config)
        alerts = monitoring.build_alerts(self, config)
        database_secret_arn = self._secret_arn(
            "DatabaseSecret",
            config.database_secret_arn,
            "PostgreSQL credentials in RDS format (host, port, dbname, username, password)",
        )
        slack_secret_arn = self._secret_arn(
            "SlackSecret",
            config.slack_secret_arn,
            'Slack incoming-webhook URL (https://hooks.slack.com/..., or {"webhook_url": "..."})',
        )

        self.state_machine_arn = self.format_arn(
            service="states",
            resource="stateMachine",
            resource_name=config.state_machine_name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.executions_arn = self.format_arn(
            service="states",
            resource="execution",
            resource_name=f"{config.state_machine_name}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

        common_env = {
            "ENVIRONMENT_NAME": config.environment,
            "POWERTOOLS_SERVICE_NAME": SERVICE,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        }
        data_env = {
            **common_env,
            "ARTIFACTS_BUCKET": storage.artifacts.bucket_name,
            "ARTIFACTS_PREFIX": ARTIFACTS_PREFIX,
            **_optional_env(config),
        }
        environments = {
            "fetch": {**data_env, "DATABASE_SECRET_ARN": database_secret_arn},
            "rank": data_env,
            "publish": {**data_env, "DATABASE_SECRET_ARN": database_secret_arn},
            "notify": {
                **common_env,
                "SLACK_SECRET_ARN": slack_secret_arn,
                "SNS_TOPIC_ARN": alerts.topic.topic_arn,
            },
        }
        placements = _placements(network)
        functions = {
            stage: build_function(
                self,
                stage,
                function_name=f"{config.name_prefix}-{stage}",
                sizing=stage_sizing(stage, config.map_max_concurrency),
                environment=environments[stage],
                log_retention=retention,
                placement=placements[stage],
            )
            for stage in ("fetch", "rank", "publish", "notify")
        }
        self.functions = functions
        self._grant_stage_permissions(
            functions, database_secret_arn, slack_secret_arn, alerts, storage.artifacts
        )

        state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=config.state_machine_name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_chainable(
                build_definition(
                    self,
                    StageFunctions(**functions),
                    max_concurrency=config.map_max_concurrency,
                )
            ),
            timeout=EXECUTION_TIMEOUT,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=log_group("StateMachineLogs"),
                level=sfn.LogLevel.ALL,
                include_execution_data=True,
            ),
        )
        self.state_machine = state_machine
        self._acknowledge_state_machine_role(state_machine, functions)

        build_schedule(self, config, state_machine, alerts.dead_letters)
        failure_path = monitoring.failure_path(
            self, state_machine.state_machine_arn, functions["notify"]
        )
        monitoring.alarms(self, state_machine, alerts.topic)
        monitoring.dead_letter_alarms(
            self,
            [alerts.dead_letters, failure_path.undelivered, failure_path.unsent],
            alerts.topic,
        )
        monitoring.dashboard(self, config, state_machine, dict(functions))
        build_operator_access(self, config, self.state_machine_arn, self.executions_arn)

        admin = build_function(
            self,
            "admin",
            function_name=f"{config.name_prefix}-admin",
            sizing=stage_sizing("admin", config.map_max_concurrency),
            environment={**common_env, **self._admin_env()},
            log_retention=retention,
            placement=None,
        )
        admin.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:StartExecution", "states:ListExecutions"],
                resources=[self.state_machine_arn],
            )
        )
        # To refuse a second run over the same leaderboards, the admin function reads the input
        # of each RUNNING execution (common.stepfunctions.executions.running_executions).
        admin.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:DescribeExecution"], resources=[self.executions_arn]
            )
        )
        self._acknowledge_executions_pattern(admin)
        authorizer = build_function(
            self,
            "authorizer",
            function_name=f"{config.name_prefix}-authorizer",
            sizing=stage_sizing("authorizer", config.map_max_concurrency),
            environment={**common_env, **self._token_env()},
            log_retention=retention,
            placement=None,
        )
        api = build_admin_api(self, config, admin, authorizer, log_group("AdminApiAccessLogs"))
        # Not the authorizer: a token it refuses is a Lambda error by API Gateway's contract
        # (raising "Unauthorized" is how a 401 is answered), so anyone with a forged or expired
        # token would page the operators. Its real failure, BixArena's JWKS unreadable, reaches
        # clients as 503 and the AdminApi5xxAlarm.
        monitoring.function_error_alarms(self, {**functions, "admin": admin}, alerts.topic)
        monitoring.admin_api_alarm(self, api, alerts.topic)

        CfnOutput(self, "StateMachineArn", value=state_machine.state_machine_arn)
        CfnOutput(self, "ArtifactsBucketName", value=storage.artifacts.bucket_name)
        CfnOutput(self, "DatabaseSecretArn", value=database_secret_arn)
        CfnOutput(self, "SlackSecretArn", value=slack_secret_arn)
        CfnOutput(self, "AlertsTopicArn", value=alerts.topic.topic_arn)
        CfnOutput(
            self,
            "AdminEndpoint",
            value=api.url_for_path("/" + "/".join(("admin", "generate-snapshot"))),
        )
        if config.creates_vpc:
            CfnOutput(
                self,
                "DatabaseSecurityGroupId",
                value=network.database_security_group.security_group_id,
                description="Attach to the sandbox PostgreSQL instance",
            )

    def _secret_arn(self, construct_id: str, arn: str | None, description: str) -> str:
        """The given secret's ARN, or a new empty secret's (filled in after deploy)."""
        if arn is not None:
            return arn
        secret = secretsmanager.Secret(
            self, construct_id, description=f"{self.config.name_prefix}: {description}"
        )
        # No GenerateSecretString: an empty secret, so nothing pretends to be a real value.
        cfn_secret = secret.node.default_child
        assert isinstance(cfn_secret, secretsmanager.CfnSecret)
        cfn_secret.add_property_deletion_override("GenerateSecretString")
        acknowledge(
            secret,
            "AwsSolutions-SMG4",
            "Filled in by hand after deploy: database credentials are rotated by the database's "
            "owner (RDS-managed secret in production), a Slack webhook URL cannot be rotated.",
        )
        return secret.secret_arn

    def _admin_env(self) -> dict[str, str]:
        return {"STATE_MACHINE_ARN": self.state_machine_arn, **self._token_env()}

    def _token_env(self) -> dict[str, str]:
        """What the authorizer and the admin function check a token against."""
        config = self.config
        env = {
            "JWT_ISSUER": config.jwt_issuer,
            "JWT_AUDIENCE": config.jwt_audience,
            "ADMIN_CLAIM": config.admin_claim,
            "ADMIN_ROLE": config.admin_role,
        }
        if config.jwks_url:
            env["JWKS_URL"] = config.jwks_url
        return env

    def _grant_stage_permissions(
        self,
        functions: dict[str, lambda_.DockerImageFunction],
        database_secret_arn: str,
        slack_secret_arn: str,
        alerts: monitoring.Alerts,
        bucket: s3.IBucket,
    ) -> None:
        bucket_arn = bucket.bucket_arn
        objects = f"{bucket_arn}/{ARTIFACTS_PREFIX}*"
        for stage in ("fetch", "rank", "publish"):
            role = functions[stage]
            role.add_to_role_policy(
                iam.PolicyStatement(actions=["s3:GetObject"], resources=[objects])
            )
            # Without ListBucket a missing key reads as AccessDenied, not NoSuchKey (an expired
            # run's artifacts, met by a late redrive, would pass for an IAM fault). Unconditioned:
            # the check S3 makes for that answer is no listing and carries no s3:prefix, which a
            # prefix condition needs; the stages list nothing, and the bucket holds only runs/.
            role.add_to_role_policy(
                iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket_arn])
            )
        for stage in ("fetch", "rank"):
            functions[stage].add_to_role_policy(
                iam.PolicyStatement(
                    actions=["s3:PutObject", "s3:AbortMultipartUpload"], resources=[objects]
                )
            )
        for stage in ("fetch", "publish"):
            functions[stage].add_to_role_policy(
                iam.PolicyStatement(
                    actions=["secretsmanager:GetSecretValue"], resources=[database_secret_arn]
                )
            )
        # fetch falls back on DescribeExecution's startDate when the input has no run_at.
        functions["fetch"].add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:DescribeExecution"], resources=[self.executions_arn]
            )
        )
        notify = functions["notify"]
        notify.add_to_role_policy(
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue"], resources=[slack_secret_arn]
            )
        )
        # In failure mode, notify names the failing state from the execution's history.
        notify.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:GetExecutionHistory"], resources=[self.executions_arn]
            )
        )
        notify.add_to_role_policy(
            iam.PolicyStatement(actions=["sns:Publish"], resources=[alerts.topic.topic_arn])
        )
        notify.add_to_role_policy(
            iam.PolicyStatement(
                actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[alerts.key.key_arn]
            )
        )
        self._acknowledge_executions_pattern(functions["fetch"])
        self._acknowledge_executions_pattern(functions["notify"])
        bucket_id = self.get_logical_id(bucket.node.default_child)  # type: ignore[arg-type]
        for stage in ("fetch", "rank", "publish"):
            acknowledge(
                functions[stage].role,  # type: ignore[arg-type]
                f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{ARTIFACTS_PREFIX}*]",
                "Run artifacts are keyed by run id under runs/; the prefix is the narrowest "
                "resource that covers the objects of runs that do not exist yet.",
            )

    def _acknowledge_executions_pattern(self, function: lambda_.IFunction) -> None:
        acknowledge(
            function.role,  # type: ignore[arg-type]
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:"
            f"<AWS::AccountId>:execution:{self.config.state_machine_name}:*]",
            "Execution names are chosen by whoever starts a run; the pattern is limited to "
            "the executions of this one state machine.",
        )

    def _acknowledge_state_machine_role(
        self, state_machine: sfn.StateMachine, functions: dict[str, lambda_.DockerImageFunction]
    ) -> None:
        role = state_machine.role
        for function in functions.values():
            logical_id = self.get_logical_id(function.node.default_child)  # type: ignore[arg-type]
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>:*]",
                "CDK's lambda:invoke integration grants InvokeFunction on the function and its "
                "versions/aliases (ARN:*); the resource is still this one function.",
            )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "Step Functions' log delivery (logs:*LogDelivery, DescribeResourcePolicies, ...) and "
            "X-Ray (PutTraceSegments, GetSampling*) actions accept no narrower resource than *.",
        )


def _optional_env(config: StackConfig) -> dict[str, str]:
    """Stage settings given as context; unset ones keep the stages' own defaults."""
    env = {
        "MIN_BATTLES": config.min_battles,
        "MIN_MODELS": config.min_models,
        "MIN_EVALS": config.min_evals,
        "LEADERBOARD_FILTERS": config.leaderboard_filters,
        "STYLE_CONTROL_LEADERBOARDS": config.style_control_leaderboards,
    }
    return {key: str(value) for key, value in env.items() if value is not None}


def _placements(network: Network) -> dict[str, Placement]:
    return {
        "fetch": Placement(network.vpc, network.stage_subnets, network.database_clients),
        "rank": Placement(network.vpc, network.stage_subnets, network.https_only),
        "publish": Placement(network.vpc, network.stage_subnets, network.database_clients),
        "notify": Placement(network.vpc, network.notify_subnets, network.https_only),
    }
