"""The run context: derived once by the fetch stage, read by every later stage.

The run's start time is the request's ``run_at`` (Scheduler's scheduled time, the admin endpoint,
the CLI) or else the execution's ``startDate`` from DescribeExecution; the run id and the snapshot
identifier derive from it and from the execution name, so a retry or a redrive of the same
execution derives them again identically. The Step Functions client is built once per container.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from common.config import Settings
from common.contracts import (
    RunContext,
    RunRequest,
    parse_timestamp,
    run_id,
    snapshot_identifier,
)
from common.errors import ConfigurationError, InvalidInput, StepFunctionsUnavailable
from common.storage import S3Uri, parse_s3_uri

_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=20
)
_MISSING_CODES = frozenset({"ExecutionDoesNotExist", "InvalidArn"})
_DENIED_CODES = frozenset({"AccessDeniedException", "UnrecognizedClientException"})


@functools.cache
def sfn_client() -> Any:
    """The container's Step Functions client (created on first use)."""
    return boto3.client("stepfunctions", config=_CLIENT_CONFIG)


def execution_start(execution_id: str) -> datetime:
    """The execution's ``startDate`` (UTC), from DescribeExecution."""
    try:
        started = sfn_client().describe_execution(executionArn=execution_id)["startDate"]
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _MISSING_CODES:
            raise InvalidInput(f"execution_id: no such execution {execution_id[:200]!r}") from None
        if code in _DENIED_CODES:
            raise ConfigurationError(f"DescribeExecution was refused ({code})") from None
        raise StepFunctionsUnavailable(f"DescribeExecution failed ({code})") from None
    except BotoCoreError as exc:
        raise StepFunctionsUnavailable(
            f"Step Functions did not answer ({type(exc).__name__})"
        ) from None
    return started.astimezone(UTC)


CLOCK_SKEW = timedelta(minutes=1)
"""How far ahead of this function's clock a requested ``run_at`` may be: clocks differ by less
than a second where ``run_at`` comes from (Scheduler, the admin function, a CLI). No more: a
snapshot counts the votes fetch sees, but is dated by ``run_at``, so one dated ahead could hide a
scheduled run between its fetch and its date that counted more votes."""


def run_start(request: RunRequest, execution_id: str, now: datetime) -> datetime:
    """The run's start time: the request's ``run_at`` when given, else the execution's start.

    A ``run_at`` ahead of ``now`` is refused: the snapshot is dated by it, and one dated ahead
    would be the newest BixArena shows until that day, every daily run until then history."""
    if request["run_at"] is None:
        return execution_start(execution_id)
    run_at = parse_timestamp(request["run_at"], "run_at")
    if run_at > now + CLOCK_SKEW:
        raise InvalidInput(
            f"run_at: {request['run_at']} is in the future (it is"
            f" {now.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}); a run counts the votes up to a moment"
            " that has passed"
        )
    return run_at


def artifacts_prefix(settings: Settings, run: str) -> S3Uri:
    """``s3://{ARTIFACTS_BUCKET}/{ARTIFACTS_PREFIX}{run_id}/``."""
    prefix = settings.artifacts_prefix
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return parse_s3_uri(f"s3://{settings.require_bucket()}/{prefix}{run}/", "ARTIFACTS_BUCKET")


def derive_run(
    request: RunRequest,
    execution_id: str,
    execution_name: str,
    started_at: datetime,
    settings: Settings,
) -> RunContext:
    """Everything later stages need to know about the run (pure)."""
    rid = run_id(started_at, execution_name)
    return RunContext(
        run_id=rid,
        execution_id=execution_id,
        execution_name=execution_name,
        correlation_id=request["correlation_id"] or execution_name,
        trigger=request["trigger"],
        requested_by=request["requested_by"],
        run_at=started_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        snapshot_identifier=snapshot_identifier(started_at),
        bootstrap=request["bootstrap"],
        seed=request["seed"],
        publish=request["publish"],
        artifacts_prefix=str(artifacts_prefix(settings, rid)),
    )
