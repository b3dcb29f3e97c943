"""The admin endpoint (issue 7): ``POST /admin/generate-snapshot`` starts a run on demand.

Unauthenticated traffic is stopped before it can use up what admins need (issue 11):
- AWS WAF, in front of the stage, blocks a request without an ``Authorization: Bearer`` header
  before API Gateway counts it against the stage's throttle, and blocks an address that sends
  more than ``RATE_LIMIT_PER_IP`` requests in 5 minutes: forged tokens from one place, or from a
  handful, cannot use up the stage's throttle (5 requests a second by default) either.
- A Lambda TOKEN authorizer checks the BixArena JWT (RS256 via the auth service's JWKS, issuer,
  audience, expiry, admin role: ``stages/authorizer``) before the admin function runs; API
  Gateway refuses a header that is not shaped like a bearer JWT without invoking it, and caches
  each token's answer for five minutes. Requests without a valid admin token never reach the
  admin function or its reserved concurrency.
- The admin function checks the token again (the cached answer may outlive the token), validates
  the body against its whitelist, refuses a second concurrent run and starts an execution.
API Gateway also checks the body's shape (request validator). Gateway responses keep API
Gateway's own refusals in the function's JSON shape (``{"error", "message"}``), with 503 when the
authorizer cannot read the JWKS. The functions stay outside the VPC: they call only Step
Functions and the JWKS URL, both over HTTPS.
"""

from __future__ import annotations

import json

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from common.contracts import BOOTSTRAP_MAX, BOOTSTRAP_MIN, MAX_LEADERBOARDS
from infra.config import StackConfig
from infra.nag import acknowledge

ROUTE = ("admin", "generate-snapshot")
STAGE_NAME = "v1"
TOKEN_PATTERN = r"^[Bb][Ee][Aa][Rr][Ee][Rr] [A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"
"""What API Gateway lets through to the authorizer: ``Bearer`` and a signed JWT's three parts."""
AUTHORIZER_CACHE = Duration.minutes(5)
RATE_LIMIT_PER_IP = 100
"""Requests per source address per 5 minutes before WAF blocks that address until its rate falls:
far above what an admin sends, far below what a flood needs."""
GATEWAY_RESPONSES: dict[str, tuple[str, str, str]] = {
    "UNAUTHORIZED": (
        "401",
        "invalid_token",
        "a valid BixArena token is required: 'Authorization: Bearer <token>'",
    ),
    "ACCESS_DENIED": (
        "403",
        "not_admin",
        "the token does not carry the admin role",
    ),
    "AUTHORIZER_FAILURE": (
        "503",
        "auth_unavailable",
        "BixArena's key set cannot be read right now; try again in a minute",
    ),
    # The authorizer raising anything but "Unauthorized" (the JWKS unreadable) may surface as
    # either type: API Gateway's documentation does not say which, so both answer alike.
    "AUTHORIZER_CONFIGURATION_ERROR": (
        "503",
        "auth_unavailable",
        "BixArena's key set cannot be read right now; try again in a minute",
    ),
    "BAD_REQUEST_BODY": (
        "400",
        "invalid_request",
        "the body must be a JSON object with only leaderboards (all, or slugs), bootstrap"
        " (10-10000) and publish (true or false)",
    ),
    "THROTTLED": (
        "429",
        "throttled",
        "too many requests to the admin endpoint right now; try again in a minute",
    ),
    "WAF_FILTERED": (
        "403",
        "forbidden",
        "refused: no bearer token, or too many requests from this address",
    ),
}
"""API Gateway's own refusals (by response type), in the admin function's JSON shape: status,
error code, message."""

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
    authorizer_function: lambda_.IFunction,
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
    authorizer = apigw.TokenAuthorizer(
        scope,
        "AdminAuthorizer",
        handler=authorizer_function,
        identity_source=apigw.IdentitySource.header("Authorization"),
        validation_regex=TOKEN_PATTERN,
        results_cache_ttl=AUTHORIZER_CACHE,
    )
    resource = api.root
    for part in ROUTE:
        resource = resource.add_resource(part)
    method = resource.add_method(
        "POST",
        apigw.LambdaIntegration(admin, allow_test_invoke=False),
        authorization_type=apigw.AuthorizationType.CUSTOM,
        authorizer=authorizer,
        request_validator=validator,
        request_models={"application/json": model},
    )
    acknowledge(
        method,
        "AwsSolutions-COG4",
        "BixArena's tokens are RS256 JWTs of its own auth service, not a Cognito user pool: a "
        "Lambda authorizer verifies them against the service's JWKS.",
    )
    named: set[str] = set()
    for response_type, (status, code, message) in GATEWAY_RESPONSES.items():
        headers = {"Content-Type": "'application/json'", "Cache-Control": "'no-store'"}
        if response_type == "UNAUTHORIZED":
            headers["WWW-Authenticate"] = """'Bearer realm="bixarena-leaderboard"'"""
        # Ids of deployed responses stay as they were: a replaced gateway response is deleted
        # after its successor is created, which would reset its type to API Gateway's default.
        construct_id = f"{code.title().replace('_', '')}Response{status}"
        if construct_id in named:
            construct_id = f"{response_type.title().replace('_', '')}Response"
        named.add(construct_id)
        api.add_gateway_response(
            construct_id,
            type=apigw.ResponseType.of(response_type),
            status_code=status,
            response_headers=headers,
            templates={"application/json": json.dumps({"error": code, "message": message})},
        )
    _web_acl(scope, config, api)
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


