"""Failed executions: the EventBridge status-change event, and what the history says went wrong.

EventBridge delivers a "Step Functions Execution Status Change" event when an execution ends as
FAILED, TIMED_OUT or ABORTED. The event names the execution and its error, but not the state that
failed; the execution history does. ``describe_failure`` reads the history (pure, over the list of
history events in any order) and names the failing state, its error and cause, the Map iteration
and leaderboard it was working on, and the correlation id of the run.
The local run builds the same event itself (``local.eventbridge``), since moto emits none.

The history is followed through ``previousEventId`` links rather than by position: inside an inline
Map the iterations run concurrently and their events interleave, so "the last state entered before
the failure" by position is often another leaderboard's state.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from common.errors import InvalidInput
from common.stepfunctions.history import (
    END_EVENTS,
    FAILED_STATUSES,
    by_id,
    console_url,
    details,
    leaderboard_of,
    loads,
    match_execution_arn,
    oldest_first,
    previous,
    redrive_command,
)

SOURCE = "aws.states"
DETAIL_TYPE = "Step Functions Execution Status Change"
CAUSE_LIMIT = 500
"""Characters of a cause (or of a Lambda errorMessage) kept in a message."""

# History events that carry the error of a state (Fail states get theirs from the execution).
_STATE_FAILURES = frozenset(
    {
        "ActivityFailed",
        "ActivityScheduleFailed",
        "ActivityTimedOut",
        "EvaluationFailed",
        "LambdaFunctionFailed",
        "LambdaFunctionScheduleFailed",
        "LambdaFunctionStartFailed",
        "LambdaFunctionTimedOut",
        "TaskFailed",
        "TaskStartFailed",
        "TaskSubmitFailed",
        "TaskTimedOut",
    }
)
_FAILED_ENDS = frozenset(e for e, status in END_EVENTS.items() if status in FAILED_STATUSES)
_MAX_WALK = 100_000


@dataclass(frozen=True)
class StatusChange:
    """The fields of an Execution Status Change event that a failure message needs."""

    execution_arn: str
    state_machine_arn: str
    name: str
    status: str
    region: str
    started_at: datetime | None
    stopped_at: datetime | None
    input: Any
    error: str | None
    cause: str | None


@dataclass(frozen=True)
class FailurePoint:
    """Where in the history the execution failed."""

    state: str | None
    error: str | None
    cause: str | None
    map_state: str | None = None
    iteration: int | None = None
    state_input: Any = None


@dataclass(frozen=True)
class FailureReport:
    """Everything the failure message says, in plain values."""

    execution_arn: str
    execution_name: str
    state_machine_name: str
    status: str
    region: str
    started_at: datetime | None
    stopped_at: datetime | None
    state: str | None
    map_state: str | None
    iteration: int | None
    leaderboard: str | None
    error: str | None
    cause: str | None
    correlation_id: str | None
    trigger: str | None
    requested_by: str | None
    history_available: bool

    @property
    def console_url(self) -> str:
        return console_url(self.execution_arn)

    @property
    def redrive_command(self) -> str:
        return redrive_command(self.execution_arn)


# --- the event -------------------------------------------------------------------------------------
def is_status_change(event: Any) -> bool:
    return (
        isinstance(event, dict)
        and event.get("source") == SOURCE
        and event.get("detail-type") == DETAIL_TYPE
    )


def _epoch_ms(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise InvalidInput(f"{field}: expected epoch milliseconds")
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def _text(detail: dict[str, Any], key: str, required: bool = False) -> str | None:
    value = detail.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise InvalidInput(f"detail.{key}: expected a string")
    return value


def parse_status_change(event: Any) -> StatusChange:
    """Validate an Execution Status Change event for a failed execution."""
    if not is_status_change(event):
        raise InvalidInput(f"event: expected source {SOURCE!r} and detail-type {DETAIL_TYPE!r}")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise InvalidInput("detail: expected a JSON object")
    status = _text(detail, "status", required=True)
    if status not in FAILED_STATUSES:
        raise InvalidInput(f"detail.status: expected one of {', '.join(FAILED_STATUSES)}")
    arn = match_execution_arn(str(_text(detail, "executionArn", required=True)))
    if arn is None:
        raise InvalidInput("detail.executionArn: not a Step Functions execution ARN")
    raw_input = _text(detail, "input")
    try:
        parsed_input = json.loads(raw_input) if raw_input else None
    except ValueError:
        # An input that is not JSON only costs us the correlation id: keep the alert going.
        parsed_input = None
    return StatusChange(
        execution_arn=arn.arn,
        state_machine_arn=str(_text(detail, "stateMachineArn", required=True)),
        name=_text(detail, "name") or arn.name,
        status=str(status),
        region=arn.region,
        started_at=_epoch_ms(detail.get("startDate"), "detail.startDate"),
        stopped_at=_epoch_ms(detail.get("stopDate"), "detail.stopDate"),
        input=parsed_input,
        error=_text(detail, "error"),
        cause=_text(detail, "cause"),
    )


# --- the history -----------------------------------------------------------------------------------
class _History:
    """The events by id, with the links between a state's entry and its exit."""

    def __init__(self, events: Iterable[dict[str, Any]]) -> None:
        self.events = oldest_first(events)
        self.by_id = by_id(self.events)
        self.entered_of_exit: dict[int, int] = {}
        for event in self.events:
            if event["type"].endswith("StateExited"):
                name = details(event).get("name")
                entered = self.entered_before(event, name)
                if entered is not None:
                    self.entered_of_exit[int(event["id"])] = int(entered["id"])
        self.closed = set(self.entered_of_exit.values())

    def previous(self, event: dict[str, Any]) -> dict[str, Any] | None:
        return previous(self.by_id, event)

    def entered_before(
        self, event: dict[str, Any], name: str | None = None
    ) -> dict[str, Any] | None:
        """The entry of the state an event belongs to: the nearest *StateEntered on its chain."""
        current = self.previous(event) if event["type"].endswith("StateExited") else event
        for _ in range(_MAX_WALK):
            if current is None:
                return None
            if current["type"].endswith("StateEntered") and (
                name is None or details(current).get("name") == name
            ):
                return current
            current = self.previous(current)
        return None

    def iteration_index(self, event: dict[str, Any]) -> Any:
        """The index of the Map iteration a state's event belongs to (None at top level)."""
        entered = self.entered_before(event)
        iteration = self.enclosing_iteration(entered) if entered is not None else None
        return details(iteration).get("index") if iteration is not None else None

    def enclosing_iteration(self, entered: dict[str, Any]) -> dict[str, Any] | None:
        """The MapIterationStarted a state's entry belongs to, skipping finished siblings."""
        current = self.previous(entered)
        for _ in range(_MAX_WALK):
            if current is None or current["type"] == "ExecutionStarted":
                return None
            if current["type"] == "MapIterationStarted":
                return current
            if current["type"].endswith("StateExited"):
                sibling = self.entered_of_exit.get(int(current["id"]))
                current = self.by_id.get(sibling) if sibling is not None else None
                current = self.previous(current) if current is not None else None
                continue
            current = self.previous(current)
        return None


