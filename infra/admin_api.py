"""The admin endpoint (issue 7): ``POST /admin/generate-snapshot`` starts a run on demand.

API Gateway (REST, regional) forwards the request to the admin function, which verifies the
BixArena JWT itself (RS256 via the auth service's JWKS, issuer, audience, expiry, admin role),
validates the body against its whitelist, refuses a second concurrent run and starts an execution.
BixArena's tokens are neither IAM nor Cognito, so the method's authorization type is NONE; what
API Gateway can check before the function runs, it checks: the body must be a JSON object of a
bounded shape (request validator), and the stage is throttled. The function stays outside the VPC:
it calls only Step Functions and the JWKS URL, both over HTTPS.
"""

from __future__ import annotations

from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from common.contracts import BOOTSTRAP_MAX, BOOTSTRAP_MIN, MAX_LEADERBOARDS
from infra.config import StackConfig
from infra.nag import acknowledge

ROUTE = ("admin", "generate-snapshot")
STAGE_NAME = "v1"

SLUG = apigw.JsonSchema(type=apigw.JsonSchemaType.STRING, min_length=1, max_length=100)
REQUEST_SCHEMA = apigw.JsonSchema(
    schema=apigw.JsonSchemaVersion.DRAFT4,
    title="GenerateSnapshotRequest",
    type=apigw.JsonSchemaType.OBJECT,
    additional_properties=False,
    properties={
        "leaderboards": apigw.JsonSchema(
            one_of=[
                apigw.JsonSchema(type=apigw.JsonSchemaType.STRING, min_length=1, max_length=2000),
                apigw.JsonSchema(
                    type=apigw.JsonSchemaType.ARRAY,
                    items=SLUG,
                    min_items=1,
                    max_items=MAX_LEADERBOARDS,
                ),
            ]
        ),
        "bootstrap": apigw.JsonSchema(
            type=apigw.JsonSchemaType.INTEGER, minimum=BOOTSTRAP_MIN, maximum=BOOTSTRAP_MAX
        ),
        "publish": apigw.JsonSchema(type=apigw.JsonSchemaType.BOOLEAN),
    },
)
"""The body's shape (the admin function's BODY_KEYS); the function checks slugs and the rest."""


def build_admin_api(
    scope: Construct,
    config: StackConfig,
    admin: lambda_.IFunction,
    access_logs: logs.ILogGroup,
) -> apigw.RestApi:
    api = apigw.RestApi(
        scope,
        "AdminApi",
        rest_api_name=f"{config.name_prefix}-admin",
        description="BixArena leaderboard: admin-triggered snapshot runs",
        endpoint_types=[apigw.EndpointType.REGIONAL],
        # Access and execution logging need API Gateway's account-level CloudWatch role; a
        # sandbox account may have none yet. Production accounts usually do (context: false).
        cloud_watch_role=config.create_api_gateway_logs_role,
        deploy_options=apigw.StageOptions(
            stage_name=STAGE_NAME,
            throttling_rate_limit=config.api_rate_limit,
            throttling_burst_limit=config.api_burst_limit,
            access_log_destination=apigw.LogGroupLogDestination(access_logs),
            access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                caller=True,
                http_method=True,
                ip=True,
                protocol=True,
                request_time=True,
                resource_path=True,
                response_length=True,
                status=True,
                user=True,
            ),
            logging_level=apigw.MethodLoggingLevel.ERROR,
            # Request bodies are not secret, but headers carry the bearer token: never traced.
            data_trace_enabled=False,
            metrics_enabled=True,
            tracing_enabled=True,
        ),
    )
    validator = api.add_request_validator(
        "BodyValidator", validate_request_body=True, validate_request_parameters=True
    )
    model = api.add_model(
        "GenerateSnapshotRequest", content_type="application/json", schema=REQUEST_SCHEMA
    )
    resource = api.root
    for part in ROUTE:
        resource = resource.add_resource(part)
    method = resource.add_method(
        "POST",
        apigw.LambdaIntegration(admin, allow_test_invoke=False),
        authorization_type=apigw.AuthorizationType.NONE,
        request_validator=validator,
        request_models={"application/json": model},
    )
    reason_auth = (
        "The admin function verifies BixArena's RS256 JWT itself (JWKS, issuer, audience, expiry, "
        "admin role); BixArena tokens are not IAM or Cognito, so the method is NONE by design."
    )
    acknowledge(method, "AwsSolutions-APIG4", reason_auth)
    acknowledge(method, "AwsSolutions-COG4", reason_auth)
    acknowledge(
        api.deployment_stage,
        "AwsSolutions-APIG3",
        "One admin-only POST route, throttled on the stage and refused without an admin JWT; "
        "a WAF web ACL would add cost without protecting anything the function does not check.",
    )
    if config.create_api_gateway_logs_role:
        role = api.node.find_child("CloudWatchRole")
        acknowledge(
            role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            "API Gateway's account-level logging role is meant to carry this AWS managed policy; "
            "it only lets API Gateway write its own access and execution logs.",
        )
    return api