def _blocking_rule(
    name: str, priority: int, statement: wafv2.CfnWebACL.StatementProperty
) -> wafv2.CfnWebACL.RuleProperty:
    return wafv2.CfnWebACL.RuleProperty(
        name=name,
        priority=priority,
        action=wafv2.CfnWebACL.RuleActionProperty(block={}),
        statement=statement,
        visibility_config=_visibility(name),
    )


def _visibility(metric_name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=metric_name, sampled_requests_enabled=True
    )


def _web_acl(scope: Construct, config: StackConfig, api: apigw.RestApi) -> wafv2.CfnWebACL:
    """WAF in front of the stage: what it blocks, API Gateway never counts or throttles."""
    bearer_header = wafv2.CfnWebACL.StatementProperty(
        byte_match_statement=wafv2.CfnWebACL.ByteMatchStatementProperty(
            # WAF's SingleHeader is free-form JSON in CloudFormation: the key is "Name".
            field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(
                single_header={"Name": "authorization"}
            ),
            positional_constraint="STARTS_WITH",
            search_string="bearer ",
            text_transformations=[
                wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="LOWERCASE")
            ],
        )
    )
    acl = wafv2.CfnWebACL(
        scope,
        "AdminApiWebAcl",
        name=f"{config.name_prefix}-admin",
        description="Admin endpoint: bearer token required, per-address rate limit",
        scope="REGIONAL",
        default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
        visibility_config=_visibility(f"{config.name_prefix}-admin"),
        rules=[
            _blocking_rule(
                "RequireBearerToken",
                0,
                wafv2.CfnWebACL.StatementProperty(
                    not_statement=wafv2.CfnWebACL.NotStatementProperty(statement=bearer_header)
                ),
            ),
            _blocking_rule(
                "RateLimitPerAddress",
                1,
                wafv2.CfnWebACL.StatementProperty(
                    rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                        aggregate_key_type="IP",
                        limit=RATE_LIMIT_PER_IP,
                        evaluation_window_sec=300,
                    )
                ),
            ),
        ],
    )
    wafv2.CfnWebACLAssociation(
        scope,
        "AdminApiWebAclAssociation",
        resource_arn=api.deployment_stage.stage_arn,
        web_acl_arn=acl.attr_arn,
    )
    return acl
