"""Starting pipeline executions and seeing which ones are running (Step Functions).

Shared by the admin endpoint and the operator CLI. The Step Functions calls are thin and map
failures to named errors: throttling, execution limits and unreachable endpoints are
StepFunctionsUnavailable (transient); a missing state machine or a denied call is a
ConfigurationError. Overlap between runs is decided on parsed execution inputs, by pure functions:
two runs overlap when they share a leaderboard, and "all" (or an input that cannot be read, since
nobody knows what it touches) overlaps everything.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from common.contracts import RunRequest, parse_run_request
from common.errors import (
    ConfigurationError,
    InvalidInput,
    PipelineError,
    StepFunctionsUnavailable,
)
from common.stepfunctions.history import execution_arn

Selection = list[str] | Literal["all"]

_TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "KmsThrottlingException",
        "ExecutionLimitExceeded",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
_CONFIGURATION_CODES = frozenset(
    {
        "StateMachineDoesNotExist",
        "StateMachineDeleting",
        "InvalidArn",
        "AccessDeniedException",
        "KmsAccessDeniedException",
        "KmsInvalidStateException",
        "ResourceNotFound",
    }
)


class RunInProgress(PipelineError):
    """A running execution already covers some of the requested leaderboards."""

    def __init__(self, message: str, execution: RunningExecution) -> None:
        super().__init__(message)
        self.execution = execution


class ExecutionNameTaken(PipelineError):
    """StartExecution refused the name: an execution of that name exists (or existed)."""

    def __init__(self, message: str, execution_arn: str) -> None:
        super().__init__(message)
        self.execution_arn = execution_arn


@dataclass(frozen=True)
class RunningExecution:
    """A RUNNING execution of the state machine and what it was asked to do."""

    arn: str
    name: str
    started_at: datetime
    request: RunRequest | None
    """The parsed input, or None when the input does not follow the contract."""

    @property
    def leaderboards(self) -> Selection:
        return "all" if self.request is None else self.request["leaderboards"]


def start_execution(sfn: Any, state_machine_arn: str, request: RunRequest, name: str) -> str:
    """Start one execution with ``request`` as its input; return the execution ARN.

    Names are unique per state machine (for 90 days), and Step Functions checks it atomically:
    a name already taken raises ExecutionNameTaken with that execution's ARN.
    """
    try:
        response = sfn.start_execution(
            stateMachineArn=state_machine_arn, name=name, input=json.dumps(request)
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
            raise ExecutionNameTaken(
                f"execution {name} exists already", execution_arn(state_machine_arn, name)
            ) from None
        raise _named(exc, "StartExecution", state_machine_arn) from None
    except BotoCoreError as exc:
        raise _named(exc, "StartExecution", state_machine_arn) from None
    return str(response["executionArn"])


def running_executions(sfn: Any, state_machine_arn: str) -> list[RunningExecution]:
    """Every RUNNING execution of the state machine, newest first, with its parsed input."""
    try:
        pages = sfn.get_paginator("list_executions").paginate(
            stateMachineArn=state_machine_arn, statusFilter="RUNNING"
        )
        arns = [item["executionArn"] for page in pages for item in page["executions"]]
        described = [sfn.describe_execution(executionArn=arn) for arn in arns]
    except (ClientError, BotoCoreError) as exc:
        raise _named(exc, "ListExecutions/DescribeExecution", state_machine_arn) from None
    # An execution listed as RUNNING may have finished before DescribeExecution answered.
    return [_running(d) for d in described if d.get("status") == "RUNNING"]


def _running(description: dict[str, Any]) -> RunningExecution:
    return RunningExecution(
        arn=description["executionArn"],
        name=description["name"],
        started_at=description["startDate"].astimezone(UTC),
        request=parse_input(description.get("input")),
    )


def parse_input(raw: str | None) -> RunRequest | None:
    """An execution's input as a RunRequest, or None when it does not follow the contract."""
    try:
        return parse_run_request(json.loads(raw or "{}"))
    except (ValueError, InvalidInput):
        return None


def overlaps(a: Selection, b: Selection) -> bool:
    return a == "all" or b == "all" or not set(a).isdisjoint(b)


def overlapping(
    leaderboards: Selection, running: Sequence[RunningExecution]
) -> list[RunningExecution]:
    """The running executions that touch any of ``leaderboards``."""
    return [execution for execution in running if overlaps(leaderboards, execution.leaderboards)]


def refuse_overlap(leaderboards: Selection, running: Sequence[RunningExecution]) -> None:
    """Raise RunInProgress naming the running execution that covers ``leaderboards``, if any."""
    clashes = overlapping(leaderboards, running)
    if not clashes:
        return
    first = clashes[0]
    raise RunInProgress(
        f"execution {first.name} (started {first.started_at:%Y-%m-%dT%H:%M:%SZ}) "
        f"is still running for {_shared(leaderboards, first.leaderboards)}",
        first,
    )


def _shared(requested: Selection, covered: Selection) -> str:
    if isinstance(requested, list) and isinstance(covered, list):
        return ", ".join(sorted(set(requested) & set(covered)))
    if isinstance(requested, list):
        return ", ".join(requested)
    if isinstance(covered, list):
        return ", ".join(covered)
    return "all leaderboards"


def _named(exc: ClientError | BotoCoreError, call: str, state_machine_arn: str) -> Exception:
    if isinstance(exc, BotoCoreError):
        return StepFunctionsUnavailable(
            f"Step Functions could not be reached ({type(exc).__name__})"
        )
    code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code in _TRANSIENT_CODES or status >= 500:
        return StepFunctionsUnavailable(f"Step Functions did not accept {call} ({code})")
    if code in _CONFIGURATION_CODES:
        return ConfigurationError(f"{call} on {state_machine_arn} was refused ({code})")
    return exc
