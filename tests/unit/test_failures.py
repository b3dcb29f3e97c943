"""Failure analysis over hand-written execution histories, and the status-change event."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from common.errors import InvalidInput
from common.stepfunctions import failures
from local import eventbridge

REGION, ACCOUNT = "eu-west-1", "123456789012"
MACHINE = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:bixarena-leaderboard"
EXECUTION = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:bixarena-leaderboard:run-7"
LAMBDA_CAUSE = json.dumps(
    {
        "errorType": "NotEnoughData",
        "errorMessage": "genetics: 12 battles, at least 30 needed",
        "stackTrace": ['  File "/var/task/stages/rank/handler.py", line 20, in handler\n'],
    }
)


class History:
    """Builds a history the way Step Functions links it: each event names the one before it."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def add(self, kind: str, previous: int | None = None, **details: Any) -> int:
        event_id = len(self.events) + 1
        event: dict[str, Any] = {
            "id": event_id,
            "type": kind,
            "previousEventId": event_id - 1 if previous is None else previous,
            "timestamp": datetime(2025, 6, 1, 3, 0, event_id % 60, tzinfo=UTC),
        }
        if details:
            key = {
                "TaskStateEntered": "stateEnteredEventDetails",
                "MapStateEntered": "stateEnteredEventDetails",
                "PassStateEntered": "stateEnteredEventDetails",
                "FailStateEntered": "stateEnteredEventDetails",
                "TaskStateExited": "stateExitedEventDetails",
                "MapStateExited": "stateExitedEventDetails",
                "PassStateExited": "stateExitedEventDetails",
            }.get(kind, kind[0].lower() + kind[1:] + "EventDetails")
            event[key] = details
        self.events.append(event)
        return event_id

    def task(self, name: str, state_input: Any, previous: int | None = None) -> int:
        """Entered, scheduled, started: returns the id of TaskStarted."""
        entered = self.add("TaskStateEntered", previous, name=name, input=json.dumps(state_input))
        self.add("TaskScheduled", entered, resourceType="lambda", resource="invoke")
        return self.add("TaskStarted", entered + 1)

    def succeed(self, name: str, started: int, output: Any) -> int:
        done = self.add("TaskSucceeded", started, output=json.dumps({"Payload": output}))
        return self.add("TaskStateExited", done, name=name, output=json.dumps(output))


def _fetch(history: History, request: dict[str, Any]) -> int:
    history.add("ExecutionStarted", 0, input=json.dumps(request))
    started = history.task("Fetch", request)
    run = {"run": {"correlation_id": "from-fetch", "run_id": "r"}}
    return history.succeed("Fetch", started, {**run, "leaderboards": ["overall", "genetics"]})


def _map_with_two_iterations(history: History, after: int) -> tuple[int, int]:
    """RankAndPublish entered, two iterations started; returns their MapIterationStarted ids."""
    entered = history.add("MapStateEntered", after, name="RankAndPublish", input="{}")
    started = history.add("MapStateStarted", entered, length=2)
    first = history.add("MapIterationStarted", started, name="RankAndPublish", index=0)
    second = history.add("MapIterationStarted", started, name="RankAndPublish", index=1)
    return first, second


def _rank_input(slug: str) -> dict[str, Any]:
    return {"run": {"run_id": "r"}, "leaderboard": {"slug": slug, "vote_count": 12}}


def lambda_failure_in_map() -> list[dict[str, Any]]:
    """genetics' Rank fails (a transient error first, retried, then a permanent one) while the
    overall iteration's events interleave with it; overall completes Rank and Publish."""
    h = History()
    fetched = _fetch(h, {"leaderboards": "all", "correlation_id": "corr-7", "trigger": "manual"})
    first, second = _map_with_two_iterations(h, fetched)
    overall = h.task("Rank", _rank_input("overall"), first)
    genetics = h.task("Rank", _rank_input("genetics"), second)
    retried = h.add("TaskFailed", genetics, error="StorageUnavailable", cause="{}")
    h.add("TaskScheduled", retried, resourceType="lambda", resource="invoke")
    genetics = h.add("TaskStarted")
    ranked = h.succeed("Rank", overall, {"leaderboard": {"slug": "overall"}})
    publish = h.task("Publish", _rank_input("overall"), ranked)
    final = h.add("TaskFailed", genetics, error="NotEnoughData", cause=LAMBDA_CAUSE)
    h.add("MapIterationFailed", final, name="RankAndPublish", index=1)
    h.succeed("Publish", publish, {"slug": "overall"})
    h.add("MapStateFailed")
    h.add("ExecutionFailed", error="NotEnoughData", cause=LAMBDA_CAUSE)
    return h.events


