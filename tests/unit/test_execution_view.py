"""The states of an execution as `leaderboard status` shows them, from hand-written histories."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cli.execution_view import state_spans

START = datetime(2026, 1, 1, 2, 0, 0, tzinfo=UTC)


def _history(*steps: tuple[str, int, dict[str, Any]]) -> list[dict[str, Any]]:
    """Events in order, each (type, seconds after START, details)."""
    return [
        {
            "id": number,
            "type": kind,
            "previousEventId": number - 1,
            "timestamp": START.replace(second=at),
            **({f"{kind[0].lower()}{kind[1:]}EventDetails": found} if found else {}),
        }
        for number, (kind, at, found) in enumerate(steps, start=1)
    ]


def test_a_state_that_failed_before_a_redrive_is_not_left_running() -> None:
    """A state failing without a catch has no exit event, and the redrive enters it anew: the
    first attempt ends with the execution's failure, not 'running' for ever."""
    events = _history(
        ("ExecutionStarted", 0, {}),
        ("TaskStateEntered", 1, {"name": "Fetch", "input": "{}"}),
        ("TaskFailed", 10, {"error": "DatabaseUnavailable"}),
        ("ExecutionFailed", 10, {"error": "DatabaseUnavailable"}),
        ("ExecutionRedriven", 30, {"redriveCount": 1}),
        ("TaskStateEntered", 31, {"name": "Fetch", "input": "{}"}),
        ("TaskStateExited", 34, {"name": "Fetch", "output": "{}"}),
        ("ExecutionSucceeded", 35, {}),
    )
    first, second = state_spans(events, "SUCCEEDED", START.replace(second=35))
    assert (first.name, first.outcome, first.error) == ("Fetch", "failed", "DatabaseUnavailable")
    assert first.ended == START.replace(second=10)
    assert (second.name, second.outcome, second.ended) == (
        "Fetch",
        "succeeded",
        START.replace(second=34),
    )
