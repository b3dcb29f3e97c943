"""Step Functions executions as data: history events, Map iterations, statuses and ARNs.

The one home for reading what Step Functions says about an execution, shared by the failure alert
(``failures``), the operator's ``leaderboard status``, the local run's progress and the local
redrive emulation. History events are dicts as boto3 returns them: ``id``, ``previousEventId``,
``type``, ``timestamp`` and one ``<kind>EventDetails`` object. Everything here is pure except
``read_history``, the one AWS call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from common.errors import InvalidInput

Event = dict[str, Any]

FINAL_STATUSES: tuple[str, ...] = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
FAILED_STATUSES: tuple[str, ...] = ("FAILED", "TIMED_OUT", "ABORTED")
"""The statuses a failure alert is sent for, and the ones a redrive can resume."""
END_EVENTS: Mapping[str, str] = {
    "ExecutionSucceeded": "SUCCEEDED",
    "ExecutionFailed": "FAILED",
    "ExecutionTimedOut": "TIMED_OUT",
    "ExecutionAborted": "ABORTED",
}
"""The history event that ends an execution, and the status it ends with."""

_MAX_WALK = 100_000
_EXECUTION_ARN_RE = re.compile(
    r"^arn:(aws[a-z-]*):states:([a-z0-9-]+):(\d{12}):execution:([^:]+):([^:]+)$"
)
_STATE_MACHINE_ARN_RE = re.compile(
    r"^arn:(aws[a-z-]*):states:([a-z0-9-]+):(\d{12}):stateMachine:([^:]+)$"
)
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


# --- ARNs ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExecutionArn:
    """The parts of ``arn:PARTITION:states:REGION:ACCOUNT:execution:STATE_MACHINE:NAME``."""

    arn: str
    partition: str
    region: str
    account: str
    state_machine: str
    name: str

    @property
    def state_machine_arn(self) -> str:
        return (
            f"arn:{self.partition}:states:{self.region}:{self.account}"
            f":stateMachine:{self.state_machine}"
        )


def match_execution_arn(text: str) -> ExecutionArn | None:
    """The parts of an execution ARN, or None when ``text`` is not one."""
    found = _EXECUTION_ARN_RE.fullmatch(text)
    if found is None:
        return None
    return ExecutionArn(text, *found.groups())


def parse_execution_arn(text: str, field: str = "EXECUTION") -> ExecutionArn:
    parsed = match_execution_arn(text)
    if parsed is None:
        raise InvalidInput(
            f"{field}: {text[:100]!r} is not an execution ARN "
            "(arn:aws:states:REGION:ACCOUNT:execution:STATE_MACHINE:NAME)"
        )
    return parsed


def parse_state_machine_arn(text: str, field: str = "--state-machine-arn") -> str:
    if not _STATE_MACHINE_ARN_RE.fullmatch(text):
        raise InvalidInput(
            f"{field}: {text[:100]!r} is not a state machine ARN "
            "(arn:aws:states:REGION:ACCOUNT:stateMachine:NAME)"
        )
    return text


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN of execution ``name`` of a state machine (the same region, account and name)."""
    if not _NAME_RE.fullmatch(name):
        raise InvalidInput(f"EXECUTION: {name[:100]!r} is not an execution name or ARN")
    machine = parse_state_machine_arn(state_machine_arn)
    return machine.replace(":stateMachine:", ":execution:", 1) + f":{name}"


def region_of(arn: str) -> str | None:
    """The region of any ARN (``arn:partition:service:REGION:...``), None when it has none."""
    parts = arn.split(":")
    return parts[3] or None if len(parts) > 4 and parts[0] == "arn" else None


def console_url(execution_arn: str) -> str:
    """Where the execution is shown (and redriven) in the Step Functions console."""
    region = region_of(execution_arn) or "us-east-1"
    return (
        f"https://{region}.console.aws.amazon.com/states/home?region={region}"
        f"#/v2/executions/details/{execution_arn}"
    )


def redrive_command(execution_arn: str) -> str:
    """The AWS CLI command that redrives an execution."""
    return f"aws stepfunctions redrive-execution --execution-arn {execution_arn}"


# --- events -------------------------------------------------------------------------------------
def details(event: Event) -> dict[str, Any]:
    """The event's ``<kind>EventDetails`` object (empty when it has none)."""
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            return value
    return {}


def loads(text: Any) -> Any:
    """A JSON field of an event (input, output), or None when absent or not JSON."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def instant(value: Any) -> datetime:
    """A timestamp as boto3 returns it (datetime) or as saved (ISO text), in UTC."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def timestamp(event: Event) -> datetime:
    return instant(event["timestamp"])


def by_id(events: Iterable[Event]) -> dict[int, Event]:
    return {int(e["id"]): e for e in events}


def oldest_first(events: Iterable[Event]) -> list[Event]:
    return sorted(events, key=lambda e: int(e["id"]))


def previous(events_by_id: Mapping[int, Event], event: Event) -> Event | None:
    return events_by_id.get(int(event.get("previousEventId") or 0))


def iteration_of(events_by_id: Mapping[int, Event], event: Event) -> int | None:
    """Index of the Map iteration an event belongs to (None at top level)."""
    if event["type"].startswith(("MapState", "Execution")):
        return None
    current: Event | None = event
    for _ in range(_MAX_WALK):
        if current is None:
            return None
        if current["type"].startswith("MapIteration"):
            return int(details(current).get("index", 0))
        if current["type"].startswith(("MapState", "Execution")):
            return None
        current = previous(events_by_id, current)
    return None


def leaderboard_of(state_input: Any) -> str | None:
    """The leaderboard a Rank or Publish state works on (``{leaderboard: {slug, ...}, ...}``);
    ``state_input`` may be the parsed input or its JSON text."""
    if isinstance(state_input, str):
        state_input = loads(state_input)
    if not isinstance(state_input, dict):
        return None
    board = state_input.get("leaderboard")
    if isinstance(board, dict) and isinstance(board.get("slug"), str):
        return str(board["slug"])
    return board if isinstance(board, str) else None


def end_status(events: Iterable[Event]) -> str | None:
    """The status the history's end event gives (None while the execution runs)."""
    for event in events:
        if event["type"] in END_EVENTS:
            return END_EVENTS[event["type"]]
    return None


def until_end(history: list[Event]) -> list[Event]:
    """The history up to and including its end event (leftover events of a failed Map's other
    iterations may follow it in moto)."""
    for index, event in enumerate(history):
        if event["type"] in END_EVENTS:
            return history[: index + 1]
    return history


# --- the one AWS call -----------------------------------------------------------------------------
def read_history(client: Any, execution_arn: str) -> list[Event]:
    """Every history event of an execution, with its data, oldest first. boto3's errors
    (ClientError, BotoCoreError) propagate: each caller names them for its own purpose."""
    events: list[Event] = []
    for page in client.get_paginator("get_execution_history").paginate(
        executionArn=execution_arn, includeExecutionData=True
    ):
        events.extend(page["events"])
    return oldest_first(events)
