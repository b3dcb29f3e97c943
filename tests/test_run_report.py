"""What a local run prints, from hand-written history events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from common.run_report import (
    ProgressPrinter,
    leaderboard_table,
    movement,
    published_results,
    stage_durations,
)

T0 = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)


def _history() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []

    def add(kind: str, prev: int, seconds: float, **details: Any) -> int:
        key = {
            "TaskStateEntered": "stateEnteredEventDetails",
            "MapStateEntered": "stateEnteredEventDetails",
            "TaskStateExited": "stateExitedEventDetails",
            "MapStateExited": "stateExitedEventDetails",
            "MapStateStarted": "mapStateStartedEventDetails",
            "MapIterationStarted": "mapIterationStartedEventDetails",
            "TaskFailed": "taskFailedEventDetails",
        }.get(kind, "otherEventDetails")
        event = {
            "id": len(events) + 1,
            "previousEventId": prev,
            "type": kind,
            "timestamp": T0 + timedelta(seconds=seconds),
        }
        if details:
            event[key] = details
        events.append(event)
        return len(events)

    add("ExecutionStarted", 0, 0)
    entered = add("TaskStateEntered", 1, 0, name="Fetch", input="{}")
    scheduled = add("TaskScheduled", entered, 0)
    add("TaskStateExited", scheduled, 1.5, name="Fetch", output="{}")
    map_entered = add("MapStateEntered", 4, 1.5, name="RankAndPublish", input="{}")
    started = add("MapStateStarted", map_entered, 1.5, length=1)
    iteration = add("MapIterationStarted", started, 1.5, name="RankAndPublish", index=0)
    rank = add(
        "TaskStateEntered",
        iteration,
        1.5,
        name="Rank",
        input=json.dumps({"leaderboard": {"slug": "overall"}}),
    )
    first = add("TaskScheduled", rank, 1.5)
    failed = add(
        "TaskFailed",
        first,
        1.6,
        error="StorageUnavailable",
        cause=json.dumps({"errorMessage": "S3 is slow"}),
    )
    again = add("TaskScheduled", failed, 3.6)
    add("TaskStateExited", again, 4.0, name="Rank", output="{}")
    results = {
        "results": [{"slug": "overall", "snapshot_id": "s1"}],
        "skipped": [{"slug": "genetics", "reason": "sparse"}],
    }
    add("MapStateExited", 12, 4.5, name="RankAndPublish", output=json.dumps(results))
    add("ExecutionSucceeded", 13, 5.0)
    return events


def test_progress_lines() -> None:
    history = _history()
    printer = ProgressPrinter()
    for n, event in enumerate(history):
        printer(event, history[: n + 1])
    assert printer.lines == [
        "▸ Fetch",
        "✓ Fetch 1.50 s",
        "▸ RankAndPublish",
        "  1 leaderboard(s) to rank and publish",
        "    ▸ Rank [overall]",
        "      ✗ Rank [overall]: StorageUnavailable: S3 is slow",
        "      ↻ retry 1 of Rank [overall]",
        "    ✓ Rank [overall] 2.50 s",
        "✓ RankAndPublish 3.00 s",
        "execution SUCCEEDED",
    ]


def test_durations_and_results() -> None:
    history = _history()
    assert stage_durations(history) == [("Fetch", 1.5), ("Rank", 2.5), ("RankAndPublish", 3.0)]
    results, skipped = published_results(history)
    assert results == [{"slug": "overall", "snapshot_id": "s1"}]
    assert skipped == [{"slug": "genetics", "reason": "sparse"}]


def test_table_and_movements() -> None:
    assert [movement(3, 5), movement(3, 1), movement(2, 2), movement(1, None)] == [
        "↑2",
        "↓2",
        "=",
        "new",
    ]
    table = leaderboard_table(
        [
            {
                "rank": 1,
                "model": "A",
                "bt_score": 1050.04,
                "bootstrap_q025": 1040.0,
                "bootstrap_q975": 1060.0,
                "vote_count": 99,
                "previous_rank": 2,
            }
        ]
    )
    assert table.splitlines()[2].split() == [
        "1",
        "A",
        "1050.0",
        "1040.0",
        "..",
        "1060.0",
        "99",
        "↑1",
    ]


def test_slack_preview_renders_blocks() -> None:
    from common.run_report import slack_preview

    message = {
        "text": "fallback",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "Leaderboard published"}},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "*overall*"},
                "fields": [{"type": "mrkdwn", "text": "1. A"}],
            },
            {"type": "divider"},
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": "manual"},
                    {"type": "mrkdwn", "text": "4 s"},
                ],
            },
        ],
    }
    assert slack_preview(message).splitlines() == [
        "Leaderboard published",
        "*overall*",
        "1. A",
        "-" * 40,
        "manual  4 s",
    ]
    assert slack_preview({"text": "only text"}) == "only text"
