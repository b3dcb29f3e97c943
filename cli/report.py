"""What a local run prints: progress from the execution history, timings, the Slack message.

Pure formatting over Step Functions history events (as boto3 returns them) and plain rows, so the
same text can be checked in tests without running anything.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from common.contracts import is_skipped
from common.stepfunctions.history import by_id, details, iteration_of, leaderboard_of, timestamp
from local.lambda_workers import Invocation

_ENTERED = ("TaskStateEntered", "MapStateEntered", "PassStateEntered", "ChoiceStateEntered")
_EXITED = ("TaskStateExited", "MapStateExited")


@dataclass
class ProgressPrinter:
    """Turns history events into one line each for the states a user cares about."""

    lines: list[str] = field(default_factory=list)
    _entered: dict[tuple[str, int | None], tuple[datetime, str | None]] = field(
        default_factory=dict
    )
    _attempts: dict[tuple[str, int | None], int] = field(default_factory=dict)
    _label: dict[int | None, str] = field(default_factory=dict)

    def __call__(self, event: dict[str, Any], history: Sequence[dict[str, Any]]) -> str | None:
        line = self.describe(event, history)
        if line is not None:
            self.lines.append(line)
        return line

    def describe(self, event: dict[str, Any], history: Sequence[dict[str, Any]]) -> str | None:
        kind = event["type"]
        found = details(event)
        index = iteration_of(by_id(history), event)
        if kind in _ENTERED:
            name = found.get("name", "?")
            if name.startswith("Redrive"):
                return None
            slug = leaderboard_of(found.get("input"))
            if slug:
                self._label[index] = slug
            self._entered[(name, index)] = (timestamp(event), slug)
            self._attempts[(name, index)] = 0
            return f"{self._indent(index)}▸ {self._name(name, index)}"
        if kind == "MapStateStarted":
            return f"  {found.get('length', 0)} leaderboard(s) to rank and publish"
        if kind == "TaskScheduled":
            key = self._current(index)
            if key is None:
                return None
            self._attempts[key] = self._attempts.get(key, 0) + 1
            if self._attempts[key] > 1:
                return f"{self._indent(index)}  ↻ retry {self._attempts[key] - 1} of {self._name(key[0], index)}"
            return None
        if kind in ("TaskFailed", "LambdaFunctionFailed", "TaskTimedOut"):
            key = self._current(index)
            error = found.get("error", "Error")
            return f"{self._indent(index)}  ✗ {self._name(key[0] if key else '?', index)}: {error}: {_cause(found.get('cause'))}"
        if kind in _EXITED:
            name = found.get("name", "?")
            started = self._entered.get((name, index))
            took = (timestamp(event) - started[0]).total_seconds() if started else 0.0
            return f"{self._indent(index)}✓ {self._name(name, index)} {took:.2f} s"
        if kind == "ExecutionSucceeded":
            return "execution SUCCEEDED"
        if kind in ("ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"):
            return f"execution {kind.removeprefix('Execution').upper()}: {found.get('error', '')}"
        return None

    def _current(self, index: int | None) -> tuple[str, int | None] | None:
        keys = [k for k in self._entered if k[1] == index]
        return max(keys, key=lambda k: self._entered[k][0]) if keys else None

    def _name(self, name: str, index: int | None) -> str:
        label = self._label.get(index) if index is not None else None
        return f"{name} [{label}]" if label else name

    @staticmethod
    def _indent(index: int | None) -> str:
        return "    " if index is not None else ""


def _cause(cause: str | None, limit: int = 160) -> str:
    """Lambda's cause is its error payload as JSON: show the message, short."""
    if not cause:
        return ""
    try:
        message = str(json.loads(cause).get("errorMessage", cause))
    except (ValueError, AttributeError):
        message = cause
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: limit - 1] + "…"


def stage_durations(history: Sequence[dict[str, Any]]) -> list[tuple[str, float]]:
    """Wall time per stage: top-level states, and the Map's inner states summed over iterations."""
    events_by_id = by_id(history)
    open_states: dict[tuple[str, int | None], datetime] = {}
    totals: dict[str, float] = {}
    for event in history:
        found = details(event)
        index = iteration_of(events_by_id, event)
        name = found.get("name")
        if not name or name.startswith("Redrive"):
            continue
        if event["type"] in _ENTERED:
            open_states[(name, index)] = timestamp(event)
        elif event["type"] in _EXITED and (name, index) in open_states:
            took = (timestamp(event) - open_states.pop((name, index))).total_seconds()
            totals[name] = totals.get(name, 0.0) + took
    return list(totals.items())


def _map_output(history: Sequence[dict[str, Any]]) -> dict[str, Any]:
    for event in reversed(history):
        if event["type"] == "MapStateExited":
            return dict(json.loads(details(event).get("output") or "{}"))
    return {}


def most_at_once(invocations: Sequence[Invocation]) -> int:
    """The most invocations that were running at the same moment."""
    edges = sorted(
        [(i.started, 1) for i in invocations] + [(i.ended, -1) for i in invocations],
        key=lambda edge: (edge[0], edge[1]),  # an end before a start at the same instant
    )
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def lambda_summary(invocations: Sequence[Invocation], workers: int) -> str:
    """Where the Lambda functions ran, and how long invocations waited for a free worker (that
    wait is in the stage times: a task's time runs from the interpreter's call to the result)."""
    if workers == 0:
        return f"Lambda functions: {len(invocations)} invocations, as threads of this process"
    waited = sum(max(0.0, i.started - i.asked) for i in invocations)
    line = (
        f"Lambda functions: {len(invocations)} invocations in {workers} worker process"
        f"{'es' if workers != 1 else ''}, up to {most_at_once(invocations)} at once"
    )
    if waited >= 0.01:
        line += f"; tasks waited {waited:.2f} s in total for a free worker (in the stage times)"
    return line


def published_results(
    history: Sequence[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(publish results, skipped leaderboards) from the Map state's output in the history: the
    skips are fetch's, then the Map's (leaderboards where nobody could be ranked)."""
    output = _map_output(history)
    outcomes = list(output.get("results") or [])
    return (
        [r for r in outcomes if not is_skipped(r)],
        list(output.get("skipped") or []) + [r for r in outcomes if is_skipped(r)],
    )


def left_out_votes(history: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The votes fetch left out, per leaderboard and reason, from the Map state's output."""
    return list(_map_output(history).get("left_out") or [])


def slack_preview(message: dict[str, Any]) -> str:
    """A Slack Block Kit message as plain terminal text (its fallback text when it has no blocks)."""
    lines: list[str] = []
    for block in message.get("blocks") or []:
        kind = block.get("type")
        if kind in ("header", "section") and isinstance(block.get("text"), dict):
            lines.append(str(block["text"].get("text", "")))
        if kind == "section":
            lines.extend(str(f.get("text", "")) for f in block.get("fields") or [])
        elif kind == "context":
            lines.append("  ".join(str(e.get("text", "")) for e in block.get("elements") or []))
        elif kind == "divider":
            lines.append("-" * 40)
    return "\n".join(lines) if lines else str(message.get("text", ""))
