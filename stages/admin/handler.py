"""Admin endpoint ``POST /admin/generate-snapshot`` (API Gateway proxy integration, v1 or v2).

An admin with a BixArena JWT asks for a fresh snapshot now: the token is verified (API Gateway's
authorizer checked it already, but its cached answer may outlive the token), the body is checked
against the pipeline's contract, a second run over the same leaderboards is refused (409 with the
running execution's ARN), and the execution is started under a name that an identical request in
the same minute would take too, so that Step Functions itself refuses the twin; the answer is 202
with its ARN and correlation id. Every request leaves one audit log line (who, what, result),
never the token.
"""

from __future__ import annotations

import functools
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from common import admin, auth
from common.observability import bind_correlation_id, logger
from common.stepfunctions.executions import (
    ExecutionNameTaken,
    refuse_overlap,
    running_executions,
    start_execution,
)
from common.stepfunctions.history import region_of

# API Gateway gives up after 29 s and the function after 25 s: keep every call short, retry once.
_SFN_CONFIG = Config(
    connect_timeout=2, read_timeout=4, retries={"max_attempts": 2, "mode": "standard"}
)


@dataclass(frozen=True)
class Services:
    """Per-container configuration and clients, built on the first request."""

    config: admin.AdminConfig
    auth_config: auth.AuthConfig
    jwks: auth.JwksCache
    sfn: Any


@functools.cache
def services() -> Services:
    config = admin.AdminConfig.from_env(os.environ)
    auth_config = auth.AuthConfig.from_env(os.environ)
    region = region_of(config.state_machine_arn)
    return Services(
        config=config,
        auth_config=auth_config,
        jwks=auth.JwksCache(auth_config.jwks_url),
        sfn=boto3.client("stepfunctions", region_name=region, config=_SFN_CONFIG),
    )


def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    audit = admin.Audit(correlation_id=str(uuid.uuid4()), request_id=None, source_ip=None)
    bind_correlation_id(audit.correlation_id)
    try:
        response = generate_snapshot(event, audit)
    except Exception as exc:
        response = admin.error_response(exc, audit.correlation_id)
        audit.reason = str(exc) if response["statusCode"] != 500 else type(exc).__name__
        if response["statusCode"] == 500:
            logger.exception("admin request failed unexpectedly")
    logger.info("admin request", extra=admin.audit_line(audit, response))
    return response


def generate_snapshot(event: dict[str, Any], audit: admin.Audit) -> dict[str, Any]:
    found = services()
    request = admin.parse_http_event(event, found.config.max_body_bytes)
    audit.request_id, audit.source_ip = request.request_id, request.source_ip
    principal = auth.verify(auth.bearer_token(request.headers), found.auth_config, found.jwks)
    if found.jwks.serving_stale_keys:
        logger.warning(admin.STALE_KEYS_WARNING)
    audit.sub = principal.sub
    wanted = admin.parse_body(request.body, found.config)
    audit.leaderboards, audit.bootstrap = wanted.leaderboards, wanted.bootstrap
    arn = found.config.state_machine_arn
    refuse_overlap(wanted.leaderboards, running_executions(found.sfn, arn))
    now = datetime.now(UTC)
    run = admin.run_request(wanted, principal, audit.correlation_id, now)
    name = admin.execution_name(now, wanted.leaderboards)
    try:
        audit.execution_arn = start_execution(found.sfn, arn, run, name)
    except ExecutionNameTaken as taken:
        raise admin.duplicate_of(taken) from None
    return admin.accepted(audit.execution_arn, audit.correlation_id)