def _point(
    history: _History,
    entered: dict[str, Any] | None,
    error: str | None,
    cause: str | None,
) -> FailurePoint:
    if entered is None:
        return FailurePoint(state=None, error=error, cause=cause)
    entered_details = details(entered)
    iteration = history.enclosing_iteration(entered)
    iteration_details = details(iteration) if iteration else {}
    index = iteration_details.get("index")
    return FailurePoint(
        state=entered_details.get("name"),
        error=error,
        cause=cause,
        map_state=iteration_details.get("name"),
        iteration=int(index) if isinstance(index, int) else None,
        state_input=loads(entered_details.get("input")),
    )


def failure_point(events: Iterable[dict[str, Any]]) -> FailurePoint:
    """The state that failed, or that was running when the execution timed out or was aborted.

    A FAILED execution names the last state failure (TaskFailed, LambdaFunctionFailed, ...) or
    Fail state whose error is the execution's error (earlier failures with other errors were
    retried). A timed-out or aborted execution, or a failure no state event explains (a Map whose
    ItemsPath is missing), names the task running longest (entered and never exited), else the
    last state entered and never exited.
    """
    history = _History(events)
    # A redriven execution's history holds its earlier attempt too: what failed then was
    # redriven past, so only the events since the last redrive can name this failure.
    redriven = [int(e["id"]) for e in history.events if e["type"] == "ExecutionRedriven"]
    since = max(redriven, default=0)
    recent = [e for e in history.events if int(e["id"]) > since]
    end = next((e for e in reversed(recent) if e["type"] in _FAILED_ENDS), None)
    end_details = details(end) if end else {}
    end_error, end_cause = end_details.get("error"), end_details.get("cause")

    def error_of(event: dict[str, Any]) -> tuple[str | None, str | None]:
        if event["type"] == "FailStateEntered":
            return end_error, end_cause
        found = details(event)
        return found.get("error"), found.get("cause")

    if end is None or end["type"] == "ExecutionFailed":
        candidates = [
            e
            for e in recent
            if (e["type"] in _STATE_FAILURES or e["type"] == "FailStateEntered")
            and (end_error is None or error_of(e)[0] == end_error)
        ]
        # The other iterations of a failed Map may still be failing with the same error (retrying
        # a database that is down) when one fails the Map: name the one that did.
        failed = {details(e).get("index") for e in recent if e["type"] == "MapIterationFailed"}
        candidates = [e for e in candidates if history.iteration_index(e) in failed] or candidates
        if candidates:
            error, cause = error_of(candidates[-1])
            return _point(history, history.entered_before(candidates[-1]), error, cause)
    open_states = [
        e
        for e in recent
        if e["type"].endswith("StateEntered") and int(e["id"]) not in history.closed
    ]
    # Several Map iterations may be in flight: the task running longest is what a timeout
    # waited on, not whichever started last.
    tasks = [e for e in open_states if e["type"] == "TaskStateEntered"]
    stuck = tasks[0] if tasks else open_states[-1] if open_states else None
    return _point(history, stuck, end_error, end_cause)


