"""What ``leaderboard status`` shows of an execution, on AWS or on this machine (pure).

DescribeExecution plus the history (or a saved local execution) become an ``ExecutionView``: the
states one by one with their durations (the Map's iterations per leaderboard), the failing state
with its error and cause (``common.stepfunctions.failures``), the redrive count and status, the
console link. The operator reads one format whether the run was on AWS or local.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from common.contracts import RunRequest
from common.stepfunctions.executions import parse_input
from common.stepfunctions.failures import FailureReport, StatusChange, describe_failure
from common.stepfunctions.history import (
    END_EVENTS,
    FAILED_STATUSES,
    by_id,
    console_url,
    details,
    instant,
    iteration_of,
    leaderboard_of,
    match_execution_arn,
    oldest_first,
)
from local.store import ExecutionRecord

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
_EXECUTION_ENDS = {
    "ExecutionFailed": "FAILED",
    "ExecutionTimedOut": "TIMED_OUT",
    "ExecutionAborted": "ABORTED",
}
"""An attempt's end: before a redrive, one that the history goes on after."""
_MARKS = {"succeeded": "✓", "failed": "✗", "running": "▸"}
# Codes RedriveExecution answers when the endpoint does not have it (emulators, old endpoints).


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


def state_spans(
    events: Sequence[dict[str, Any]], status: str, stopped_at: datetime | None
) -> list[StateSpan]:
    """The top-level states in the order entered, each Map's iterations as its children.

    States inside one iteration, like states at top level, run one after the other, so a task's
    attempts and failures belong to the state last entered at the same level. States the local
    redrive emulation adds (``Redrive*``) are left out.
    """
    ordered = oldest_first(events)
    events_by_id = by_id(ordered)
    top: list[StateSpan] = []
    current: dict[int | None, StateSpan] = {}
    labels: dict[int, str] = {}
    for event in ordered:
        kind, found = event["type"], details(event)
        index = iteration_of(events_by_id, event)
        name = str(found.get("name") or "")
        if kind.endswith("StateEntered"):
            if name.startswith("Redrive"):
                continue
            slug = leaderboard_of(found.get("input"))
            if index is not None and slug:
                labels.setdefault(index, slug)
            span = StateSpan(
                name=name,
                iteration=index,
                leaderboard=labels.get(index) if index is not None else None,
                started=instant(event["timestamp"]),
            )
            if index is None or not top:
                top.append(span)
            else:
                top[-1].children.append(span)
            current[index] = span
        elif kind.endswith("StateExited"):
            span_or_none = current.get(index)
            if span_or_none is not None and span_or_none.name == name:
                span_or_none.ended = instant(event["timestamp"])
                span_or_none.outcome = "succeeded"
        elif kind in _SCHEDULED and index in current:
            current[index].attempts += 1
        elif kind in _ATTEMPT_FAILURES and index in current:
            current[index].error = found.get("error") or kind
        elif kind in _STATE_ENDS and index in current and current[index].ended is None:
            current[index].outcome = _STATE_ENDS[kind]
            current[index].ended = instant(event["timestamp"])
        elif kind == "MapIterationAborted":
            for span in top[-1].children if top else []:
                if span.iteration == index and span.ended is None:
                    span.outcome, span.ended = "aborted", instant(event["timestamp"])
        elif kind in _EXECUTION_ENDS:
            # A failed state has no exit event; a redrive enters it anew, so the first
            # attempt's spans end here, not with the execution.
            _close_open(top, _EXECUTION_ENDS[kind], instant(event["timestamp"]))
    if status in _OPEN_AT_END:
        _close_open(top, status, stopped_at)
    return top


def _close_open(top: list[StateSpan], status: str, at: datetime | None) -> None:
    for span in [*top, *(child for parent in top for child in parent.children)]:
        if span.ended is None:
            span.outcome = "failed" if span.error else _OPEN_AT_END[status]
            span.ended = at


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
    if status not in FAILED_STATUSES:
        return None
    parsed = match_execution_arn(arn)
    change = StatusChange(
        execution_arn=arn,
        state_machine_arn=arn.replace(":execution:", ":stateMachine:", 1).rsplit(":", 1)[0],
        name=name,
        status=status,
        region=parsed.region if parsed else "unknown",
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
    started = instant(description["startDate"])
    stopped = instant(description["stopDate"]) if description.get("stopDate") else None
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
        console=console_url(arn),
        redrive_hint=f"leaderboard redrive {arn}" if status in FAILED_STATUSES else None,
    )


def local_view(record: ExecutionRecord) -> ExecutionView:
    """The view of one saved local execution (an original run or one of its redrives)."""
    started = instant(record.started_at)
    stopped = instant(record.stopped_at) if record.stopped_at else None
    # A redriven record carries its redrive's outcome; its own history ended as it first did.
    ended = record.history[-1]["type"] if record.history else ""
    own_status = END_EVENTS.get(ended, record.status)
    own_stop = instant(record.history[-1]["timestamp"]) if record.history else stopped
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
        redrive_hint=record.redrive_command if record.status in FAILED_STATUSES else None,
    )


def when(moment: datetime | None) -> str:
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
        f"  started    {when(view.started_at)}, "
        + (f"stopped {when(view.stopped_at)}" if view.stopped_at else "still running")
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
        started = instant(item["startDate"])
        stopped = instant(item["stopDate"]) if item.get("stopDate") else now
        lines.append(
            f"{item['name']:<44} {item['status']:<10} {started:%Y-%m-%d %H:%M:%S}  "
            f"{(stopped - started).total_seconds():>8.1f}  {int(item.get('redriveCount') or 0)}"
        )
    return lines
