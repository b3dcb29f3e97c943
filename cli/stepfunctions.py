"""The operator's Step Functions calls behind ``leaderboard trigger``, ``status`` and ``redrive``.

Starting a manual run reuses the admin endpoint's rules (``common.stepfunctions.executions``:
refuse a run over a leaderboard that a RUNNING execution covers, then StartExecution with the
pipeline's own input contract). Reading an execution is DescribeExecution plus the history, which
``cli.execution_view`` turns into what the operator reads. Redrive checks first what AWS would refuse (a run that did not fail, one stopped more than 14 days
ago, one whose redrive is already running) and says why in one line.

The calls need only what the stack's operator policy grants: StartExecution, ListExecutions,
DescribeExecution, GetExecutionHistory, RedriveExecution (and STS GetCallerIdentity, which needs
no permission).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from cli.execution_view import when
from cli.report import ProgressPrinter
from common.contracts import REFERENCE_LEADERBOARDS, RunRequest, parse_run_request
from common.errors import ConfigurationError, InvalidInput, PipelineError, StepFunctionsUnavailable
from common.stepfunctions.executions import (
    ExecutionNameTaken,
    RunInProgress,
    Selection,
    refuse_overlap,
    running_executions,
    start_execution,
)
from common.stepfunctions.failures import trim
from common.stepfunctions.history import FINAL_STATUSES, console_url, instant, read_history

Echo = Callable[[str], None]

STATE_MACHINE_ARN_ENV = "LEADERBOARD_STATE_MACHINE_ARN"
REDRIVE_WINDOW = timedelta(days=14)
LIST_LIMIT = 10
_POLL_FIRST_S, _POLL_MAX_S = 0.2, 5.0

_UNKNOWN_OPERATION = frozenset({"UnknownOperationException", "InvalidAction", "NotImplemented"})


class ExecutionNotRedrivable(PipelineError):
    """Step Functions will not redrive this execution; the message says why."""


class RedriveUnsupported(PipelineError):
    """The Step Functions endpoint does not implement RedriveExecution (moto, an emulator)."""


class StepFunctionsRefused(PipelineError):
    """Step Functions refused a call for a reason no other error names."""


# --- arguments ----------------------------------------------------------------------------------
def is_execution_arn(text: str | None) -> bool:
    """An ARN means AWS; anything else names a local execution."""
    return text is not None and text.startswith("arn:")


def known_leaderboards(
    selection: Selection, known: Sequence[str] = REFERENCE_LEADERBOARDS
) -> Selection:
    """The selection, when every slug in it is a known leaderboard (as the admin endpoint checks)."""
    if selection == "all":
        return selection
    unknown = [slug for slug in selection if slug not in known]
    if unknown:
        raise InvalidInput(
            f"--leaderboards: unknown leaderboard(s) {', '.join(unknown)}; "
            f"known: {', '.join(known)}"
        )
    return selection


# --- AWS session ----------------------------------------------------------------------------------
def stepfunctions(region: str | None, profile: str | None) -> tuple[Any, Any]:
    """(Step Functions client, boto3 session) from the usual AWS configuration."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ProfileNotFound

    try:
        session = boto3.Session(profile_name=profile, region_name=region)
    except ProfileNotFound:
        raise InvalidInput(f"--profile: no AWS profile named {profile!r}") from None
    if session.get_credentials() is None:
        raise ConfigurationError(
            "no AWS credentials found: use --profile, AWS_PROFILE or the AWS_* variables"
        )
    config = Config(connect_timeout=5, read_timeout=20, retries={"mode": "standard"})
    return session.client("stepfunctions", config=config), session


def caller(session: Any) -> str:
    """Who is starting the run: the caller's ARN from STS, else the login name."""
    try:
        return str(session.client("sts").get_caller_identity()["Arn"])[:200]
    except (BotoCoreError, ClientError, KeyError):
        return (os.environ.get("USER") or os.environ.get("USERNAME") or "unknown")[:200]