def test_lambda_task_failure_in_a_map_names_state_iteration_and_leaderboard() -> None:
    point = failures.failure_point(lambda_failure_in_map())
    assert (point.state, point.map_state, point.iteration) == ("Rank", "RankAndPublish", 1)
    assert point.error == "NotEnoughData"
    assert point.state_input["leaderboard"]["slug"] == "genetics"


def test_history_order_does_not_matter() -> None:
    events = lambda_failure_in_map()
    assert failures.failure_point(reversed(events)) == failures.failure_point(events)


def test_report_of_a_lambda_failure() -> None:
    event = eventbridge.status_change_event(
        EXECUTION, MACHINE, "run-7", "FAILED", 1_748_746_800_000, 1_748_746_923_000,
        json.dumps({"correlation_id": "corr-7", "trigger": "manual", "requested_by": "bob"}),
        "NotEnoughData", LAMBDA_CAUSE, REGION, ACCOUNT,
    )  # fmt: skip
    report = failures.describe_failure(failures.parse_status_change(event), lambda_failure_in_map())
    assert report.state == "Rank" and report.leaderboard == "genetics"
    assert report.cause == "NotEnoughData: genetics: 12 battles, at least 30 needed"
    assert report.correlation_id == "corr-7"
    assert (report.trigger, report.requested_by) == ("manual", "bob")
    assert report.started_at == datetime(2025, 6, 1, 3, 0, tzinfo=UTC)
    assert (report.stopped_at - report.started_at).total_seconds() == 123  # type: ignore[operator]
    assert report.console_url == (
        f"https://{REGION}.console.aws.amazon.com/states/home?region={REGION}"
        f"#/v2/executions/details/{EXECUTION}"
    )
    assert (
        report.redrive_command == f"aws stepfunctions redrive-execution --execution-arn {EXECUTION}"
    )


def test_lambda_function_failed_at_top_level() -> None:
    h = History()
    h.add("ExecutionStarted", 0, input="{}")
    h.add("TaskStateEntered", name="Fetch", input="{}")
    h.add("LambdaFunctionScheduled", resource="arn:aws:lambda:eu-west-1:1:function:fetch")
    h.add("LambdaFunctionStarted")
    h.add("LambdaFunctionFailed", error="DatabaseUnavailable", cause=json.dumps(
        {"errorType": "DatabaseUnavailable", "errorMessage": "cannot connect to PostgreSQL"}
    ))  # fmt: skip
    h.add("ExecutionFailed", error="DatabaseUnavailable", cause="…")
    point = failures.failure_point(h.events)
    assert (point.state, point.map_state, point.iteration) == ("Fetch", None, None)
    assert failures.summarize_cause(point.cause) == (
        "DatabaseUnavailable: cannot connect to PostgreSQL"
    )


def test_timed_out_execution_names_the_state_still_running() -> None:
    h = History()
    fetched = _fetch(h, {})
    first, second = _map_with_two_iterations(h, fetched)
    overall = h.task("Rank", _rank_input("overall"), first)
    h.task("Rank", _rank_input("genetics"), second)
    h.succeed("Rank", overall, {})
    h.add("ExecutionTimedOut", error="States.Timeout", cause="execution timed out")
    point = failures.failure_point(h.events)
    assert (point.state, point.iteration, point.error) == ("Rank", 1, "States.Timeout")
    assert point.state_input["leaderboard"]["slug"] == "genetics"


def test_timed_out_execution_names_the_task_running_longest() -> None:
    """Two iterations still running when the execution times out: the one that started first
    (the slow one the timeout waited on) is named, not the one that started last."""
    h = History()
    fetched = _fetch(h, {})
    first, second = _map_with_two_iterations(h, fetched)
    h.task("Rank", _rank_input("genetics"), second)
    h.task("Rank", _rank_input("overall"), first)
    h.add("ExecutionTimedOut", error="States.Timeout", cause="execution timed out")
    point = failures.failure_point(h.events)
    assert (point.state, point.iteration) == ("Rank", 1)
    assert point.state_input["leaderboard"]["slug"] == "genetics"


def test_timed_out_execution_ignores_earlier_retried_failures() -> None:
    h = History()
    h.add("ExecutionStarted", 0, input="{}")
    started = h.task("Fetch", {})
    h.add("TaskFailed", started, error="DatabaseUnavailable", cause="refused")
    h.add("TaskScheduled", resourceType="lambda", resource="invoke")
    h.add("TaskStarted")
    h.add("ExecutionTimedOut")
    point = failures.failure_point(h.events)
    assert (point.state, point.error, point.cause) == ("Fetch", None, None)