def summarize_cause(cause: str | None, limit: int = CAUSE_LIMIT) -> str | None:
    """A cause fit for a message: Lambda's ``{errorType, errorMessage, stackTrace}`` JSON becomes
    ``errorType: errorMessage`` (no stack trace); anything else is trimmed."""
    if not cause:
        return None
    parsed = loads(cause)
    if isinstance(parsed, dict) and ("errorMessage" in parsed or "errorType" in parsed):
        kind = str(parsed.get("errorType") or "").strip()
        message = str(parsed.get("errorMessage") or "").strip()
        cause = f"{kind}: {message}" if kind and message else kind or message
    return trim(" ".join(cause.split()), limit)


def trim(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _correlation_id(change: StatusChange, events: list[dict[str, Any]]) -> str | None:
    """From the execution input; else from the run context fetch put in its output."""
    if isinstance(change.input, dict) and isinstance(change.input.get("correlation_id"), str):
        return str(change.input["correlation_id"])
    for event in oldest_first(events):
        if event["type"].endswith("StateExited"):
            output = loads(details(event).get("output"))
            run = output.get("run") if isinstance(output, dict) else None
            if isinstance(run, dict) and isinstance(run.get("correlation_id"), str):
                return str(run["correlation_id"])
    return None


def describe_failure(change: StatusChange, events: list[dict[str, Any]] | None) -> FailureReport:
    """The failure report of an execution; ``events`` is None when the history could not be read."""
    point = failure_point(events) if events else FailurePoint(state=None, error=None, cause=None)
    request = change.input if isinstance(change.input, dict) else {}
    trigger = request.get("trigger")
    requested_by = request.get("requested_by")
    return FailureReport(
        execution_arn=change.execution_arn,
        execution_name=change.name,
        state_machine_name=change.state_machine_arn.rsplit(":", 1)[-1],
        status=change.status,
        region=change.region,
        started_at=change.started_at,
        stopped_at=change.stopped_at,
        state=point.state,
        map_state=point.map_state,
        iteration=point.iteration,
        leaderboard=leaderboard_of(point.state_input),
        error=point.error or change.error,
        cause=summarize_cause(point.cause or change.cause),
        correlation_id=_correlation_id(change, events or []),
        trigger=trigger if isinstance(trigger, str) else None,
        requested_by=requested_by if isinstance(requested_by, str) else None,
        history_available=events is not None,
    )
