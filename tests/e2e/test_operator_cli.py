"""``leaderboard trigger``, ``status`` and ``redrive`` against Step Functions in moto, and
``status`` of local execution records: what the operator sees, and the one-line refusals."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from cli import main, stepfunctions
from common.errors import DatabaseUnavailable, InvalidInput
from local import moto_lambda
from local.redrive import plan_redrive, redrive_definition
from local.store import ExecutionRecord, ExecutionStore
from tests.toy_pipeline import DEFINITION, create_functions, create_role

REGION = "eu-west-1"
ACCOUNT = "123456789012"
MACHINE = "bixarena-leaderboard-test"
SM_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{MACHINE}"
CALLER = f"arn:aws:sts::{ACCOUNT}:user/moto"


@dataclass
class Stages:
    """Stage functions with the pipeline's payload shape; ``broken`` makes a publish fail and
    ``flaky`` makes a rank fail once with a transient error (retried)."""

    broken: set[str]
    flaky: set[str]

    def __call__(self, name: str, event: Any, context: moto_lambda.InvocationContext) -> Any:
        if name == "fetch":
            return {
                "run": {"run_id": "r"},
                "leaderboards": [{"slug": s} for s in event["request"]["leaderboards"]],
            }
        if name == "rank" and event["leaderboard"]["slug"] in self.flaky:
            self.flaky.discard(event["leaderboard"]["slug"])
            raise DatabaseUnavailable("connection refused")
        if name == "publish" and event["leaderboard"]["slug"] in self.broken:
            raise InvalidInput(f"publish refuses {event['leaderboard']['slug']}")
        return event if name != "notify" else {"posted": True}


@pytest.fixture(autouse=True)
def _no_ambient_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in (stepfunctions.STATE_MACHINE_ARN_ENV, "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def idle_sfn() -> Iterator[Any]:
    """Step Functions in moto that does not execute: started executions stay RUNNING."""
    with mock_aws():
        sfn = boto3.client("stepfunctions", region_name=REGION)
        sfn.create_state_machine(
            name=MACHINE, definition=json.dumps(DEFINITION), roleArn=create_role(REGION)
        )
        yield sfn


@pytest.fixture
def live() -> Iterator[tuple[Any, Stages]]:
    """Step Functions in moto that executes, with the stages dispatched in-process."""
    stages = Stages(broken=set(), flaky=set())
    with (
        mock_aws(config={"stepfunctions": {"execute_state_machine": True}}),
        moto_lambda.in_process(stages),
    ):
        role = create_role(REGION)
        create_functions(role, REGION)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        sfn.create_state_machine(name=MACHINE, definition=json.dumps(DEFINITION), roleArn=role)
        yield sfn, stages


def _execute(sfn: Any, name: str, leaderboards: list[str]) -> dict[str, Any]:
    arn = sfn.start_execution(
        stateMachineArn=SM_ARN, name=name, input=json.dumps({"leaderboards": leaderboards})
    )["executionArn"]
    deadline = time.monotonic() + 30
    while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the execution did not end"
        time.sleep(0.02)
    return dict(described)


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, err
    return err


def _states(out: str) -> list[str]:
    """The state lines of a status view, durations left out."""
    lines = out.split("\n  states\n", 1)[1].splitlines()
    states = [line for line in lines if line.startswith("    ")]
    return [" ".join(re.sub(r" -?\d+\.\d\d s", "", line).split()) for line in states]


# --- trigger --------------------------------------------------------------------------------------
def test_trigger_starts_a_manual_run_as_the_caller(
    idle_sfn: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    code, out, err = _cli(
        capsys,
        "trigger",
        "--leaderboards",
        "overall,genomics",
        "--bootstrap",
        "200",
        "--state-machine-arn",
        SM_ARN,
    )
    assert (code, err) == (0, "")
    [execution] = idle_sfn.list_executions(stateMachineArn=SM_ARN)["executions"]
    assert execution["executionArn"] in out
    assert execution["name"].startswith("manual-")
    request = json.loads(
        idle_sfn.describe_execution(executionArn=execution["executionArn"])["input"]
    )
    assert f"correlation id {request['correlation_id']}" in out
    assert request["leaderboards"] == ["overall", "genomics"]
    assert request["bootstrap"] == 200
    assert request["trigger"] == "manual"
    assert request["requested_by"] == CALLER
    run_at = datetime.fromisoformat(request["run_at"].replace("Z", "+00:00"))
    assert before <= run_at <= datetime.now(UTC)


def test_trigger_private_asks_for_private_snapshots(
    idle_sfn: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(
        capsys, "trigger", "--leaderboards", "overall", "--private", "--state-machine-arn", SM_ARN
    )
    assert (code, err) == (0, "")
    [execution] = idle_sfn.list_executions(stateMachineArn=SM_ARN)["executions"]
    request = json.loads(
        idle_sfn.describe_execution(executionArn=execution["executionArn"])["input"]
    )
    assert request["publish"] is False
    assert "  snapshots      private (BixArena shows nothing new)" in out
    _cli(capsys, "trigger", "--leaderboards", "genomics", "--state-machine-arn", SM_ARN)
    published = [
        json.loads(idle_sfn.describe_execution(executionArn=e["executionArn"])["input"])
        for e in idle_sfn.list_executions(stateMachineArn=SM_ARN)["executions"]
    ]
    assert sorted(r["publish"] for r in published) == [False, True]


def test_trigger_reads_the_state_machine_from_the_environment(
    idle_sfn: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(stepfunctions.STATE_MACHINE_ARN_ENV, SM_ARN)
    code, _, _ = _cli(capsys, "trigger", "--leaderboards", "all")
    assert code == 0
    [execution] = idle_sfn.list_executions(stateMachineArn=SM_ARN)["executions"]
    described = idle_sfn.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"])["leaderboards"] == "all"


def test_trigger_refuses_a_run_over_a_running_leaderboard(
    idle_sfn: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    running = idle_sfn.start_execution(
        stateMachineArn=SM_ARN,
        name="scheduled-1",
        input=json.dumps({"leaderboards": ["overall", "genetics"]}),
    )["executionArn"]
    code, out, err = _cli(
        capsys, "trigger", "--leaderboards", "genetics", "--state-machine-arn", SM_ARN
    )
    assert (code, out) == (1, "")
    assert "RunInProgress: execution scheduled-1" in _one_line(err)
    assert "genetics" in err and running in err
    assert len(idle_sfn.list_executions(stateMachineArn=SM_ARN)["executions"]) == 1

    code, _, _ = _cli(
        capsys, "trigger", "--leaderboards", "genomics", "--state-machine-arn", SM_ARN
    )
    assert code == 0
    code, _, err = _cli(capsys, "trigger", "--leaderboards", "all", "--state-machine-arn", SM_ARN)
    # Every running execution overlaps "all"; the newest one is named.
    assert code == 1 and "RunInProgress: execution manual-" in _one_line(err)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--leaderboards", "overall,astrology"],
            "--leaderboards: unknown leaderboard(s) astrology",
        ),
        (["--leaderboards", "Overall!"], "--leaderboards: 'Overall!' is not a valid leaderboard"),
        (["--leaderboards", "overall", "--bootstrap", "5"], "--bootstrap: must be between 10"),
        (
            ["--leaderboards", "overall", "--state-machine-arn", "bixarena"],
            "--state-machine-arn: 'bixarena' is not a state machine ARN",
        ),
    ],
)
def test_trigger_refuses_bad_input_in_one_line_and_starts_nothing(
    idle_sfn: Any, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    if "--state-machine-arn" not in arguments:
        arguments = [*arguments, "--state-machine-arn", SM_ARN]
    code, out, err = _cli(capsys, "trigger", *arguments)
    assert (code, out) == (2, "")
    assert message in _one_line(err)
    assert idle_sfn.list_executions(stateMachineArn=SM_ARN)["executions"] == []


def test_trigger_without_an_arn_refuses_aws_options(capsys: pytest.CaptureFixture[str]) -> None:
    # Without an ARN the run would be local: an AWS option means the operator forgot the ARN.
    code, out, err = _cli(capsys, "trigger", "--leaderboards", "overall", "--profile", "ops")
    assert (code, out) == (2, "")
    assert "--profile apply to AWS only" in _one_line(err)


def test_trigger_names_a_missing_profile(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(
        capsys,
        "trigger",
        "--leaderboards",
        "overall",
        "--state-machine-arn",
        SM_ARN,
        "--profile",
        "no-such-profile",
    )
    assert code == 2
    assert "--profile: no AWS profile named 'no-such-profile'" in _one_line(err)


def test_trigger_wait_follows_the_run_to_its_end(
    live: tuple[Any, Stages], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(
        capsys,
        "trigger",
        "--leaderboards",
        "overall,genetics",
        "--state-machine-arn",
        SM_ARN,
        "--wait",
    )
    assert (code, err) == (0, "")
    progress = out.index("✓ Fetch")
    assert progress < out.index("✓ Rank [overall]") < out.index("✓ Publish [genetics]")
    assert out.index("✓ Publish [genetics]") < out.index("✓ Notify") < out.index(": SUCCEEDED")


def test_trigger_wait_exits_1_naming_the_failed_state(
    live: tuple[Any, Stages], capsys: pytest.CaptureFixture[str]
) -> None:
    _, stages = live
    stages.broken.add("genetics")
    code, out, _ = _cli(
        capsys,
        "trigger",
        "--leaderboards",
        "overall,genetics",
        "--state-machine-arn",
        SM_ARN,
        "--wait",
    )
    assert code == 1
    assert "✗ Publish [genetics]: InvalidInput: publish refuses genetics" in out
    assert (
        "failed at  Publish [genetics] in RankAndPublish iteration 1: InvalidInput: "
        "publish refuses genetics"
    ) in out
    assert "redrive    leaderboard redrive arn:aws:states:" in out


# --- status ---------------------------------------------------------------------------------------
FAILED_STATES = [
    "✓ Fetch",
    "✗ RankAndPublish",
    "✓ Rank [overall] 2 attempts",
    "✓ Publish [overall]",
    "✓ Rank [genetics]",
    "✗ Publish [genetics] InvalidInput",
]


@pytest.fixture
def failed(live: tuple[Any, Stages], retry_sleeps: list[float]) -> dict[str, Any]:
    """A FAILED execution: overall's rank retried once, genetics' publish refused."""
    sfn, stages = live
    stages.broken.add("genetics")
    stages.flaky.add("overall")
    described = _execute(sfn, "run-1", ["overall", "genetics"])
    assert described["status"] == "FAILED"
    return described


def test_status_of_a_failed_execution_names_the_failing_state(
    failed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    arn = failed["executionArn"]
    code, out, err = _cli(capsys, "status", arn)
    assert (code, err) == (0, "")
    assert out.startswith("run-1: FAILED\n")
    assert f"  execution  {arn}\n" in out
    assert _states(out) == FAILED_STATES
    assert (
        "  failed at  Publish [genetics] in RankAndPublish iteration 1: InvalidInput: "
        "publish refuses genetics\n"
    ) in out
    assert f"  redrive    leaderboard redrive {arn}\n" in out
    assert (
        f"  console    https://{REGION}.console.aws.amazon.com/states/home?region={REGION}"
        f"#/v2/executions/details/{arn}\n"
    ) in out


def test_status_by_name_and_the_latest_executions(
    failed: dict[str, Any], live: tuple[Any, Stages], capsys: pytest.CaptureFixture[str]
) -> None:
    sfn, stages = live
    stages.broken.clear()
    _execute(sfn, "run-2", ["overall"])
    code, by_name, _ = _cli(capsys, "status", "run-1", "--state-machine-arn", SM_ARN)
    _, by_arn, _ = _cli(capsys, "status", failed["executionArn"])
    assert code == 0
    assert _states(by_name) == _states(by_arn)

    code, listing, _ = _cli(capsys, "status", "--state-machine-arn", SM_ARN)
    assert code == 0
    rows = [line.split()[:2] for line in listing.splitlines()[2:]]
    assert rows == [["run-2", "SUCCEEDED"], ["run-1", "FAILED"]]
    _, limited, _ = _cli(capsys, "status", "--state-machine-arn", SM_ARN, "--limit", "1")
    assert [line.split()[0] for line in limited.splitlines()[2:]] == ["run-2"]
    # More than ListExecutions answers at once is bad input (2), not a failed command (1).
    with pytest.raises(SystemExit) as exited:
        main.main(["status", "--state-machine-arn", SM_ARN, "--limit", "1001"])
    assert exited.value.code == 2
    assert "--limit: expected 1 to 1000, got 1001" in capsys.readouterr().err


def test_status_of_a_running_execution(
    idle_sfn: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    idle_sfn.start_execution(stateMachineArn=SM_ARN, name="run-3", input="{}")
    monkeypatch.setenv(stepfunctions.STATE_MACHINE_ARN_ENV, SM_ARN)
    code, out, _ = _cli(capsys, "status", "run-3")
    assert code == 0
    assert out.startswith("run-3: RUNNING\n")
    assert "still running" in out and "failed at" not in out and "redrive    " not in out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([f"{SM_ARN.replace('stateMachine', 'execution')}:nope"], "Execution Does Not Exist"),
        (["arn:aws:states:eu-west-1:bad"], "EXECUTION: 'arn:aws:states:eu-west-1:bad' is not an"),
        (["no such name!", "--state-machine-arn", SM_ARN], "is not an execution name or ARN"),
    ],
)
def test_status_refuses_unknown_executions_in_one_line(
    idle_sfn: Any, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    code, out, err = _cli(capsys, "status", *arguments)
    assert (code, out) == (2, "")
    assert message in _one_line(err)


# --- status of local executions -------------------------------------------------------------------
def _record(
    sfn: Any, described: dict[str, Any], definition: dict[str, Any], **extra: Any
) -> ExecutionRecord:
    """What the local runner saves for an execution it followed (JSON round trip included)."""
    events = sfn.get_execution_history(executionArn=described["executionArn"], maxResults=1000)
    return ExecutionRecord(
        name=described["name"],
        execution_arn=described["executionArn"],
        status=described["status"],
        input=json.loads(described["input"]),
        output=json.loads(described["output"]) if described.get("output") else None,
        error=described.get("error"),
        cause=described.get("cause"),
        started_at=described["startDate"].astimezone(UTC).isoformat(),
        stopped_at=described["stopDate"].astimezone(UTC).isoformat(),
        definition=definition,
        history=json.loads(json.dumps(events["events"], default=str)),
        **extra,
    )


def test_status_of_a_local_execution_reads_like_an_aws_one(
    failed: dict[str, Any],
    live: tuple[Any, Stages],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sfn, _ = live
    store = ExecutionStore(tmp_path)
    store.save(_record(sfn, failed, DEFINITION))
    _, aws, _ = _cli(capsys, "status", failed["executionArn"])
    code, local, err = _cli(capsys, "status", "run-1", "--state-dir", str(tmp_path))
    assert (code, err) == (0, "")
    assert _states(local) == _states(aws) == FAILED_STATES
    assert "failed at  Publish [genetics] in RankAndPublish iteration 1: InvalidInput" in local
    assert "  redrive    leaderboard redrive run-1\n" in local
    assert "console" not in local
    _, latest, _ = _cli(capsys, "status", "--state-dir", str(tmp_path))
    assert latest == local


def test_status_of_a_redriven_local_execution_shows_each_redrive(
    failed: dict[str, Any],
    live: tuple[Any, Stages],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sfn, stages = live
    events = sfn.get_execution_history(executionArn=failed["executionArn"], maxResults=1000)
    derived, redrive_input = redrive_definition(
        DEFINITION,
        plan_redrive(events["events"], DEFINITION),
        execution_id=failed["executionArn"],
        execution_name="run-1",
    )
    role = _role_arn()
    machine = sfn.create_state_machine(
        name=f"{MACHINE}-redrive-1", definition=json.dumps(derived), roleArn=role
    )["stateMachineArn"]
    stages.broken.clear()
    arn = sfn.start_execution(
        stateMachineArn=machine, name="run-1-redrive-1", input=json.dumps(redrive_input)
    )["executionArn"]
    while (redriven := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        time.sleep(0.02)
    store = ExecutionStore(tmp_path)
    store.save(_record(sfn, redriven, derived, redrive_of="run-1"))
    original = _record(sfn, failed, DEFINITION, redrives=["run-1-redrive-1"])
    original.status, original.error, original.cause = "SUCCEEDED", None, None
    store.save(original)

    code, out, _ = _cli(capsys, "status", "--state-dir", str(tmp_path))
    assert code == 0
    first, second = out.split("\nredrive 1: ")
    assert first.startswith("run-1: SUCCEEDED\n")
    assert "  redrives   1\n" in first
    assert "failed at" not in first and "leaderboard redrive" not in first
    assert second.startswith("run-1-redrive-1: SUCCEEDED\n")
    # Only what the redrive ran: genetics' publish, then notify; no Redrive* plumbing states.
    assert _states(second) == ["✓ RankAndPublish", "✓ Publish [genetics]", "✓ Notify"]


def _role_arn() -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/sfn"


def test_status_without_local_executions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _cli(capsys, "status", "--state-dir", str(tmp_path))
    assert code == 0
    assert out.startswith("no local executions in ")
    code, _, err = _cli(capsys, "status", "local-x", "--state-dir", str(tmp_path))
    assert code == 2
    assert "no local execution named 'local-x'" in _one_line(err)


# --- redrive --------------------------------------------------------------------------------------
def test_redrive_of_a_succeeded_execution_says_why_not(
    live: tuple[Any, Stages], capsys: pytest.CaptureFixture[str]
) -> None:
    sfn, _ = live
    done = _execute(sfn, "run-ok", ["overall"])
    code, out, err = _cli(capsys, "redrive", done["executionArn"])
    assert (code, out) == (1, "")
    assert (
        "ExecutionNotRedrivable: run-ok cannot be redriven: it SUCCEEDED: only a FAILED, "
        "TIMED_OUT or ABORTED execution can be redriven"
    ) in _one_line(err)


def test_redrive_of_a_running_execution_says_why_not(
    idle_sfn: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = idle_sfn.start_execution(stateMachineArn=SM_ARN, name="run-4", input="{}")["executionArn"]
    code, _, err = _cli(capsys, "redrive", arn)
    assert code == 1
    assert "run-4 cannot be redriven: it is still RUNNING" in _one_line(err)


def test_redrive_where_step_functions_lacks_redrive_execution(
    failed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # moto has no RedriveExecution: the operator gets one line, not a traceback.
    code, out, err = _cli(capsys, "redrive", failed["executionArn"])
    assert (code, out) == (1, "")
    assert (
        "RedriveUnsupported: this Step Functions endpoint does not implement RedriveExecution"
        in _one_line(err)
    )


def test_redrive_of_an_unknown_execution_is_bad_input(
    idle_sfn: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = f"{SM_ARN.replace('stateMachine', 'execution')}:gone"
    code, _, err = _cli(capsys, "redrive", arn)
    assert code == 2
    assert f"{arn}: Execution Does Not Exist" in _one_line(err)


def test_redrive_of_a_local_execution_refuses_aws_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = _cli(capsys, "redrive", "local-x", "--region", "us-east-1")
    assert code == 2
    assert "--region apply to AWS only" in _one_line(err)


NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("description", "reason"),
    [
        ({"status": "FAILED", "stopDate": NOW - timedelta(days=1)}, None),
        ({"status": "TIMED_OUT", "stopDate": NOW - timedelta(days=13, hours=23)}, None),
        (
            {"status": "FAILED", "stopDate": NOW - timedelta(days=15)},
            "it stopped on 2026-02-14, more than 14 days ago",
        ),
        ({"status": "SUCCEEDED", "stopDate": NOW}, "it SUCCEEDED"),
        ({"status": "RUNNING", "redriveCount": 2}, "redrive 2 of it is already running"),
        (
            {
                "status": "FAILED",
                "stopDate": NOW,
                "redriveStatus": "NOT_REDRIVABLE",
                "redriveStatusReason": "Execution is SUCCEEDED and cannot be redriven",
            },
            "Execution is SUCCEEDED and cannot be redriven",
        ),
    ],
)
def test_redrive_refusals(description: dict[str, Any], reason: str | None) -> None:
    refusal = stepfunctions.redrive_refusal(description, NOW)
    assert refusal == reason if reason is None else reason in str(refusal)


def test_redrive_errors_from_step_functions() -> None:
    arn = f"{SM_ARN.replace('stateMachine', 'execution')}:run-1"
    refused = ClientError(
        {
            "Error": {
                "Code": "ExecutionNotRedrivable",
                "Message": "Execution can only be redriven within 14 days",
            }
        },
        "RedriveExecution",
    )
    error = stepfunctions.redrive_error(refused, arn)
    assert isinstance(error, stepfunctions.ExecutionNotRedrivable)
    assert str(error) == f"{arn} cannot be redriven: Execution can only be redriven within 14 days"
    unknown = ClientError({"Error": {"Code": "UnknownOperationException"}}, "RedriveExecution")
    assert isinstance(stepfunctions.redrive_error(unknown, arn), stepfunctions.RedriveUnsupported)
    missing = ClientError(
        {"Error": {"Code": "ExecutionDoesNotExist", "Message": "no such execution"}},
        "RedriveExecution",
    )
    assert isinstance(stepfunctions.redrive_error(missing, arn), InvalidInput)


def test_the_redrive_report() -> None:
    arn = f"{SM_ARN.replace('stateMachine', 'execution')}:run-1"
    lines = stepfunctions.format_redrive(
        {
            "executionArn": arn,
            "name": "run-1",
            "status": "RUNNING",
            "redriveCount": 1,
            "redriveDate": NOW,
        }
    )
    assert lines[0] == "run-1: redrive 1 started, the execution is RUNNING"
    assert "  redriven   2026-03-01 12:00:00 UTC" in lines
    assert f"  follow it  leaderboard status {arn}" in lines
