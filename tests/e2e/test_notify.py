"""The notify stage end to end: the local Slack stand-in, SNS / Secrets Manager / Step Functions
from moto, and for failure mode a real failed execution read back from moto's history."""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from common.errors import (
    ConfigurationError,
    InvalidInput,
    NotEnoughData,
    SlackRejected,
    SlackUnavailable,
    TopicUnavailable,
)
from local import eventbridge, moto_lambda
from local.moto_lambda import InvocationContext
from local.slack_server import SlackServer, block_problems
from stages.notify.handler import handler
from tests.notify_events import notify_event

REGION = "us-east-1"
ACCOUNT = "123456789012"
CONTEXT = InvocationContext(
    function_name="leaderboard-notify",
    invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:leaderboard-notify",
    memory_limit_in_mb=256,
    timeout_s=60,
)


@dataclass
class Aws:
    topic_arn: str
    queue_url: str
    sqs: Any
    sfn: Any
    role_arn: str

    def sns_messages(self) -> list[dict[str, Any]]:
        """What SNS delivered to the queue subscribed to the topic: Subject and Message."""
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        )
        return [json.loads(m["Body"]) for m in response.get("Messages", [])]


@pytest.fixture(scope="module")
def server() -> Iterator[SlackServer]:
    with SlackServer() as running:
        yield running


