"""The backfill's plan: the schedule's time of day, the instants, the execution names and inputs,
what an execution's history says it did, and the summary."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from cli import backfill
from cli.arguments import UsageError
from cli.progress import Progress
from common.contracts import parse_run_request

NOW = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
UTC_6 = backfill.TimeOfDay(time(6, 0), "UTC", "test")


def test_the_time_of_day_of_a_daily_cron_schedule() -> None:
    at = backfill.schedule_time("cron(30 6 * * ? *)", "UTC", "cdk.json")
    assert (at.at, at.zone) == (time(6, 30), "UTC")
    assert "cron(30 6 * * ? *) in UTC, cdk.json" in at.source
    for expression in ("rate(1 day)", "cron(0 */6 * * ? *)", "cron(0,30 6 * * ? *)", "at(2026-01-01T00:00:00)"):  # fmt: skip
        with pytest.raises(UsageError, match="has no single time of day: give --at HH:MM"):
            backfill.schedule_time(expression, "UTC", "cdk.json")


def test_the_deployed_schedule_comes_from_cdk_json(tmp_path: Path) -> None:
    cdk_json = tmp_path / "cdk.json"
    cdk_json.write_text(json.dumps({"context": {"@aws-cdk/core:flag": True}}))
    default = backfill.deployed_schedule(cdk_json)
    assert (default.at, default.zone) == (time(2, 0), "UTC")
    assert "the stack's default" in default.source
    cdk_json.write_text(
        json.dumps(
            {"context": {"scheduleExpression": "cron(15 7 * * ? *)", "scheduleTimeZone": "Europe/Paris"}}
        )
    )  # fmt: skip
    deployed = backfill.deployed_schedule(cdk_json)
    assert (deployed.at, deployed.zone) == (time(7, 15), "Europe/Paris")
    assert "cdk.json's context" in deployed.source
    cdk_json.write_text(json.dumps({"context": {"scheduleExpression": "daily"}}))
    with pytest.raises(UsageError, match="scheduleExpression: 'daily' is not a cron"):
        backfill.deployed_schedule(cdk_json)


def test_daily_instants_keep_the_wall_clock_time_across_a_dst_change() -> None:
    paris = backfill.TimeOfDay(time(6, 0), "Europe/Paris", "test")
    found = backfill.instants(date(2026, 3, 28), date(2026, 3, 30), paris, timedelta(days=1), NOW)
    # Paris is UTC+1 until 29 March 2026, then UTC+2.
    assert found == [
        datetime(2026, 3, 28, 5, tzinfo=UTC),
        datetime(2026, 3, 29, 4, tzinfo=UTC),
        datetime(2026, 3, 30, 4, tzinfo=UTC),
    ]


def test_instants_every_few_hours_or_weeks() -> None:
    hours = backfill.instants(date(2026, 1, 1), date(2026, 1, 2), UTC_6, timedelta(hours=8), NOW)
    assert [f"{m:%d %H}" for m in hours] == ["01 06", "01 14", "01 22", "02 06", "02 14", "02 22"]
    weeks = backfill.instants(date(2026, 1, 1), date(2026, 1, 20), UTC_6, timedelta(weeks=1), NOW)
    assert [m.day for m in weeks] == [1, 8, 15]


@pytest.mark.parametrize(
    ("first", "last", "every", "message"),
    [
        (date(2026, 1, 2), date(2026, 1, 1), "1d", "--to 2026-01-01 is before --from 2026-01-02"),
        (date(2026, 3, 30), date(2026, 4, 2), "1d", "--to: the instant 2026-04-02 06:00 UTC has not come yet (its votes are not all cast); the last past one is 2026-04-01 06:00 UTC"),
        (date(2020, 1, 1), date(2026, 1, 1), "1d", "more than 1000 instants"),
    ],
)  # fmt: skip
def test_instants_refused(first: date, last: date, every: str, message: str) -> None:
    with pytest.raises(UsageError) as refused:
        backfill.instants(first, last, UTC_6, backfill.parse_every(every), NOW)
    assert message in str(refused.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [("1", "not an interval"), ("0d", "not an interval"), ("1m", "not an interval"), ("-1d", "not an interval")],
)  # fmt: skip
def test_every_refused(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        backfill.parse_every(text)


def test_at_dates_and_every() -> None:
    assert backfill.parse_at("6:05").at == time(6, 5)
    assert backfill.parse_every("12h") == timedelta(hours=12)
    assert backfill.parse_every("2W") == timedelta(weeks=2)
    with pytest.raises(UsageError, match="--at: '24:00' is not a time of day HH:MM"):
        backfill.parse_at("24:00")
    with pytest.raises(UsageError, match="--from: '2026-02-30' is not a date YYYY-MM-DD"):
        backfill.parse_date("2026-02-30", "--from")


# --- names and requests ---------------------------------------------------------------------------
MOMENT = datetime(2026, 1, 1, 6, tzinfo=UTC)


def test_execution_names_are_deterministic_per_instant_selection_and_attempt() -> None:
    name = backfill.execution_name(MOMENT, ["overall", "genetics"])
    assert name.startswith("backfill-20260101T060000Z-") and len(name) == len("backfill-20260101T060000Z-") + 8  # fmt: skip
    assert backfill.execution_name(MOMENT, ["genetics", "overall", "genetics"]) == name
    assert backfill.execution_name(MOMENT, ["overall"]) != name
    assert backfill.execution_name(MOMENT, "all") != name
    assert backfill.execution_name(MOMENT, ["overall", "genetics"], 3) == f"{name}-3"
    assert backfill.attempt_of(name, MOMENT, ["overall", "genetics"]) == 1
    assert backfill.attempt_of(f"{name}-3", MOMENT, ["overall", "genetics"]) == 3
    assert backfill.attempt_of(f"{name}-x", MOMENT, ["overall", "genetics"]) is None
    assert backfill.attempt_of(name, MOMENT, ["overall"]) is None
    assert backfill.attempt_of(name, MOMENT + timedelta(days=1), ["overall", "genetics"]) is None


def test_the_request_of_an_instant_follows_the_pipeline_contract() -> None:
    name = backfill.execution_name(MOMENT, ["overall"])
    sent = backfill.request(MOMENT, ["overall"], 200, publish=False, requested_by="me", name=name)
    assert parse_run_request(sent) == sent
    assert (sent["run_at"], sent["publish"], sent["correlation_id"]) == ("2026-01-01T06:00:00Z", False, name)  # fmt: skip


def test_what_covers_an_instant() -> None:
    def asked(leaderboards: Any, run_at: str = "2026-01-01T06:00:00Z") -> Any:
        return parse_run_request({"leaderboards": leaderboards, "run_at": run_at})

    assert backfill.covers(asked("all"), MOMENT, ["overall"])
    assert backfill.covers(asked(["overall", "genetics"]), MOMENT, ["overall"])
    assert not backfill.covers(asked(["overall"]), MOMENT, ["overall", "genetics"])
    assert not backfill.covers(asked(["overall"]), MOMENT, "all")
    assert not backfill.covers(asked("all", "2026-01-01T06:00:01Z"), MOMENT, ["overall"])
    assert not backfill.covers(None, MOMENT, ["overall"])


# --- what an execution did --------------------------------------------------------------------------
def _exited(event_id: int, output: Any, name: str = "State") -> dict[str, Any]:
    return {
        "id": event_id,
        "previousEventId": event_id - 1,
        "type": "TaskStateExited",
        "timestamp": MOMENT,
        "stateExitedEventDetails": {"name": name, "output": json.dumps(output)},
    }


def _publish(slug: str, created: bool) -> dict[str, Any]:
    return {"slug": slug, "snapshot_identifier": "snapshot_2026-01-01_06-00-00", "created": created}


FETCHED = {
    "run": {},
    "leaderboards": [{"slug": "overall"}, {"slug": "genetics"}, {"slug": "immunology"}],
    "skipped": [{"slug": "rare-diseases", "reason": "fewer than 30 battles (0)"}],
}


def test_the_outcome_of_a_succeeded_execution() -> None:
    nobody = {"slug": "immunology", "reason": "no model reaches 10 evaluations"}
    history = [
        _exited(2, {**FETCHED, "left_out": []}, "Fetch"),
        _exited(5, _publish("overall", True)),
        _exited(6, _publish("genetics", False)),
        _exited(7, nobody),
        {"id": 9, "type": "ExecutionSucceeded", "timestamp": MOMENT},
    ]
    outcome = backfill.execution_outcome(MOMENT, "x", history, "all")
    assert outcome.result == "published"
    assert (outcome.published, outcome.existing, outcome.failed) == (["overall"], ["genetics"], [])  # fmt: skip
    assert outcome.skipped == [
        {"slug": "rare-diseases", "reason": "fewer than 30 battles (0)"},
        nobody,
    ]
    nothing_new = backfill.execution_outcome(
        MOMENT, "x", [_exited(2, FETCHED), _exited(5, _publish("overall", False))], ["overall"],
        status="SUCCEEDED",
    )  # fmt: skip
    assert nothing_new.result == "exists"


def test_the_outcome_of_a_failed_execution_names_where_it_failed() -> None:
    failed_publish = {
        "id": 6,
        "previousEventId": 5,
        "type": "TaskFailed",
        "timestamp": MOMENT,
        "taskFailedEventDetails": {"error": "ModelNotFound", "cause": json.dumps({"errorType": "ModelNotFound", "errorMessage": "entries: model(s) gone"})},
    }  # fmt: skip
    entered = {
        "id": 5,
        "previousEventId": 4,
        "type": "TaskStateEntered",
        "timestamp": MOMENT,
        "stateEnteredEventDetails": {"name": "Publish", "input": json.dumps({"leaderboard": {"slug": "genetics"}})},
    }  # fmt: skip
    history = [
        _exited(2, FETCHED, "Fetch"),
        _exited(4, _publish("overall", True)),
        entered,
        failed_publish,
        {"id": 7, "type": "ExecutionFailed", "timestamp": MOMENT, "executionFailedEventDetails": {"error": "ModelNotFound"}},
    ]  # fmt: skip
    outcome = backfill.execution_outcome(MOMENT, "x", history, "all")
    assert outcome.result == "failed"
    assert (outcome.published, outcome.failed) == (["overall"], ["genetics", "immunology"])
    assert outcome.note == "FAILED at Publish [genetics]: ModelNotFound: entries: model(s) gone"
    at_fetch = backfill.execution_outcome(MOMENT, "x", [], ["overall", "genetics"], status="FAILED")
    assert at_fetch.failed == ["overall", "genetics"]
    assert backfill.execution_outcome(MOMENT, "x", [], "all", status="TIMED_OUT").failed == ["all"]


def test_already_done() -> None:
    every = ["genetics", "overall", "rare-diseases"]
    done = backfill.already_done(MOMENT, ["overall"], ({"overall"}, every), None)
    assert done is not None and (done.result, done.note) == ("exists", "already in the database")
    assert backfill.already_done(MOMENT, "all", ({"overall", "genetics"}, every), None) is None
    earlier = backfill.Outcome(
        MOMENT, "published", execution="e", published=["overall", "genetics"]
    )
    # "all" whose sparse leaderboard was skipped: done by the earlier execution...
    by_run = backfill.already_done(MOMENT, "all", ({"overall", "genetics"}, every), earlier)
    assert by_run is not None and by_run.execution == "e"
    assert backfill.already_done(MOMENT, "all", None, earlier) is not None
    # ...unless a snapshot it wrote is gone, or it failed.
    assert backfill.already_done(MOMENT, "all", ({"overall"}, every), earlier) is None
    failed = backfill.Outcome(MOMENT, "failed", execution="e", published=["overall"])
    assert backfill.already_done(MOMENT, "all", None, failed) is None


def test_the_summary_counts_per_instant() -> None:
    outcomes = [
        backfill.Outcome(MOMENT + timedelta(days=1), "failed", execution="b", failed=["all"], note="FAILED at Fetch: X"),
        backfill.Outcome(MOMENT, "published", execution="a", published=["overall"], existing=["genetics"], skipped=[{"slug": "rare-diseases", "reason": "fewer than 30 battles (0)"}]),
    ]  # fmt: skip
    lines = backfill.summary(outcomes)
    assert [line.split()[:6] for line in lines[2:4]] == [
        ["2026-01-01", "06:00", "published", "1", "2", "0"],
        ["2026-01-02", "06:00", "failed", "0", "0", "all"],
    ]
    assert lines[3].endswith("b  FAILED at Fetch: X")
    assert lines[5] == "2 instant(s): 1 published, 1 failed; 1 snapshot(s) written"
    assert lines[6] == "skipped for their data: rare-diseases: fewer than 30 battles (0)"
    assert not backfill.succeeded(outcomes)
    assert backfill.succeeded(outcomes[1:])


class _Stream:
    def __init__(self, tty: bool) -> None:
        self.text = ""
        self.tty = tty

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return self.tty


def test_progress_redraws_a_bar_on_a_terminal_and_prints_plain_lines_elsewhere() -> None:
    ticks = iter([0.0, 30.0, 30.0, 30.0])
    terminal = _Stream(tty=True)
    progress = Progress(4, terminal, clock=lambda: next(ticks))  # type: ignore[arg-type]
    progress.update(1, {"published": 1}, "2026-01-02 06:00 running")
    assert progress.bar() == (
        "[██████░░░░░░░░░░░░░░░░░░] 1/4  published 1  ETA 1m30s  ▸ 2026-01-02 06:00 running"
    )
    progress.line("2026-01-01 06:00 UTC  published")
    progress.close()
    assert terminal.text.count("\r\x1b[2K[██████") == 2
    assert "\r\x1b[2K2026-01-01 06:00 UTC  published\n" in terminal.text
    assert terminal.text.endswith("\r\x1b[2K")
    pipe = _Stream(tty=False)
    plain = Progress(4, pipe)  # type: ignore[arg-type]
    plain.update(1, {"published": 1})
    plain.line("a line")
    plain.close()
    assert pipe.text == "a line\n"
