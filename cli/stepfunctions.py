"""The operator's Step Functions tools behind ``leaderboard trigger``, ``status`` and ``redrive``.

Starting a manual run reuses the admin endpoint's rules (``common.stepfunctions.executions``: refuse a run over a
leaderboard that a RUNNING execution covers, then StartExecution with the pipeline's own input
contract). Reading an execution is DescribeExecution plus GetExecutionHistory, turned by pure
functions into an ``ExecutionView``: the states one by one with their durations (the Map's
iterations per leaderboard), the failing state with its error and cause (``common.stepfunctions.failures``),
the redrive count and status, the console link. Local executions (``.local/executions``) become
the same view, so the operator reads one format whether the run was on AWS or on this machine.
Redrive checks first what AWS would refuse (a run that did not fail, one stopped more than 14 days
ago, one whose redrive is already running) and says why in one line.

The calls need only what the stack's operator policy grants: StartExecution, ListExecutions,
DescribeExecution, GetExecutionHistory, RedriveExecution (and STS GetCallerIdentity, which needs
no permission).
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from cli.report import ProgressPrinter
from common.contracts import REFERENCE_LEADERBOARDS, RunRequest, parse_run_request
from common.errors import ConfigurationError, InvalidInput, PipelineError, StepFunctionsUnavailable
from common.stepfunctions.executions import (
    RunInProgress,
    Selection,
    parse_input,
    refuse_overlap,
    running_executions,
    start_execution,
)
from common.stepfunctions.failures import (
    FailureReport,
    StatusChange,
    console_url,
    describe_failure,
    trim,
)
from local.redrive import iteration_of

if TYPE_CHECKING:
    from local.pipeline import ExecutionRecord

Echo = Callable[[str], None]

STATE_MACHINE_ARN_ENV = "LEADERBOARD_STATE_MACHINE_ARN"
REDRIVE_WINDOW = timedelta(days=14)
FINAL_STATUSES = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
REDRIVABLE_STATUSES = ("FAILED", "TIMED_OUT", "ABORTED")
LIST_LIMIT = 10
_POLL_FIRST_S, _POLL_MAX_S = 0.2, 5.0

_STATE_MACHINE_RE = re.compile(r"^arn:aws[a-z-]*:states:([a-z0-9-]+):(\d{12}):stateMachine:[^:]+$")
_EXECUTION_RE = re.compile(r"^arn:aws[a-z-]*:states:([a-z0-9-]+):(\d{12}):execution:[^:]+:[^:]+$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_SCHEDULED = frozenset({"TaskScheduled", "LambdaFunctionScheduled", "ActivityScheduled"})
_ATTEMPT_FAILURES = frozenset(
    {
        "TaskFailed",
        "TaskTimedOut",
        "TaskStartFailed",
        "TaskSubmitFailed",
        "LambdaFunctionFailed",
        "LambdaFunctionTimedOut",
        "LambdaFunctionStartFailed",
        "LambdaFunctionScheduleFailed",
        "ActivityFailed",
        "ActivityTimedOut",
        "ActivityScheduleFailed",
    }
)
_STATE_ENDS = {
    "MapStateFailed": "failed",
    "ParallelStateFailed": "failed",
    "MapStateAborted": "aborted",
    "ParallelStateAborted": "aborted",
}
_OPEN_AT_END = {"FAILED": "stopped", "TIMED_OUT": "timed out", "ABORTED": "aborted"}
_MARKS = {"succeeded": "✓", "failed": "✗", "running": "▸"}
# Codes RedriveExecution answers when the endpoint does not have it (emulators, old endpoints).
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


def parse_state_machine_arn(text: str, field: str = "--state-machine-arn") -> str:
    if not _STATE_MACHINE_RE.match(text):
        raise InvalidInput(
            f"{field}: {text[:100]!r} is not a state machine ARN "
            "(arn:aws:states:REGION:ACCOUNT:stateMachine:NAME)"
        )
    return text


def parse_execution_arn(text: str, field: str = "EXECUTION") -> str:
    if not _EXECUTION_RE.match(text):
        raise InvalidInput(
            f"{field}: {text[:100]!r} is not an execution ARN "
            "(arn:aws:states:REGION:ACCOUNT:execution:STATE_MACHINE:NAME)"
        )
    return text


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN of execution ``name`` of a state machine (the same region, account and name)."""
    if not _NAME_RE.match(name):
        raise InvalidInput(f"EXECUTION: {name[:100]!r} is not an execution name or ARN")
    return parse_state_machine_arn(state_machine_arn).replace(
        ":stateMachine:", ":execution:", 1
    ) + (f":{name}")


