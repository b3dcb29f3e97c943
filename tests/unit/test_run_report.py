"""What a local run prints, from hand-written history events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from cli.report import (
    ProgressPrinter,
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


def test_slack_preview_renders_blocks() -> None:
    from cli.report import slack_preview

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


def test_rank_changes_and_the_entries_table_with_moves() -> None:
    from decimal import Decimal

    from cli.tables import entries_table
    from common.movements import rank_change
    from common.snapshots import EntryRow

    assert [rank_change(3, 5), rank_change(3, 1), rank_change(2, 2), rank_change(1, None)] == [
        "↑2",
        "↓2",
        "=",
        "new",
    ]
    rows = [
        EntryRow("m1", "a", "A", 1, Decimal("1050.04"), Decimal("1040"), Decimal("1060"), 99),
        EntryRow("m2", "b", "B", 2, Decimal("990.5"), Decimal("980"), Decimal("1001"), 50),
    ]
    with_moves = entries_table(rows, {"m1": 2}).splitlines()
    assert with_moves[0].split()[-1] == "move"
    assert with_moves[2].split() == ["1", "A", "1050.0", "1040.0", "..", "1060.0", "99", "↑1"]
    assert with_moves[3].split()[-1] == "new"
    assert "move" not in entries_table(rows).splitlines()[0]


def test_the_style_controlled_table_shows_each_models_plain_rank_and_shift() -> None:
    from decimal import Decimal

    from cli.tables import style_control_table
    from common.snapshots import EntryRow

    rows = [
        EntryRow("m2", "b", "B", 1, Decimal("1010.25"), Decimal("1000"), Decimal("1020"), 80),
        EntryRow("m1", "a", "A", 2, Decimal("1001"), Decimal("990"), Decimal("1011"), 90),
        EntryRow("m3", "c", "", 3, Decimal("900"), Decimal("890"), Decimal("910"), 70),
    ]
    lines = style_control_table(rows, {"m1": 1, "m2": 2}).splitlines()
    assert lines[0].split()[-2:] == ["plain", "shift"]
    assert lines[2].split() == ["1", "B", "1010.2", "1000.0", "..", "1020.0", "80", "2", "↑1"]
    assert lines[3].split()[-2:] == ["1", "↓1"]
    assert lines[4].split()[:2] == ["3", "c"] and lines[4].split()[-2:] == ["-", "-"]