@pytest.fixture
def slack_server(server: SlackServer, monkeypatch: pytest.MonkeyPatch) -> SlackServer:
    server.reset()
    monkeypatch.setenv("SLACK_WEBHOOK_URL", server.url)
    return server


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    for name in ("SLACK_WEBHOOK_URL", "SLACK_SECRET_ARN", "SNS_TOPIC_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("ENVIRONMENT_NAME", "test")
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sns = boto3.client("sns", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        topic_arn = sns.create_topic(Name="leaderboard-alerts")["TopicArn"]
        queue_url = sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        monkeypatch.setenv("SNS_TOPIC_ARN", topic_arn)
        role_arn = boto3.client("iam", region_name=REGION).create_role(
            RoleName="sfn", AssumeRolePolicyDocument="{}"
        )["Role"]["Arn"]
        yield Aws(
            topic_arn,
            queue_url,
            sqs,
            boto3.client("stepfunctions", region_name=REGION),
            role_arn,
        )


def _texts(message: dict[str, Any]) -> str:
    parts = [message["text"]]
    for block in message["blocks"]:
        if "text" in block:
            parts.append(block["text"]["text"])
        parts += [f["text"] for f in block.get("fields", [])]
        parts += [e["text"] for e in block.get("elements", [])]
    return "\n".join(parts)


def _assert_secret_absent(
    secret: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    exc: BaseException | None = None,
) -> None:
    captured = capsys.readouterr()
    shown = "".join(traceback.format_exception(exc)) + repr(exc) if exc else ""
    for where, text in (
        ("the exception", shown),
        ("log records", caplog.text),
        ("stdout", captured.out),
        ("stderr", captured.err),
    ):
        assert secret not in text, f"the webhook URL leaked into {where}"


# --- success mode ----------------------------------------------------------------------------------
def test_success_posts_one_message_and_publishes_to_sns(
    aws: Aws, slack_server: SlackServer
) -> None:
    result = handler(dict(notify_event()), CONTEXT)
    assert result["posted"] is True and result["mode"] == "success"
    assert isinstance(result["sns_message_id"], str)
    [message] = slack_server.received
    assert block_problems(message) == []
    text = _texts(message)
    assert "Leaderboard snapshot published (test)" in text
    assert "1. *gpt-4o*  1123.4 (95% CI [1111.2, 1135.2])  ↑2" in text
    assert "immunology: fewer than 30 battles (12)" in text
    assert "manual by alice@example.org" in text
    [published] = aws.sns_messages()
    assert published["MessageId"] == result["sns_message_id"]
    assert published["Subject"] == (
        "Leaderboard snapshot published (test): snapshot_2025-06-01_03-00-00"
    )
    assert "1. gpt-4o  1123.4 (95% CI [1111.2, 1135.2])  ↑2" in published["Message"]


def test_webhook_from_secrets_manager_unreachable_slack_is_transient_and_secret(
    aws: Aws,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    # botocore's own DEBUG lines dump every request and response body, secret values included
    # (Lambda's default level is WARNING); every other logger is watched at DEBUG.
    caplog.set_level(logging.INFO, logger="botocore")
    secret = "T0SECRET/B0SECRET/xoxb-not-for-logs"
    arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="slack-webhook",
        SecretString=json.dumps({"webhook_url": f"https://127.0.0.1:9/services/{secret}"}),
    )["ARN"]
    monkeypatch.setenv("SLACK_SECRET_ARN", arn)
    with pytest.raises(SlackUnavailable, match="could not be reached") as raised:
        handler(dict(notify_event()), CONTEXT)
    # SNS goes first, so Slack trouble does not hold back the SNS message.
    assert len(aws.sns_messages()) == 1
    _assert_secret_absent(secret, caplog, capsys, raised.value)


def test_without_slack_configured_the_stage_still_succeeds(
    aws: Aws, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    result = handler(dict(notify_event()), CONTEXT)
    assert result["posted"] is False and result["sns_message_id"]
    assert "Slack is not configured" in caplog.text
    assert len(aws.sns_messages()) == 1


def test_with_nothing_configured_the_stage_succeeds_quietly(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SNS_TOPIC_ARN")
    assert handler(dict(notify_event()), CONTEXT) == {
        "posted": False,
        "sns_message_id": None,
        "mode": "success",
    }
    assert aws.sns_messages() == []


@pytest.mark.parametrize(
    ("mode", "error"),
    [("500", SlackUnavailable), ("429", SlackUnavailable), ("404", SlackRejected)],
)
def test_slack_failures_raise_named_errors_without_the_url(
    aws: Aws,
    slack_server: SlackServer,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    mode: str,
    error: type[Exception],
) -> None:
    caplog.set_level(logging.DEBUG)
    slack_server.mode = mode
    with pytest.raises(error) as raised:
        handler(dict(notify_event()), CONTEXT)
    assert slack_server.received == []
    _assert_secret_absent(slack_server.secret, caplog, capsys, raised.value)


def test_sns_refusal_is_logged_when_slack_got_the_message(
    aws: Aws,
    slack_server: SlackServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("SNS_TOPIC_ARN", f"arn:aws:sns:{REGION}:{ACCOUNT}:no-such-topic")
    result = handler(dict(notify_event()), CONTEXT)
    assert result == {"posted": True, "sns_message_id": None, "mode": "success"}
    assert len(slack_server.received) == 1
    assert "SNS publish failed" in caplog.text


def test_sns_refusal_is_raised_when_slack_is_not_configured(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SNS_TOPIC_ARN", f"arn:aws:sns:{REGION}:{ACCOUNT}:no-such-topic")
    with pytest.raises(ConfigurationError, match=r"SNS refused the message .*NotFound"):
        handler(dict(notify_event()), CONTEXT)


def test_unreachable_sns_is_transient(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    # An endpoint moto does not intercept, on a port nothing listens on: a refused connection.
    monkeypatch.setenv("AWS_ENDPOINT_URL_SNS", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(TopicUnavailable, match="SNS could not be reached"):
        handler(dict(notify_event()), CONTEXT)


def test_a_bad_event_is_refused_naming_the_field(aws: Aws, slack_server: SlackServer) -> None:
    with pytest.raises(InvalidInput, match=r"^event\.skipped: missing"):
        handler({"mode": "success", "run": {}, "results": []}, CONTEXT)
    other = {"source": "aws.states", "detail-type": "Step Functions State Machine Status Change"}
    with pytest.raises(InvalidInput, match=r"^event: expected source 'aws.states' and detail-type"):
        handler(other, CONTEXT)
    assert slack_server.attempts == 0 and aws.sns_messages() == []


# --- failure mode ----------------------------------------------------------------------------------
def _task(function: str, parameters: dict[str, Any], nxt: str | None) -> dict[str, Any]:
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": function, **parameters},
        "OutputPath": "$.Payload",
    }
    state.update({"Next": nxt} if nxt else {"End": True})
    return state


PIPELINE: dict[str, Any] = {
    "StartAt": "Fetch",
    "States": {
        "Fetch": _task("fetch", {"Payload.$": "$"}, "RankAndPublish"),
        "RankAndPublish": {
            "Type": "Map",
            "ItemsPath": "$.leaderboards",
            "ItemSelector": {"run.$": "$.run", "leaderboard.$": "$$.Map.Item.Value"},
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "Rank",
                "States": {
                    "Rank": _task("rank", {"Payload.$": "$"}, "Publish"),
                    "Publish": _task("publish", {"Payload.$": "$"}, None),
                },
            },
            "End": True,
        },
    },
}


def _stages(name: str, event: Any, context: moto_lambda.InvocationContext) -> Any:
    """Toy stages with our payload shapes; genetics has too few votes to rank."""
    if name == "fetch":
        return {
            "run": {"correlation_id": event["correlation_id"]},
            "leaderboards": [{"slug": s} for s in event["leaderboards"]],
        }
    if name == "rank" and event["leaderboard"]["slug"] == "genetics":
        raise NotEnoughData("genetics: 12 battles, at least 30 needed")
    return event


def _execute(
    aws: Aws, definition: dict[str, Any], name: str, request: dict[str, Any]
) -> dict[str, Any]:
    """Run an execution in moto to its end; return the status-change event EventBridge would send."""
    machine = aws.sfn.create_state_machine(
        name=f"sm-{name}", definition=json.dumps(definition), roleArn=aws.role_arn
    )["stateMachineArn"]
    execution = aws.sfn.start_execution(
        stateMachineArn=machine, name=name, input=json.dumps(request)
    )["executionArn"]
    deadline = time.monotonic() + 30
    while (described := aws.sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the execution did not finish"
        time.sleep(0.02)
    return eventbridge.status_change_event(
        execution,
        machine,
        described["name"],
        described["status"],
        int(described["startDate"].timestamp() * 1000),
        int(described["stopDate"].timestamp() * 1000),
        described["input"],
        described.get("error"),
        described.get("cause"),
        REGION,
        ACCOUNT,
    )


def test_failure_of_a_real_execution_names_state_error_and_cause(
    aws: Aws, slack_server: SlackServer
) -> None:
    lam = boto3.client("lambda", region_name=REGION)
    for function in ("fetch", "rank", "publish"):
        lam.create_function(
            FunctionName=function,
            Role=aws.role_arn,
            PackageType="Image",
            Code={"ImageUri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/leaderboard:local"},
        )
    request = {
        "leaderboards": ["overall", "genetics"],
        "correlation_id": "corr-fail-1",
        "trigger": "manual",
        "requested_by": "carol",
    }
    with moto_lambda.in_process(_stages):
        event = _execute(aws, PIPELINE, "fail-1", request)
    assert event["detail"]["status"] == "FAILED"

    result = handler(event, CONTEXT)

    assert result["posted"] is True and result["mode"] == "failure"
    [message] = slack_server.received
    assert block_problems(message) == []
    text = _texts(message)
    assert message["blocks"][0]["text"]["text"] == "🚨 Leaderboard run failed at Rank (test)"
    assert "*Failed state*\n`Rank` in `RankAndPublish`, iteration 1" in text
    assert "*Leaderboard*\ngenetics" in text
    assert "*Error*\n`NotEnoughData`" in text
    assert "```NotEnoughData: genetics: 12 battles, at least 30 needed```" in text
    assert "stackTrace" not in text and "File " not in text
    assert "*Trigger*\nmanual by carol" in text
    execution_arn = event["detail"]["executionArn"]
    assert f"#/v2/executions/details/{execution_arn}|open the execution>" in text
    assert f"`aws stepfunctions redrive-execution --execution-arn {execution_arn}`" in text
    # The production alert names the console and the AWS CLI; the local run adds its own hint.
    assert "leaderboard redrive" not in text
    assert "correlation id `corr-fail-1`" in text
    [published] = aws.sns_messages()
    assert published["Subject"] == "Leaderboard run failed at Rank (test): NotEnoughData"
    assert "aws stepfunctions redrive-execution" in published["Message"]
    assert "leaderboard redrive" not in published["Message"]


def test_failure_of_a_fail_state(aws: Aws, slack_server: SlackServer) -> None:
    definition = {
        "StartAt": "Prepare",
        "States": {
            "Prepare": {"Type": "Pass", "Next": "Give up"},
            "Give up": {"Type": "Fail", "Error": "NoLeaderboards", "Cause": "nothing to rank"},
        },
    }
    event = _execute(aws, definition, "fail-2", {})
    assert handler(event, CONTEXT)["posted"] is True
    text = _texts(slack_server.received[0])
    assert "*Failed state*\n`Give up`" in text
    assert "*Error*\n`NoLeaderboards`" in text and "```nothing to rank```" in text


def test_failure_alert_goes_out_even_when_the_history_cannot_be_read(
    aws: Aws, slack_server: SlackServer, caplog: pytest.LogCaptureFixture
) -> None:
    event = eventbridge.status_change_event(
        f"arn:aws:states:{REGION}:{ACCOUNT}:execution:gone:run-9",
        f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:gone",
        "run-9", "TIMED_OUT", 1_748_746_800_000, 1_748_750_400_000,
        json.dumps({"correlation_id": "corr-9"}), "States.Timeout", None, REGION, ACCOUNT,
    )  # fmt: skip
    assert handler(event, CONTEXT) == {
        "posted": True,
        "sns_message_id": aws.sns_messages()[0]["MessageId"],
        "mode": "failure",
    }
    text = _texts(slack_server.received[0])
    assert "Leaderboard run timed out (test)" in text
    assert "unknown (history unavailable)" in text and "*Ran for*\n1h 00m" in text
    assert "the execution history could not be read" in text
    assert "execution history unavailable" in caplog.text
