"""Redrive emulation and the in-process Lambda dispatch, on a toy pipeline with our shape."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from common.errors import DatabaseUnavailable, InvalidInput
from local import moto_lambda
from local.redrive import NotRedrivable, plan_redrive, redrive_definition
from tests.toy_pipeline import DEFINITION, create_functions, create_role, task

REGION = "us-east-1"


class ToyStages:
    """Stage functions with our payload shape; ``broken`` makes one leaderboard's stage fail."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.broken: set[tuple[str, str]] = set()

    def __call__(self, name: str, event: Any, context: moto_lambda.InvocationContext) -> Any:
        self.calls.append((name, event))
        if name == "fetch":
            return {
                "run": {"id": event["execution_name"]},
                "leaderboards": event["request"]["leaderboards"],
            }
        if name in ("rank", "publish"):
            slug = event["leaderboard"]
            if (name, slug) in self.broken:
                raise InvalidInput(f"{name} refuses {slug}")
            return {**event, name: f"{name}-{slug}"}
        return {"notified": [r["publish"] for r in event["results"]], "run": event["run"]}


@pytest.fixture
def sfn() -> Iterator[Any]:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield boto3.client("stepfunctions", region_name=REGION)


def _run(
    sfn: Any, definition: dict[str, Any], name: str, payload: Any, role: str
) -> dict[str, Any]:
    arn = sfn.create_state_machine(
        name=f"sm-{name}", definition=json.dumps(definition), roleArn=role
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(payload))[
        "executionArn"
    ]
    deadline = time.monotonic() + 30
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    described["history"] = sfn.get_execution_history(executionArn=execution, maxResults=1000)[
        "events"
    ]
    return described


def test_moto_still_has_the_patched_method() -> None:
    moto_lambda.check_compatible()


def test_handler_errors_reach_the_state_machine_as_lambda_errors(
    sfn: Any, retry_sleeps: list[float]
) -> None:
    role = create_role(REGION)
    create_functions(role, REGION)
    attempts: list[str] = []

    def flaky(name: str, event: Any, context: moto_lambda.InvocationContext) -> Any:
        attempts.append(name)
        assert context.function_name == name and context.get_remaining_time_in_millis() > 0
        if len(attempts) == 1:
            raise DatabaseUnavailable("connection refused")
        return {"ok": True}

    definition = {"StartAt": "Only", "States": {"Only": task("fetch", {"Payload.$": "$"}, None)}}
    with moto_lambda.in_process(flaky):
        result = _run(sfn, definition, "flaky", {}, role)
    assert result["status"] == "SUCCEEDED", result
    assert attempts == ["fetch", "fetch"]
    assert retry_sleeps == [1]
    failed = [e for e in result["history"] if e["type"] == "TaskFailed"]
    assert failed[0]["taskFailedEventDetails"]["error"] == "DatabaseUnavailable"


def test_redrive_reruns_only_the_failed_leaderboard_from_its_failed_state(
    sfn: Any, retry_sleeps: list[float]
) -> None:
    role = create_role(REGION)
    create_functions(role, REGION)
    stages = ToyStages()
    stages.broken.add(("publish", "genetics"))
    with moto_lambda.in_process(stages):
        failed = _run(
            sfn, DEFINITION, "run-1", {"leaderboards": ["overall", "genetics", "immunology"]}, role
        )
    assert failed["status"] == "FAILED"
    assert failed["error"] == "InvalidInput"

    plan = plan_redrive(failed["history"], DEFINITION)
    assert plan.state == "RankAndPublish"
    statuses = [(i.index, i.status, i.state) for i in plan.iterations]
    assert statuses == [(0, "SUCCEEDED", None), (1, "RESUME", "Publish"), (2, "RESTART", None)]

    derived, redrive_input = redrive_definition(
        DEFINITION, plan, execution_id=failed["executionArn"], execution_name="run-1"
    )
    stages.broken.clear()
    stages.calls.clear()
    with moto_lambda.in_process(stages):
        redriven = _run(sfn, derived, "run-1-redrive-1", redrive_input, role)
    assert redriven["status"] == "SUCCEEDED", redriven
    called = [(name, e.get("leaderboard")) for name, e in stages.calls]
    assert called == [
        ("publish", "genetics"),
        ("rank", "immunology"),
        ("publish", "immunology"),
        ("notify", None),
    ]
    output = json.loads(redriven["output"])
    assert output["notified"] == ["publish-overall", "publish-genetics", "publish-immunology"]
    assert output["run"] == {"id": "run-1"}


def test_redrive_of_a_failed_first_state_keeps_the_execution_name(sfn: Any) -> None:
    role = create_role(REGION)
    create_functions(role, REGION)
    stages = ToyStages()

    def fetch_down(name: str, event: Any, context: moto_lambda.InvocationContext) -> Any:
        if name == "fetch":
            raise InvalidInput("bad request")
        return stages(name, event, context)

    with moto_lambda.in_process(fetch_down):
        failed = _run(sfn, DEFINITION, "run-2", {"leaderboards": ["overall"]}, role)
    plan = plan_redrive(failed["history"], DEFINITION)
    assert (plan.state, plan.input, plan.iterations) == ("Fetch", {"leaderboards": ["overall"]}, [])
    derived, redrive_input = redrive_definition(
        DEFINITION, plan, execution_id="x", execution_name="run-2"
    )
    with moto_lambda.in_process(stages):
        redriven = _run(sfn, derived, "run-2-redrive-1", redrive_input, role)
    assert json.loads(redriven["output"])["run"] == {"id": "run-2"}


def test_a_succeeded_execution_is_not_redrivable(sfn: Any) -> None:
    role = create_role(REGION)
    create_functions(role, REGION)
    with moto_lambda.in_process(ToyStages()):
        done = _run(sfn, DEFINITION, "run-3", {"leaderboards": ["overall"]}, role)
    assert done["status"] == "SUCCEEDED"
    with pytest.raises(NotRedrivable):
        plan_redrive(done["history"], DEFINITION)


def test_a_failed_redrive_can_be_redriven_again(sfn: Any, retry_sleeps: list[float]) -> None:
    role = create_role(REGION)
    create_functions(role, REGION)
    stages = ToyStages()
    stages.broken.add(("publish", "genetics"))
    with moto_lambda.in_process(stages):
        first = _run(
            sfn, DEFINITION, "run-4", {"leaderboards": ["overall", "genetics", "immunology"]}, role
        )
        derived, redrive_input = redrive_definition(
            DEFINITION,
            plan_redrive(first["history"], DEFINITION),
            execution_id="x",
            execution_name="run-4",
        )
        stages.broken = {("rank", "immunology")}
        second = _run(sfn, derived, "run-4-redrive-1", redrive_input, role)
        assert second["status"] == "FAILED"
        plan = plan_redrive(second["history"], derived)
        assert [i.status for i in plan.iterations] == ["SUCCEEDED", "SUCCEEDED", "RESUME"]
        derived2, redrive_input2 = redrive_definition(
            derived, plan, execution_id="x", execution_name="run-4"
        )
        stages.broken.clear()
        stages.calls.clear()
        third = _run(sfn, derived2, "run-4-redrive-2", redrive_input2, role)
    assert third["status"] == "SUCCEEDED", third
    assert [(n, e.get("leaderboard")) for n, e in stages.calls] == [
        ("rank", "immunology"),
        ("publish", "immunology"),
        ("notify", None),
    ]
    assert json.loads(third["output"])["notified"] == [
        "publish-overall",
        "publish-genetics",
        "publish-immunology",
    ]