def test_aborted_execution_names_the_state_it_stopped_in() -> None:
    h = History()
    fetched = _fetch(h, {})
    first, _ = _map_with_two_iterations(h, fetched)
    ranked = h.succeed("Rank", h.task("Rank", _rank_input("overall"), first), {})
    h.task("Publish", _rank_input("overall"), ranked)
    h.add("ExecutionAborted")
    point = failures.failure_point(h.events)
    assert (point.state, point.map_state, point.iteration) == ("Publish", "RankAndPublish", 0)
    assert (point.error, point.cause) == (None, None)


def test_a_state_after_a_finished_map_is_top_level() -> None:
    h = History()
    fetched = _fetch(h, {})
    first, second = _map_with_two_iterations(h, fetched)
    h.succeed("Rank", h.task("Rank", _rank_input("overall"), first), {})
    last = h.succeed("Rank", h.task("Rank", _rank_input("genetics"), second), {})
    h.add("MapIterationSucceeded", last, name="RankAndPublish", index=1)
    h.add("MapStateSucceeded")
    h.add("MapStateExited", name="RankAndPublish", output="{}")
    started = h.task("Notify", {})
    h.add("TaskFailed", started, error="SlackRejected", cause="Slack refused the message (404)")
    h.add("ExecutionFailed", error="SlackRejected", cause="Slack refused the message (404)")
    point = failures.failure_point(h.events)
    assert (point.state, point.map_state, point.iteration) == ("Notify", None, None)
    assert point.cause == "Slack refused the message (404)"


def test_a_map_level_runtime_error_names_the_map() -> None:
    h = History()
    fetched = _fetch(h, {})
    entered = h.add("MapStateEntered", fetched, name="RankAndPublish", input="{}")
    h.add("MapStateFailed", entered)
    h.add("ExecutionFailed", error="States.Runtime", cause="The JSONPath '$.leaderboards' ...")
    point = failures.failure_point(h.events)
    assert (point.state, point.error) == ("RankAndPublish", "States.Runtime")


def test_a_fail_state_takes_the_execution_error() -> None:
    h = History()
    h.add("ExecutionStarted", 0, input="{}")
    h.add("PassStateEntered", name="Prepare", input="{}")
    h.add("PassStateExited", name="Prepare", output="{}")
    h.add("FailStateEntered", name="Give up", input="{}")
    h.add("ExecutionFailed", error="Boom", cause="it broke")
    assert failures.failure_point(h.events) == failures.FailurePoint(
        state="Give up", error="Boom", cause="it broke", state_input={}
    )


def test_report_without_history_falls_back_on_the_event() -> None:
    event = eventbridge.status_change_event(
        EXECUTION, MACHINE, "run-7", "FAILED", 1_748_746_800_000, None, None,
        "InvalidInput", "leaderboards: 'Bad' is not a valid leaderboard slug", REGION, ACCOUNT,
    )  # fmt: skip
    report = failures.describe_failure(failures.parse_status_change(event), None)
    assert (report.state, report.history_available) == (None, False)
    assert report.error == "InvalidInput"
    assert report.cause == "leaderboards: 'Bad' is not a valid leaderboard slug"
    assert report.correlation_id is None and report.stopped_at is None


def test_correlation_id_comes_from_fetch_output_when_the_input_has_none() -> None:
    event = eventbridge.status_change_event(
        EXECUTION, MACHINE, "run-7", "FAILED", 0, 1, "{}", "E", None, REGION, ACCOUNT
    )
    report = failures.describe_failure(
        failures.parse_status_change(event), lambda_failure_in_map()[1:]
    )
    assert report.correlation_id == "from-fetch"


def test_summarize_cause() -> None:
    long = json.dumps(
        {"errorType": "ArtifactCorrupt", "errorMessage": "x" * 2000, "stackTrace": []}
    )
    summary = failures.summarize_cause(long)
    assert summary is not None and len(summary) == failures.CAUSE_LIMIT
    assert summary.startswith("ArtifactCorrupt: xxx") and summary.endswith("…")
    assert failures.summarize_cause('{"errorMessage": "only a message"}') == "only a message"
    assert failures.summarize_cause("plain\n  text\tcause") == "plain text cause"
    assert failures.summarize_cause("") is None and failures.summarize_cause(None) is None