def _refused(exc: ClientError | BotoCoreError, call: str, target: str) -> PipelineError:
    """A named error for a failed Step Functions call; unknown executions are bad input."""
    if isinstance(exc, BotoCoreError):
        return StepFunctionsUnavailable(
            f"{call}: Step Functions not reached ({type(exc).__name__})"
        )
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "Unknown"))
    message = trim(" ".join(str(error.get("Message") or "").split()), 300)
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code in ("ExecutionDoesNotExist", "InvalidArn", "StateMachineDoesNotExist"):
        return InvalidInput(f"{target}: {message or code}")
    if code in ("ThrottlingException", "ServiceUnavailable", "InternalFailure") or status >= 500:
        return StepFunctionsUnavailable(f"{call}: Step Functions did not answer ({code})")
    if code in ("AccessDeniedException", "UnrecognizedClientException", "ExpiredTokenException"):
        return ConfigurationError(f"{call} on {target} was refused ({code}): {message}")
    return StepFunctionsRefused(f"{call} on {target}: {code}: {message}")


# --- trigger ---------------------------------------------------------------------------------------
def manual_request(
    leaderboards: Selection,
    bootstrap: int,
    requested_by: str,
    correlation_id: str,
    now: datetime,
    *,
    publish: bool = True,
) -> RunRequest:
    """The execution input of a run started from the command line (``publish`` False: the
    snapshots are written private, for review)."""
    return parse_run_request(
        {
            "leaderboards": leaderboards,
            "bootstrap": bootstrap,
            "trigger": "manual",
            "requested_by": requested_by,
            "correlation_id": correlation_id,
            "run_at": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "publish": publish,
        }
    )


@dataclass(frozen=True)
class Started:
    execution_arn: str
    name: str
    correlation_id: str


def trigger(
    sfn: Any,
    state_machine_arn: str,
    leaderboards: Selection,
    bootstrap: int,
    requested_by: str,
    now: datetime | None = None,
    *,
    publish: bool = True,
) -> Started:
    """Start a manual run unless a RUNNING execution already covers one of its leaderboards."""
    from common.admin import RunAlreadyStarted, duplicate_of, execution_name

    now = (now or datetime.now(UTC)).replace(microsecond=0)
    correlation_id = str(uuid.uuid4())
    request = manual_request(
        leaderboards, bootstrap, requested_by, correlation_id, now, publish=publish
    )
    name = execution_name(now, request["leaderboards"])
    try:
        running = running_executions(sfn, state_machine_arn)
        try:
            refuse_overlap(request["leaderboards"], running)
        except RunInProgress as exc:
            raise RunInProgress(
                f"{exc}; see `leaderboard status {exc.execution.arn}`", exc.execution
            ) from None
        try:
            arn = start_execution(sfn, state_machine_arn, request, name)
        except ExecutionNameTaken as taken:
            raise RunAlreadyStarted(
                f"{duplicate_of(taken)}; see `leaderboard status {taken.execution_arn}`",
                taken.execution_arn,
            ) from None
    except (ClientError, BotoCoreError) as exc:
        raise _refused(exc, "StartExecution", state_machine_arn) from None
    return Started(execution_arn=arn, name=name, correlation_id=correlation_id)


def follow(
    sfn: Any, arn: str, echo: Echo, *, sleep: Callable[[float], None] = time.sleep
) -> dict[str, Any]:
    """Print the execution's states as they happen until it ends; returns its final description."""
    progress = ProgressPrinter()
    seen: set[int] = set()
    interval = _POLL_FIRST_S
    try:
        while True:
            described = describe(sfn, arn)
            events = history(sfn, arn)
            for event in events:
                if int(event["id"]) not in seen:
                    seen.add(int(event["id"]))
                    line = progress(event, events)
                    if line is not None:
                        echo(line)
            if described["status"] in FINAL_STATUSES:
                return described
            sleep(interval)
            interval = min(interval * 1.5, _POLL_MAX_S)
    except KeyboardInterrupt:
        echo(f"stopped following; the execution goes on: leaderboard status {arn}")
        raise


# --- reading executions ----------------------------------------------------------------------------
def describe(sfn: Any, arn: str) -> dict[str, Any]:
    try:
        described: dict[str, Any] = sfn.describe_execution(executionArn=arn)
    except (ClientError, BotoCoreError) as exc:
        raise _refused(exc, "DescribeExecution", arn) from None
    return described