def region_of(arn: str) -> str:
    return arn.split(":")[3]


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
    leaderboards: Selection, bootstrap: int, requested_by: str, correlation_id: str, now: datetime
) -> RunRequest:
    """The execution input of a run started from the command line."""
    return parse_run_request(
        {
            "leaderboards": leaderboards,
            "bootstrap": bootstrap,
            "trigger": "manual",
            "requested_by": requested_by,
            "correlation_id": correlation_id,
            "run_at": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
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
) -> Started:
    """Start a manual run unless a RUNNING execution already covers one of its leaderboards."""
    from common.admin import execution_name

    now = (now or datetime.now(UTC)).replace(microsecond=0)
    correlation_id = str(uuid.uuid4())
    request = manual_request(leaderboards, bootstrap, requested_by, correlation_id, now)
    name = execution_name(now, uuid.uuid4().hex[:8])
    try:
        running = running_executions(sfn, state_machine_arn)
        try:
            refuse_overlap(request["leaderboards"], running)
        except RunInProgress as exc:
            raise RunInProgress(
                f"{exc}; see `leaderboard status {exc.execution.arn}`", exc.execution
            ) from None
        arn = start_execution(sfn, state_machine_arn, request, name)
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
    events: list[dict[str, Any]] = []
    try:
        for page in sfn.get_paginator("get_execution_history").paginate(
            executionArn=arn, includeExecutionData=True
        ):
            events.extend(page["events"])
    except (ClientError, BotoCoreError) as exc:
        raise _refused(exc, "GetExecutionHistory", arn) from None
    return sorted(events, key=lambda e: int(e["id"]))


def latest_executions(
    sfn: Any, state_machine_arn: str, limit: int = LIST_LIMIT
) -> list[dict[str, Any]]:
    """The newest executions of the state machine (ListExecutions answers newest first)."""
    try:
        page = sfn.list_executions(stateMachineArn=state_machine_arn, maxResults=limit)
    except (ClientError, BotoCoreError) as exc:
        raise _refused(exc, "ListExecutions", state_machine_arn) from None
    return list(page["executions"])[:limit]


# --- the view (pure) -------------------------------------------------------------------------------
@dataclass
class StateSpan:
    """One state entered once: at top level, or in one Map iteration."""

    name: str
    iteration: int | None
    leaderboard: str | None
    started: datetime
    ended: datetime | None = None
    outcome: str = "running"
    attempts: int = 0
    error: str | None = None
    children: list[StateSpan] = field(default_factory=list)

    def seconds(self, until: datetime) -> float:
        return ((self.ended or until) - self.started).total_seconds()


@dataclass(frozen=True)
class ExecutionView:
    """What ``leaderboard status`` shows of one execution, AWS or local."""

    name: str
    arn: str
    status: str
    started_at: datetime
    stopped_at: datetime | None
    request: RunRequest | None
    states: list[StateSpan]
    failure: FailureReport | None
    redrive_count: int
    redrive_status: str | None
    redrive_reason: str | None
    console: str | None
    redrive_hint: str | None


def _details(event: dict[str, Any]) -> dict[str, Any]:
    return next(
        (v for k, v in event.items() if k.endswith("EventDetails") and isinstance(v, dict)), {}
    )


def _instant(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _slug(raw_input: Any) -> str | None:
    try:
        state_input = json.loads(raw_input) if isinstance(raw_input, str) else None
    except ValueError:
        return None
    board = state_input.get("leaderboard") if isinstance(state_input, dict) else None
    if isinstance(board, dict) and isinstance(board.get("slug"), str):
        return str(board["slug"])
    return board if isinstance(board, str) else None


def state_spans(
    events: Sequence[dict[str, Any]], status: str, stopped_at: datetime | None
) -> list[StateSpan]:
    """The top-level states in the order entered, each Map's iterations as its children.

    States inside one iteration, like states at top level, run one after the other, so a task's
    attempts and failures belong to the state last entered at the same level. States the local
    redrive emulation adds (``Redrive*``) are left out.
    """
    ordered = sorted(events, key=lambda e: int(e["id"]))
    by_id = {int(e["id"]): e for e in ordered}
    top: list[StateSpan] = []
    current: dict[int | None, StateSpan] = {}
    labels: dict[int, str] = {}
    for event in ordered:
        kind, details = event["type"], _details(event)
        index = iteration_of(by_id, event)
        name = str(details.get("name") or "")
        if kind.endswith("StateEntered"):
            if name.startswith("Redrive"):
                continue
            slug = _slug(details.get("input"))
            if index is not None and slug:
                labels.setdefault(index, slug)
            span = StateSpan(
                name=name,
                iteration=index,
                leaderboard=labels.get(index) if index is not None else None,
                started=_instant(event["timestamp"]),
            )
            if index is None or not top:
                top.append(span)
            else:
                top[-1].children.append(span)
            current[index] = span
        elif kind.endswith("StateExited"):
            span_or_none = current.get(index)
            if span_or_none is not None and span_or_none.name == name:
                span_or_none.ended = _instant(event["timestamp"])
                span_or_none.outcome = "succeeded"
        elif kind in _SCHEDULED and index in current:
            current[index].attempts += 1
        elif kind in _ATTEMPT_FAILURES and index in current:
            current[index].error = details.get("error") or kind
        elif kind in _STATE_ENDS and index in current and current[index].ended is None:
            current[index].outcome = _STATE_ENDS[kind]
            current[index].ended = _instant(event["timestamp"])
        elif kind == "MapIterationAborted":
            for span in top[-1].children if top else []:
                if span.iteration == index and span.ended is None:
                    span.outcome, span.ended = "aborted", _instant(event["timestamp"])
    for span in [*top, *(child for parent in top for child in parent.children)]:
        if span.ended is None and status in _OPEN_AT_END:
            span.outcome = "failed" if span.error else _OPEN_AT_END[status]
            span.ended = stopped_at
    return top


def _request(raw_input: Any) -> RunRequest | None:
    return parse_input(raw_input if isinstance(raw_input, str) else json.dumps(raw_input))


def _failure(
    arn: str,
    name: str,
    status: str,
    started_at: datetime,
    stopped_at: datetime | None,
    raw_input: Any,
    error: str | None,
    cause: str | None,
    events: list[dict[str, Any]],
) -> FailureReport | None:
    if status not in REDRIVABLE_STATUSES:
        return None
    match = _EXECUTION_RE.match(arn)
    change = StatusChange(
        execution_arn=arn,
        state_machine_arn=arn.replace(":execution:", ":stateMachine:", 1).rsplit(":", 1)[0],
        name=name,
        status=status,
        region=match.group(1) if match else "unknown",
        started_at=started_at,
        stopped_at=stopped_at,
        input=json.loads(raw_input) if isinstance(raw_input, str) and raw_input else raw_input,
        error=error,
        cause=cause,
    )
    return describe_failure(change, events)


def aws_view(description: dict[str, Any], events: list[dict[str, Any]]) -> ExecutionView:
    """The view of an AWS execution from DescribeExecution and its history."""
    arn = str(description["executionArn"])
    status = str(description["status"])
    started = _instant(description["startDate"])
    stopped = _instant(description["stopDate"]) if description.get("stopDate") else None
    return ExecutionView(
        name=str(description["name"]),
        arn=arn,
        status=status,
        started_at=started,
        stopped_at=stopped,
        request=_request(description.get("input")),
        states=state_spans(events, status, stopped),
        failure=_failure(
            arn,
            str(description["name"]),
            status,
            started,
            stopped,
            description.get("input"),
            description.get("error"),
            description.get("cause"),
            events,
        ),
        redrive_count=int(description.get("redriveCount") or 0),
        redrive_status=description.get("redriveStatus"),
        redrive_reason=description.get("redriveStatusReason"),
        console=console_url(region_of(arn), arn),
        redrive_hint=f"leaderboard redrive {arn}" if status in REDRIVABLE_STATUSES else None,
    )


def local_view(record: ExecutionRecord) -> ExecutionView:
    """The view of one saved local execution (an original run or one of its redrives)."""
    started = _instant(record.started_at)
    stopped = _instant(record.stopped_at) if record.stopped_at else None
    # A redriven record carries its redrive's outcome; its own history ended as it first did.
    ended = record.history[-1]["type"] if record.history else ""
    own_status = {
        "ExecutionSucceeded": "SUCCEEDED",
        "ExecutionFailed": "FAILED",
        "ExecutionTimedOut": "TIMED_OUT",
        "ExecutionAborted": "ABORTED",
    }.get(ended, record.status)
    own_stop = _instant(record.history[-1]["timestamp"]) if record.history else stopped
    original = record.redrive_of or record.name
    return ExecutionView(
        name=record.name,
        arn=record.execution_arn,
        status=record.status,
        started_at=started,
        stopped_at=stopped,
        request=_request(record.input) if record.redrive_of is None else None,
        states=state_spans(record.history, own_status, own_stop),
        # A redriven record's failure is told by its last redrive, which is shown after it.
        failure=None
        if record.redrives
        else _failure(
            record.execution_arn,
            record.name,
            own_status,
            started,
            own_stop,
            record.input,
            record.error,
            record.cause,
            record.history,
        ),
        redrive_count=len(record.redrives),
        redrive_status=None,
        redrive_reason=None,
        console=None,
        redrive_hint=f"leaderboard redrive {original}"
        if record.status in REDRIVABLE_STATUSES
        else None,
    )


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC" if moment else "-"


def _span_line(span: StateSpan, indent: str, until: datetime) -> str:
    label = f"{span.name} [{span.leaderboard}]" if span.leaderboard else span.name
    mark = _MARKS.get(span.outcome, "-")
    notes = []
    if span.outcome not in ("succeeded", "failed"):
        notes.append(span.outcome)
    if span.error and span.outcome == "failed":
        notes.append(span.error)
    if span.attempts > 1:
        notes.append(f"{span.attempts} attempts")
    suffix = f"  {', '.join(notes)}" if notes else ""
    return f"{indent}{mark} {label:<{48 - len(indent)}} {span.seconds(until):>8.2f} s{suffix}"


def format_states(states: Sequence[StateSpan], until: datetime, indent: str = "    ") -> list[str]:
    lines: list[str] = []
    for span in states:
        lines.append(_span_line(span, indent, until))
        for child in sorted(span.children, key=lambda c: (c.iteration or 0, c.started)):
            lines.append(_span_line(child, indent + "    ", until))
    return lines


def format_view(view: ExecutionView, now: datetime | None = None) -> list[str]:
    """The execution as the operator reads it: one fact per line."""
    now = now or datetime.now(UTC)
    until = view.stopped_at or now
    took = (until - view.started_at).total_seconds()
    lines = [
        f"{view.name}: {view.status}",
        f"  execution  {view.arn}",
        f"  started    {_when(view.started_at)}, "
        + (f"stopped {_when(view.stopped_at)}" if view.stopped_at else "still running")
        + f" ({took:.1f} s)",
    ]
    if view.request is not None:
        request = view.request
        boards = request["leaderboards"]
        lines.append(
            f"  request    leaderboards={boards if isinstance(boards, str) else ','.join(boards)}"
            f" bootstrap={request['bootstrap']} trigger={request['trigger']}"
            f" requested_by={request['requested_by'] or '-'}"
        )
        if request["correlation_id"]:
            lines.append(f"  correlation id {request['correlation_id']}")
    if view.states:
        lines.append("  states")
        lines.extend(format_states(view.states, until))
    failure = view.failure
    if failure is not None:
        where = failure.state or "(no state)"
        if failure.leaderboard:
            where += f" [{failure.leaderboard}]"
        if failure.map_state is not None:
            where += f" in {failure.map_state} iteration {failure.iteration}"
        error = failure.error or "unknown error"
        # A Lambda error's cause already starts with its errorType.
        cause = (failure.cause or "").removeprefix(f"{error}: ")
        lines.append(f"  failed at  {where}: {error}" + (f": {cause}" if cause else ""))
    if view.redrive_count or view.redrive_status:
        status = f", {view.redrive_status}" if view.redrive_status else ""
        reason = f" ({view.redrive_reason})" if view.redrive_reason else ""
        lines.append(f"  redrives   {view.redrive_count}{status}{reason}")
    if view.redrive_hint:
        lines.append(f"  redrive    {view.redrive_hint}")
    if view.console:
        lines.append(f"  console    {view.console}")
    return lines


def format_executions(items: Sequence[dict[str, Any]], now: datetime | None = None) -> list[str]:
    """ListExecutions items as a table, newest first."""
    if not items:
        return ["no executions yet"]
    now = now or datetime.now(UTC)
    lines = [f"{'execution':<44} {'status':<10} {'started (UTC)':<20} {'seconds':>8}  redrives"]
    for item in items:
        started = _instant(item["startDate"])
        stopped = _instant(item["stopDate"]) if item.get("stopDate") else now
        lines.append(
            f"{item['name']:<44} {item['status']:<10} {started:%Y-%m-%d %H:%M:%S}  "
            f"{(stopped - started).total_seconds():>8.1f}  {int(item.get('redriveCount') or 0)}"
        )
    return lines


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
    if stopped is not None and now - _instant(stopped) > REDRIVE_WINDOW:
        return (
            f"it stopped on {_instant(stopped):%Y-%m-%d}, more than 14 days ago: "
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
        f"  console    {console_url(region_of(arn), arn)}",
    ]
    if description.get("redriveDate"):
        lines.insert(1, f"  redriven   {_when(_instant(description['redriveDate']))}")
    return lines