def test_status_change_event_has_the_eventbridge_shape() -> None:
    event = eventbridge.status_change_event(
        EXECUTION, MACHINE, "run-7", "TIMED_OUT", 1_748_746_800_000, 1_748_746_801_000,
        '{"a": 1}', "States.Timeout", None, REGION, ACCOUNT,
    )  # fmt: skip
    assert set(event) == {
        "version", "id", "detail-type", "source", "account", "time", "region", "resources",
        "detail",
    }  # fmt: skip
    assert event["source"] == "aws.states"
    assert event["detail-type"] == "Step Functions Execution Status Change"
    assert event["time"] == "2025-06-01T03:00:01Z"
    assert event["resources"] == [EXECUTION]
    assert event["detail"]["startDate"] == 1_748_746_800_000
    change = failures.parse_status_change(event)
    assert (change.status, change.region, change.input) == ("TIMED_OUT", REGION, {"a": 1})
    assert change.name == "run-7" and change.state_machine_arn == MACHINE


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e: e.update(source="aws.lambda"), r"^event: expected source 'aws.states'"),
        (lambda e: e.update(detail=[]), r"^detail: expected a JSON object"),
        (lambda e: e["detail"].update(status="SUCCEEDED"), r"^detail\.status: expected one of"),
        (lambda e: e["detail"].update(executionArn="arn:x"), r"^detail\.executionArn: not a"),
        (lambda e: e["detail"].update(startDate="yesterday"), r"^detail\.startDate: expected"),
        (lambda e: e["detail"].pop("stateMachineArn"), r"^detail\.stateMachineArn: expected"),
    ],
)
def test_bad_status_change_events_name_the_field(mutate: Any, message: str) -> None:
    event = eventbridge.status_change_event(
        EXECUTION, MACHINE, "run-7", "FAILED", 0, 1, "{}", "E", "C", REGION, ACCOUNT
    )
    mutate(event)
    with pytest.raises(InvalidInput, match=message):
        failures.parse_status_change(event)


def test_an_input_that_is_not_json_only_loses_the_correlation_id() -> None:
    event = eventbridge.status_change_event(
        EXECUTION, MACHINE, "run-7", "ABORTED", 0, 1, "not json", None, None, REGION, ACCOUNT
    )
    assert failures.parse_status_change(event).input is None


def test_the_failing_iteration_is_named_when_its_siblings_are_still_failing_the_same_way() -> None:
    """The database down: every iteration's Publish fails with DatabaseUnavailable; genetics'
    runs out of retries and fails the Map while overall's is still retrying, its last failure
    logged after genetics' last one."""
    h = History()
    fetched = _fetch(h, {"leaderboards": "all", "correlation_id": "corr-7", "trigger": "manual"})
    first, second = _map_with_two_iterations(h, fetched)
    overall = h.task("Publish", _rank_input("overall"), first)
    genetics = h.task("Publish", _rank_input("genetics"), second)
    final = h.add("TaskFailed", genetics, error="DatabaseUnavailable", cause="genetics down")
    h.add("TaskFailed", overall, error="DatabaseUnavailable", cause="overall down")
    h.add("MapIterationFailed", final, name="RankAndPublish", index=1)
    h.add("MapStateFailed")
    h.add("ExecutionFailed", error="DatabaseUnavailable", cause="genetics down")
    point = failures.failure_point(h.events)
    assert (point.state, point.iteration, point.cause) == ("Publish", 1, "genetics down")


def test_after_a_redrive_the_failure_is_the_one_since_the_redrive() -> None:
    """genetics' Publish failed with ConfigurationError (the secret was wrong); the operator fixed
    it and redrove; the Map then completed and Notify failed with a ConfigurationError of its own.
    The alert names Notify and its cause, not the Publish the redrive went past."""
    h = History()
    fetched = _fetch(h, {"leaderboards": "all", "correlation_id": "corr-7", "trigger": "manual"})
    first, second = _map_with_two_iterations(h, fetched)
    overall = h.task("Publish", _rank_input("overall"), first)
    h.succeed("Publish", overall, {"slug": "overall"})
    genetics = h.task("Publish", _rank_input("genetics"), second)
    final = h.add("TaskFailed", genetics, error="ConfigurationError", cause="db secret bad")
    h.add("MapIterationFailed", final, name="RankAndPublish", index=1)
    h.add("MapStateFailed")
    h.add("ExecutionFailed", error="ConfigurationError", cause="db secret bad")
    redriven = h.add("ExecutionRedriven", redriveCount=1)
    again = h.add("MapIterationStarted", redriven, name="RankAndPublish", index=1)
    genetics = h.task("Publish", _rank_input("genetics"), again)
    published = h.succeed("Publish", genetics, {"slug": "genetics"})
    h.add("MapIterationSucceeded", published, name="RankAndPublish", index=1)
    exited = h.add("MapStateExited", name="RankAndPublish", output="{}")
    notify = h.task("Notify", {"run": {"run_id": "r"}}, exited)
    h.add("TaskFailed", notify, error="ConfigurationError", cause="slack secret bad")
    h.add("ExecutionFailed", error="ConfigurationError", cause="slack secret bad")
    point = failures.failure_point(h.events)
    assert (point.state, point.map_state, point.iteration) == ("Notify", None, None)
    assert point.cause == "slack secret bad"