def history(sfn: Any, arn: str) -> list[dict[str, Any]]:
    """Every event of the execution's history, oldest first."""
    try:
        return read_history(sfn, arn)
    except (ClientError, BotoCoreError) as exc:
        raise _refused(exc, "GetExecutionHistory", arn) from None


def latest_executions(
    sfn: Any, state_machine_arn: str, limit: int = LIST_LIMIT
) -> list[dict[str, Any]]:
    """The newest executions of the state machine (ListExecutions answers newest first)."""
    try:
        page = sfn.list_executions(stateMachineArn=state_machine_arn, maxResults=limit)
    except (ClientError, BotoCoreError) as exc:
        raise _refused(exc, "ListExecutions", state_machine_arn) from None
    return list(page["executions"])[:limit]


def all_executions(sfn: Any, state_machine_arn: str) -> list[dict[str, Any]]:
    """Every execution Step Functions keeps for the state machine (90 days), newest first."""
    try:
        pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=state_machine_arn)
        return [item for page in pages for item in page["executions"]]
    except (ClientError, BotoCoreError) as exc:
        raise _refused(exc, "ListExecutions", state_machine_arn) from None


# --- redrive ---------------------------------------------------------------------------------------
def redrive_refusal(description: dict[str, Any], now: datetime) -> str | None:
    """Why Step Functions would refuse to redrive this execution, or None when it would not."""
    status = description["status"]
    if status == "SUCCEEDED":
        return "it SUCCEEDED: only a FAILED, TIMED_OUT or ABORTED execution can be redriven"
    if status == "RUNNING":
        count = int(description.get("redriveCount") or 0)
        return (
            f"redrive {count} of it is already running"
            if count
            else "it is still RUNNING: wait for it to end"
        )
    if description.get("redriveStatus") == "NOT_REDRIVABLE":
        reason = description.get("redriveStatusReason") or "Step Functions says NOT_REDRIVABLE"
        return str(reason)
    stopped = description.get("stopDate")
    if stopped is not None and now - instant(stopped) > REDRIVE_WINDOW:
        return (
            f"it stopped on {instant(stopped):%Y-%m-%d}, more than 14 days ago: "
            "start a new run with `leaderboard trigger`"
        )
    return None


def redrive_error(
    exc: ClientError | BotoCoreError | NotImplementedError, arn: str
) -> PipelineError:
    """RedriveExecution's refusals as named errors with the reason in one line."""
    if isinstance(exc, NotImplementedError):
        return RedriveUnsupported(
            "this Step Functions endpoint does not implement RedriveExecution"
            " (moto or an emulator); redrive on AWS, or locally with `leaderboard redrive NAME`"
        )
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = " ".join(str(error.get("Message") or "").split())
        if code == "ExecutionNotRedrivable":
            return ExecutionNotRedrivable(f"{arn} cannot be redriven: {message or code}")
        if code == "ExecutionLimitExceeded":
            return StepFunctionsUnavailable(f"RedriveExecution: {message or code}")
        if code in _UNKNOWN_OPERATION:
            return RedriveUnsupported(
                f"this Step Functions endpoint does not implement RedriveExecution ({code})"
            )
    return _refused(exc, "RedriveExecution", arn)


def redrive(sfn: Any, arn: str, now: datetime | None = None) -> dict[str, Any]:
    """Redrive a failed execution; returns its description once the redrive is under way."""
    before = describe(sfn, arn)
    refusal = redrive_refusal(before, now or datetime.now(UTC))
    if refusal is not None:
        raise ExecutionNotRedrivable(f"{before['name']} cannot be redriven: {refusal}")
    try:
        sfn.redrive_execution(executionArn=arn, clientToken=str(uuid.uuid4()))
    except (ClientError, BotoCoreError, NotImplementedError) as exc:
        raise redrive_error(exc, arn) from None
    return describe(sfn, arn)


def format_redrive(description: dict[str, Any]) -> list[str]:
    arn = str(description["executionArn"])
    count = int(description.get("redriveCount") or 0)
    lines = [
        f"{description['name']}: redrive {count} started, the execution is {description['status']}",
        f"  follow it  leaderboard status {arn}",
        f"  console    {console_url(arn)}",
    ]
    if description.get("redriveDate"):
        lines.insert(1, f"  redriven   {when(instant(description['redriveDate']))}")
    return lines
