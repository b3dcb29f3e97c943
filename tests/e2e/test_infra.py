"""The CDK stack, checked on its synthesized templates (no AWS account, no Docker).

Two syntheses per session, each with cdk-nag's AwsSolutions checks: the sandbox (no context) and
a production context (existing VPC, subnets, secrets, schedule). Every test reads those.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import infra  # noqa: F401  (first: it puts Node 22 on PATH before jsii starts Node)

# isort: split
from aws_cdk import App, Validations
from aws_cdk.assertions import Match, Template
from cfnlint.api import lint_file

from common.admin import BODY_KEYS
from common.errors import TRANSIENT_ERRORS
from infra import check_image, stack_template
from infra.app import build_app
from infra.config import CONTEXT_KEYS, InvalidContext, parse_context
from infra.state_machine import STAGES, render_definition

REPO = Path(__file__).resolve().parents[2]
STAGE_HANDLERS = {
    stage: f"stages.{stage}.handler.handler" for stage in (*STAGES, "admin", "authorizer")
}
PROD_CONTEXT = {
    "environment": "prod",
    "vpcId": "vpc-0123456789abcdef0",
    "privateSubnetIds": "subnet-0123456789abcdef0,subnet-0fedcba9876543210",
    "availabilityZones": '["us-east-1a", "us-east-1b"]',
    "databaseSecurityGroupId": "sg-0123456789abcdef0",
    "databasePort": "5433",
    "databaseSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:bixarena/db-AbCdEf",
    "slackSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:bixarena/slack-XyZ123",
    "scheduleExpression": "cron(30 3 * * ? *)",
    "scheduleTimeZone": "America/Los_Angeles",
    "alarmEmail": "ops@example.org",
    "leaderboards": "overall,genomics",
    "bootstrap": "500",
    "mapMaxConcurrency": "6",
    "jwksUrl": "https://auth.bixarena.example/.well-known/jwks.json",
    "createApiGatewayLogsRole": "false",
    "minBattles": "50",
    "leaderboardFilters": '{"min_confidence": 0.8, "leaderboards": {"overall": {"window_days": 9}}}',
    "styleControlLeaderboards": '{"overall": "overall-style-control"}',
}
STAR_ONLY_ACTIONS = {
    # Actions IAM accepts only with Resource "*" (no resource-level permissions).
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "states:ListStateMachines",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}


@dataclass
class Synthesis:
    app: App
    stack_name: str
    outdir: Path
    template: dict[str, Any]
    nag_failure: str | None

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.template["Resources"]

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return stack_template.resources_of_type(self.template, kind)

    def function_ids(self) -> dict[str, str]:
        """stage -> logical id of its function (from the image command)."""
        return {
            spec.handler.split(".")[1]: logical_id
            for logical_id, spec in stack_template.functions(self.template).items()
        }

    def function(self, stage: str) -> dict[str, Any]:
        props: dict[str, Any] = self.resources[self.function_ids()[stage]]["Properties"]
        return props


def _synthesize(outdir: Path, context: dict[str, Any] | None) -> Synthesis:
    app, stack = build_app(context, outdir=str(outdir))
    failure = None
    try:
        app.synth()
    except RuntimeError as exc:  # jsii surfaces cdk-nag's ValidationFailed as a RuntimeError
        if "ValidationFailed" not in str(exc):
            raise
        failure = str(exc)
    template = json.loads((outdir / f"{stack.stack_name}.template.json").read_text())
    return Synthesis(app, stack.stack_name, outdir, template, failure)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Synthesis:
    return _synthesize(tmp_path_factory.mktemp("cdk-sandbox"), None)


@pytest.fixture(scope="session")
def production(tmp_path_factory: pytest.TempPathFactory) -> Synthesis:
    return _synthesize(tmp_path_factory.mktemp("cdk-production"), PROD_CONTEXT)


class _Placeholder(dict[str, str]):
    """Any attribute of a resource with no chosen value resolves to a readable placeholder."""

    def __init__(self, logical_id: str) -> None:
        super().__init__()
        self.logical_id = logical_id

    def __missing__(self, attribute: str) -> str:
        return f"<{self.logical_id}.{attribute}>"


def _resolver(synthesis: Synthesis) -> dict[str, dict[str, str]]:
    values: dict[str, dict[str, str]] = {
        logical_id: _Placeholder(logical_id) for logical_id in synthesis.resources
    }
    for stage, logical_id in synthesis.function_ids().items():
        values[logical_id] = {
            "Arn": f"arn:aws:lambda:us-east-1:123456789012:function:{stage}",
            "Ref": stage,
        }
    return values


STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/bixarena-leaderboard-sandbox/1"
PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackId": STACK_ID,
}


def _resolve(synthesis: Synthesis, value: Any) -> Any:
    return stack_template.resolve(value, _resolver(synthesis), PSEUDO)


def _definition(synthesis: Synthesis) -> dict[str, Any]:
    _, definition = stack_template.state_machine(synthesis.template)
    parsed: dict[str, Any] = json.loads(_resolve(synthesis, definition))
    return parsed


def _walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


# --- the state machine ----------------------------------------------------------------------------
def test_definition_runs_fetch_then_map_of_rank_and_publish_then_notify(sandbox: Synthesis) -> None:
    definition = _definition(sandbox)
    states = definition["States"]
    assert definition["StartAt"] == "Fetch"
    assert definition["TimeoutSeconds"] == 7200
    assert list(states) == ["Fetch", "RankAndPublish", "Notify"]
    assert states["Fetch"]["Next"] == "RankAndPublish"
    assert states["RankAndPublish"]["Next"] == "Notify"
    assert states["Notify"]["End"] is True

    fan_out = states["RankAndPublish"]
    assert fan_out["Type"] == "Map"
    assert fan_out["ItemsPath"] == "$.leaderboards"
    assert fan_out["ItemSelector"] == {"run.$": "$.run", "leaderboard.$": "$$.Map.Item.Value"}
    assert fan_out["ResultPath"] == "$.results"
    assert fan_out["MaxConcurrency"] == 4
    processor = fan_out["ItemProcessor"]
    assert processor["ProcessorConfig"] == {"Mode": "INLINE"}
    assert processor["StartAt"] == "Rank"
    assert processor["States"]["Rank"]["Next"] == "Publish"
    assert processor["States"]["Publish"]["End"] is True

    tasks = {"Fetch": states["Fetch"], "Notify": states["Notify"], **processor["States"]}
    for name, task in tasks.items():
        assert task["Type"] == "Task"
        assert task["Resource"] == "arn:aws:states:::lambda:invoke"
        assert task["OutputPath"] == "$.Payload"
        stage = name.lower()
        assert task["Parameters"]["FunctionName"].endswith(f":function:{stage}"), name
    assert states["Fetch"]["Parameters"]["Payload"] == {
        "request.$": "$",
        "execution_id.$": "$$.Execution.Id",
        "execution_name.$": "$$.Execution.Name",
    }
    assert processor["States"]["Rank"]["Parameters"]["Payload.$"] == "$"
    assert processor["States"]["Publish"]["Parameters"]["Payload.$"] == "$"
    assert states["Notify"]["Parameters"]["Payload"] == {
        "mode": "success",
        "run.$": "$.run",
        "results.$": "$.results",
        "skipped.$": "$.skipped",
        "left_out.$": "$.left_out",
    }
    # No state passes the execution's start time: moto cannot serialize it.
    assert "StartTime" not in json.dumps(definition)


def test_every_task_retries_the_named_transient_and_lambda_service_errors(
    sandbox: Synthesis,
) -> None:
    """docs/state-machine.md, "Retries": the entries as deployed, written out here."""
    definition = _definition(sandbox)
    tasks = {
        name: node
        for container in _walk(definition)
        if isinstance(container, dict) and isinstance(container.get("States"), dict)
        for name, node in container["States"].items()
        if node.get("Type") == "Task"
    }
    assert sorted(tasks) == ["Fetch", "Notify", "Publish", "Rank"]
    database = {
        "ErrorEquals": ["DatabaseUnavailable"],
        "IntervalSeconds": 2,
        "BackoffRate": 2,
        "MaxAttempts": 28,
        "MaxDelaySeconds": 30,
        "JitterStrategy": "FULL",
    }
    transient = {
        "ErrorEquals": [e for e in TRANSIENT_ERRORS if e != "DatabaseUnavailable"],
        "IntervalSeconds": 2,
        "BackoffRate": 2,
        "MaxAttempts": 6,
        "MaxDelaySeconds": 30,
        "JitterStrategy": "FULL",
    }
    lambda_service = {
        "ErrorEquals": [
            "Lambda.ClientExecutionTimeoutException",
            "Lambda.ServiceException",
            "Lambda.AWSLambdaException",
            "Lambda.SdkClientException",
        ],
        "IntervalSeconds": 2,
        "BackoffRate": 2,
        "MaxAttempts": 6,
        "JitterStrategy": "FULL",
    }
    throttled = {
        "ErrorEquals": ["Lambda.TooManyRequestsException"],
        "IntervalSeconds": 2,
        "BackoffRate": 2,
        "MaxAttempts": 15,
        "MaxDelaySeconds": 60,
        "JitterStrategy": "FULL",
    }
    rank_timeout = {
        "ErrorEquals": ["Sandbox.Timedout", "Lambda.Unknown"],
        "IntervalSeconds": 5,
        "BackoffRate": 1,
        "MaxAttempts": 1,
    }
    for name, task in tasks.items():
        expected = [database, transient, lambda_service, throttled]
        if name == "Rank":
            expected.append(rank_timeout)
        assert task["Retry"] == expected, name
        assert "TimeoutSeconds" not in task, "the function's own timeout applies"
    assert {"DatabaseUnavailable", "StorageUnavailable", "SlackUnavailable"} <= set(
        TRANSIENT_ERRORS
    )


def test_no_state_catches_errors_and_there_is_no_fail_state(sandbox: Synthesis) -> None:
    definition = _definition(sandbox)
    nodes = [node for node in _walk(definition) if isinstance(node, dict)]
    assert not [node for node in nodes if "Catch" in node]
    assert not [node for node in nodes if node.get("Type") == "Fail"]


def test_the_definition_module_renders_the_deployed_definition(sandbox: Synthesis) -> None:
    arns = {stage: f"arn:aws:lambda:us-east-1:123456789012:function:{stage}" for stage in STAGES}
    rendered = render_definition(arns, max_concurrency=4)
    deployed = _definition(sandbox)
    deployed.pop("TimeoutSeconds")  # the state machine's setting, not the chain's
    assert rendered == deployed


def test_state_machine_is_standard_logged_traced_and_named_for_the_environment(
    sandbox: Synthesis,
) -> None:
    template = Template.from_json(sandbox.template)
    template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "StateMachineName": "bixarena-leaderboard-sandbox",
            "StateMachineType": "STANDARD",
            "TracingConfiguration": {"Enabled": True},
            "LoggingConfiguration": {
                "Level": "ALL",
                "IncludeExecutionData": True,
                "Destinations": [
                    {
                        "CloudWatchLogsLogGroup": {
                            "LogGroupArn": {"Fn::GetAtt": [Match.any_value(), "Arn"]}
                        }
                    }
                ],
            },
        },
    )


# --- schedule and failure path ------------------------------------------------------------------
def test_schedule_starts_the_state_machine_daily_with_the_scheduled_time(
    sandbox: Synthesis,
) -> None:
    (schedule,) = sandbox.of_type("AWS::Scheduler::Schedule").values()
    props = schedule["Properties"]
    assert props["ScheduleExpression"] == "cron(0 2 * * ? *)"
    assert props["ScheduleExpressionTimezone"] == "UTC"
    assert props["State"] == "ENABLED"
    target = props["Target"]
    machine_id = next(iter(sandbox.of_type("AWS::StepFunctions::StateMachine")))
    assert target["Arn"] == {"Ref": machine_id}
    assert json.loads(target["Input"]) == {
        "leaderboards": "all",
        "bootstrap": 1000,
        "trigger": "scheduled",
        "run_at": "<aws.scheduler.scheduled-time>",
    }
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    queue_id = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    assert sandbox.resources[queue_id]["Properties"]["SqsManagedSseEnabled"] is True
    queue_policy = next(iter(sandbox.of_type("AWS::SQS::QueuePolicy").values()))
    assert {
        "Action": "sqs:*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Resource": {"Fn::GetAtt": [queue_id, "Arn"]},
    } in queue_policy["Properties"]["PolicyDocument"]["Statement"]
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    statements = _statements_of_role(sandbox, role_id)
    assert {(s["Action"], json.dumps(s["Resource"])) for s in statements} == {
        ("states:StartExecution", json.dumps({"Ref": machine_id})),
        ("sqs:SendMessage", json.dumps({"Fn::GetAtt": [queue_id, "Arn"]})),
    }


def test_failed_timed_out_or_aborted_executions_invoke_notify_with_the_raw_event(
    sandbox: Synthesis,
) -> None:
    (rule,) = sandbox.of_type("AWS::Events::Rule").values()
    machine_id = next(iter(sandbox.of_type("AWS::StepFunctions::StateMachine")))
    assert rule["Properties"]["EventPattern"] == {
        "source": ["aws.states"],
        "detail-type": ["Step Functions Execution Status Change"],
        "detail": {
            "status": ["FAILED", "TIMED_OUT", "ABORTED"],
            "stateMachineArn": [{"Ref": machine_id}],
        },
    }
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [sandbox.function_ids()["notify"], "Arn"]}
    assert "Input" not in target and "InputPath" not in target and "InputTransformer" not in target
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 21600}
    queue_id = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    assert queue_id.startswith("UndeliveredFailureEvents"), "its own queue, not the schedule's"
    (schedule,) = sandbox.of_type("AWS::Scheduler::Schedule").values()
    assert schedule["Properties"]["Target"]["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0] != queue_id
    rule_id = next(iter(sandbox.of_type("AWS::Events::Rule")))
    assert {
        "Action": "sqs:SendMessage",
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Resource": {"Fn::GetAtt": [queue_id, "Arn"]},
        "Condition": {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]}}},
    } in [
        {k: v for k, v in statement.items() if k != "Sid"}
        for statement in _queue_policy(sandbox, queue_id)
    ]


def test_notify_in_failure_mode_gets_lambdas_retries_then_keeps_the_event(
    sandbox: Synthesis,
) -> None:
    """The rule invokes notify asynchronously: when it raises (Slack down, a bug), Lambda retries
    twice, then sends the event with the error to an on-failure destination queue."""
    (config,) = sandbox.of_type("AWS::Lambda::EventInvokeConfig").values()
    props = config["Properties"]
    assert props["FunctionName"] == {"Ref": sandbox.function_ids()["notify"]}
    assert (props["MaximumRetryAttempts"], props["MaximumEventAgeInSeconds"]) == (2, 21600)
    queue_id = props["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
    assert queue_id.startswith("UnsentFailureAlerts")
    assert "OnSuccess" not in props["DestinationConfig"]


def _queue_policy(synthesis: Synthesis, queue_id: str) -> list[dict[str, Any]]:
    (policy,) = [
        p["Properties"]
        for p in synthesis.of_type("AWS::SQS::QueuePolicy").values()
        if {"Ref": queue_id} in p["Properties"]["Queues"]
    ]
    statements: list[dict[str, Any]] = policy["PolicyDocument"]["Statement"]
    return statements


def test_every_dead_letter_queue_is_encrypted_ssl_only_and_alarmed(sandbox: Synthesis) -> None:
    """The schedule's, the failure rule's and notify's queues: whatever lands in any of them
    raises an alarm on the alert topic at once, and stays two weeks for the operator."""
    queues = sandbox.of_type("AWS::SQS::Queue")
    (schedule,) = sandbox.of_type("AWS::Scheduler::Schedule").values()
    (rule,) = sandbox.of_type("AWS::Events::Rule").values()
    (invoke_config,) = sandbox.of_type("AWS::Lambda::EventInvokeConfig").values()
    dead_letter_ids = {
        schedule["Properties"]["Target"]["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0],
        rule["Properties"]["Targets"][0]["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0],
        invoke_config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][
            0
        ],
    }
    assert dead_letter_ids == set(queues), "three distinct queues, and no other queue"
    topic_id = next(iter(sandbox.of_type("AWS::SNS::Topic")))
    alarms = [a["Properties"] for a in sandbox.of_type("AWS::CloudWatch::Alarm").values()]
    for queue_id, queue in queues.items():
        assert queue["Properties"] == {
            "MessageRetentionPeriod": 14 * 86400,
            "SqsManagedSseEnabled": True,
        }
        assert {
            "Action": "sqs:*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Resource": {"Fn::GetAtt": [queue_id, "Arn"]},
        } in _queue_policy(sandbox, queue_id)
        (alarm,) = [
            a
            for a in alarms
            if a["Dimensions"]
            == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
        ]
        assert (alarm["Namespace"], alarm["MetricName"]) == (
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
        )
        assert (alarm["Statistic"], alarm["Threshold"], alarm["EvaluationPeriods"]) == (
            "Maximum",
            1,
            1,
        )
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["Period"] <= 300
        assert alarm["AlarmActions"] == alarm["OKActions"] == [{"Ref": topic_id}]


def test_each_function_s_errors_and_the_admin_endpoint_s_5xx_raise_an_alarm(
    sandbox: Synthesis,
) -> None:
    topic_id = next(iter(sandbox.of_type("AWS::SNS::Topic")))
    alarms = [a["Properties"] for a in sandbox.of_type("AWS::CloudWatch::Alarm").values()]
    errors = {
        a["Dimensions"][0]["Value"]["Ref"]: a
        for a in alarms
        if (a["Namespace"], a["MetricName"]) == ("AWS/Lambda", "Errors")
    }
    functions = sandbox.function_ids()
    # The authorizer's refusals are Lambda errors by API Gateway's contract: no alarm on those.
    assert set(errors) == {i for stage, i in functions.items() if stage != "authorizer"}
    assert len(errors) == 5
    for alarm in errors.values():
        assert alarm["Dimensions"][0]["Name"] == "FunctionName"
        assert (alarm["Statistic"], alarm["Threshold"], alarm["Period"]) == ("Sum", 1, 300)
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["AlarmActions"] == alarm["OKActions"] == [{"Ref": topic_id}]
    (api_alarm,) = [a for a in alarms if a["Namespace"] == "AWS/ApiGateway"]
    (api,) = sandbox.of_type("AWS::ApiGateway::RestApi").values()
    assert api_alarm["MetricName"] == "5XXError"
    assert api_alarm["Dimensions"] == [{"Name": "ApiName", "Value": api["Properties"]["Name"]}]
    assert (api_alarm["Statistic"], api_alarm["Threshold"]) == ("Sum", 1)
    assert api_alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert api_alarm["AlarmActions"] == api_alarm["OKActions"] == [{"Ref": topic_id}]
    # Every alarm of the stack reaches the operators.
    assert all(a["AlarmActions"] == [{"Ref": topic_id}] for a in alarms)


def _alarm(synthesis: Synthesis, metric_name: str) -> dict[str, Any]:
    (alarm,) = [
        a["Properties"]
        for a in synthesis.of_type("AWS::CloudWatch::Alarm").values()
        if a["Properties"]["MetricName"] == metric_name
    ]
    return alarm


def test_alarms_on_failed_timed_out_and_nothing_published_in_26_hours(sandbox: Synthesis) -> None:
    machine_id = next(iter(sandbox.of_type("AWS::StepFunctions::StateMachine")))
    topic_id = next(iter(sandbox.of_type("AWS::SNS::Topic")))
    states = [
        a for a in sandbox.of_type("AWS::CloudWatch::Alarm").values()
        if a["Properties"]["Namespace"] == "AWS/States"
    ]  # fmt: skip
    assert len(states) == 2
    for name in ("ExecutionsFailed", "ExecutionsTimedOut"):
        alarm = _alarm(sandbox, name)
        assert alarm["Namespace"] == "AWS/States"
        assert alarm["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": machine_id}}]
        assert (alarm["Statistic"], alarm["Threshold"]) == ("Sum", 1)
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]
    # The missed day: no leaderboard made public (notify's count), not merely no execution that
    # succeeded -- a run that skipped every leaderboard succeeds and publishes nothing.
    stale = _alarm(sandbox, "LeaderboardsPublished")
    assert stale["Namespace"] == "BixArena/Leaderboard"
    assert stale["Dimensions"] == [
        {"Name": "service", "Value": "bixarena-leaderboard"},
        {"Name": "stage", "Value": "notify"},
    ]
    assert (stale["Statistic"], stale["Threshold"]) == ("Sum", 1)
    assert stale["ComparisonOperator"] == "LessThanThreshold"
    assert stale["TreatMissingData"] == "breaching"
    assert stale["Period"] * stale["EvaluationPeriods"] == 26 * 3600
    assert stale["DatapointsToAlarm"] == stale["EvaluationPeriods"]
    # CloudWatch: period x evaluation periods <= 7 days (<= 1 day for periods under an hour).
    assert stale["Period"] >= 3600 and stale["Period"] * stale["EvaluationPeriods"] <= 7 * 86400
    assert stale["AlarmActions"] == [{"Ref": topic_id}]


def test_alert_topic_is_encrypted_ssl_only_and_mails_the_operators(
    sandbox: Synthesis, production: Synthesis
) -> None:
    ((topic_id, topic),) = sandbox.of_type("AWS::SNS::Topic").items()
    key_id = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = sandbox.resources[key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    assert {
        "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
        "Effect": "Allow",
        "Principal": {"Service": "cloudwatch.amazonaws.com"},
        "Resource": "*",
    } in key["KeyPolicy"]["Statement"]
    (policy,) = sandbox.of_type("AWS::SNS::TopicPolicy").values()
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert not sandbox.of_type("AWS::SNS::Subscription")
    (subscription,) = production.of_type("AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == "ops@example.org"
    assert topic_id


def test_dashboard_shows_executions_stage_durations_errors_and_the_stage_metrics(
    sandbox: Synthesis,
) -> None:
    (dashboard,) = sandbox.of_type("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(_resolve(sandbox, dashboard["Properties"]["DashboardBody"]))
    for needle in (
        "ExecutionsSucceeded",
        "ExecutionsFailed",
        "Duration",
        "Errors",
        "Throttles",
        "BixArena/Leaderboard",
        "BattlesFetched",
        "ModelsRanked",
        "SnapshotPublished",
        "StageDuration",
        "RunDuration",
    ):
        assert needle in body, needle


# --- functions, network, data -------------------------------------------------------------------
def test_six_functions_run_one_image_with_their_handler(sandbox: Synthesis) -> None:
    ids = sandbox.function_ids()
    assert set(ids) == {"fetch", "rank", "publish", "notify", "admin", "authorizer"}
    for stage in ids:
        props = sandbox.function(stage)
        assert props["PackageType"] == "Image"
        assert props["ImageConfig"]["Command"] == [STAGE_HANDLERS[stage]]
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["Architectures"] == ["x86_64"]
        assert props["FunctionName"] == f"bixarena-leaderboard-sandbox-{stage}"
    images = {json.dumps(sandbox.function(stage)["Code"]) for stage in ids}
    assert len(images) == 1
    assets = json.loads((sandbox.outdir / f"{sandbox.stack_name}.assets.json").read_text())
    assert len(assets["dockerImages"]) == 1


def test_functions_are_sized_for_five_million_votes(sandbox: Synthesis) -> None:
    sizes = {
        stage: (props["MemorySize"], props["Timeout"], props.get("ReservedConcurrentExecutions"))
        for stage in STAGES
        for props in [sandbox.function(stage)]
    }
    assert sizes == {
        "fetch": (2048, 600, 2),
        "rank": (3008, 600, None),
        "publish": (1024, 300, 4),
        "notify": (256, 60, None),
    }
    assert sandbox.function("admin")["Timeout"] < 29  # API Gateway's integration timeout
    # Only requests the authorizer let through reach the admin function: two at a time is plenty.
    assert sandbox.function("admin")["ReservedConcurrentExecutions"] == 2
    assert sandbox.function("authorizer")["Timeout"] < 29


def test_stage_functions_run_in_private_subnets_with_narrow_security_groups(
    sandbox: Synthesis,
) -> None:
    subnets = {
        logical_id: resource["Properties"]
        for logical_id, resource in sandbox.of_type("AWS::EC2::Subnet").items()
    }
    isolated = {i for i in subnets if "isolated" in i}
    egress = {i for i in subnets if "egress" in i}
    groups: dict[str, str] = {}
    for stage in STAGES:
        vpc_config = sandbox.function(stage)["VpcConfig"]
        subnet_ids = {ref["Ref"] for ref in vpc_config["SubnetIds"]}
        assert subnet_ids == (egress if stage == "notify" else isolated), stage
        (group,) = vpc_config["SecurityGroupIds"]
        groups[stage] = group["Fn::GetAtt"][0]
    assert "VpcConfig" not in sandbox.function("admin")
    assert "VpcConfig" not in sandbox.function("authorizer")
    assert groups["fetch"] == groups["publish"] != groups["rank"] == groups["notify"]

    database_clients, https_only = groups["fetch"], groups["rank"]
    db_group = next(
        i
        for i in sandbox.of_type("AWS::EC2::SecurityGroup")
        if i.startswith("DatabaseSecurityGroup")
    )

    def egress_rules(group: str) -> list[dict[str, Any]]:
        inline = sandbox.resources[group]["Properties"].get("SecurityGroupEgress", [])
        separate = [
            r["Properties"]
            for r in sandbox.of_type("AWS::EC2::SecurityGroupEgress").values()
            if r["Properties"]["GroupId"] == {"Fn::GetAtt": [group, "GroupId"]}
        ]
        return [*inline, *separate]

    for group in (database_clients, https_only):
        for rule in egress_rules(group):
            assert rule["IpProtocol"] == "tcp"
            if rule["FromPort"] == 5432:
                assert group == database_clients
                assert rule["DestinationSecurityGroupId"] == {"Fn::GetAtt": [db_group, "GroupId"]}
            else:
                assert (rule["FromPort"], rule["ToPort"]) == (443, 443)
    assert any(r["FromPort"] == 5432 for r in egress_rules(database_clients))
    ingress = [r["Properties"] for r in sandbox.of_type("AWS::EC2::SecurityGroupIngress").values()]
    assert {
        "Description": "PostgreSQL from the leaderboard pipeline (fetch, publish)",
        "FromPort": 5432,
        "ToPort": 5432,
        "IpProtocol": "tcp",
        "GroupId": {"Fn::GetAtt": [db_group, "GroupId"]},
        "SourceSecurityGroupId": {"Fn::GetAtt": [database_clients, "GroupId"]},
    } in ingress


def test_sandbox_vpc_has_its_endpoints_and_flow_logs(sandbox: Synthesis) -> None:
    endpoints = [r["Properties"] for r in sandbox.of_type("AWS::EC2::VPCEndpoint").values()]
    services = sorted(json.dumps(_resolve(sandbox, e["ServiceName"])) for e in endpoints)
    assert len(endpoints) == 3
    assert any("s3" in s for s in services)
    assert any("secretsmanager" in s for s in services)
    assert any("states" in s for s in services)
    assert sandbox.of_type("AWS::EC2::FlowLog")
    assert len(sandbox.of_type("AWS::EC2::NatGateway")) == 1


def test_function_environments_follow_the_state_machine_doc(sandbox: Synthesis) -> None:
    env = {
        stage: sandbox.function(stage)["Environment"]["Variables"]
        for stage in sandbox.function_ids()
    }
    common_keys = {"ENVIRONMENT_NAME", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"}
    data_keys = common_keys | {"ARTIFACTS_BUCKET", "ARTIFACTS_PREFIX"}
    assert set(env["fetch"]) == data_keys | {"DATABASE_SECRET_ARN"}
    assert set(env["rank"]) == data_keys
    assert set(env["publish"]) == data_keys | {"DATABASE_SECRET_ARN"}
    assert set(env["notify"]) == common_keys | {"SLACK_SECRET_ARN", "SNS_TOPIC_ARN"}
    token_keys = {"JWT_ISSUER", "JWT_AUDIENCE", "ADMIN_CLAIM", "ADMIN_ROLE"}
    assert set(env["admin"]) == common_keys | token_keys | {"STATE_MACHINE_ARN"}
    assert set(env["authorizer"]) == common_keys | token_keys
    assert env["fetch"]["POWERTOOLS_SERVICE_NAME"] == "bixarena-leaderboard"
    assert env["fetch"]["POWERTOOLS_METRICS_NAMESPACE"] == "BixArena/Leaderboard"
    assert env["fetch"]["ARTIFACTS_PREFIX"] == "runs/"
    assert (
        env["admin"]["JWT_ISSUER"],
        env["admin"]["ADMIN_CLAIM"],
        env["admin"]["ADMIN_ROLE"],
    ) == (
        "urn:bixarena:auth",
        "roles",
        "admin",
    )
    resolved_arn = _resolve(sandbox, env["admin"]["STATE_MACHINE_ARN"])
    assert (
        resolved_arn
        == "arn:aws:states:us-east-1:123456789012:stateMachine:bixarena-leaderboard-sandbox"
    )
    # The local runner gives all functions one environment: shared keys must agree.
    for key in set().union(*env.values()):
        assert len({json.dumps(e[key]) for e in env.values() if key in e}) == 1, key


def test_artifacts_bucket_is_encrypted_private_ssl_only_and_expires_runs(
    sandbox: Synthesis,
) -> None:
    buckets = sandbox.of_type("AWS::S3::Bucket")
    artifacts_id = next(i for i in buckets if i.startswith("ArtifactsBucket"))
    logs_id = next(i for i in buckets if i.startswith("AccessLogsBucket"))
    for logical_id in (artifacts_id, logs_id):
        props = buckets[logical_id]["Properties"]
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
        ]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert "VersioningConfiguration" not in props
        policy = next(
            p["Properties"]["PolicyDocument"]
            for p in sandbox.of_type("AWS::S3::BucketPolicy").values()
            if p["Properties"]["Bucket"] == {"Ref": logical_id}
        )
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in policy["Statement"]
        )
    artifacts = buckets[artifacts_id]["Properties"]
    assert {
        "ExpirationInDays": 30,
        "Id": "expire-run-artifacts",
        "Prefix": "runs/",
        "Status": "Enabled",
    } in (artifacts["LifecycleConfiguration"]["Rules"])
    assert artifacts["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": logs_id}


def test_every_log_group_has_a_retention_and_every_function_logs_to_its_own(
    sandbox: Synthesis,
) -> None:
    groups = sandbox.of_type("AWS::Logs::LogGroup")
    assert groups
    for logical_id, group in groups.items():
        assert group["Properties"]["RetentionInDays"] == 90, logical_id
    targets = [
        sandbox.function(stage)["LoggingConfig"]["LogGroup"]["Ref"]
        for stage in sandbox.function_ids()
    ]
    assert len(set(targets)) == len(targets) and set(targets) <= set(groups)
    machine = next(iter(sandbox.of_type("AWS::StepFunctions::StateMachine").values()))
    destination = machine["Properties"]["LoggingConfiguration"]["Destinations"][0]
    assert destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0] in groups
    # The only function without its own log group is CDK's deploy-time custom resource that
    # strips the sandbox VPC's default security group (@aws-cdk/aws-ec2:restrictDefaultSecurityGroup).
    unlogged = [
        logical_id
        for logical_id, fn in sandbox.of_type("AWS::Lambda::Function").items()
        if "LoggingConfig" not in fn["Properties"]
    ]
    assert [i for i in unlogged if not i.startswith("CustomVpcRestrictDefaultSG")] == []


# --- IAM ----------------------------------------------------------------------------------------
def _policy_documents(synthesis: Synthesis) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical_id, resource in synthesis.resources.items():
        props = resource.get("Properties", {})
        kind = resource["Type"]
        if kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            yield logical_id, props["PolicyDocument"]
        elif kind == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                yield logical_id, policy["PolicyDocument"]
        elif kind in ("AWS::S3::BucketPolicy", "AWS::SNS::TopicPolicy", "AWS::SQS::QueuePolicy"):
            yield logical_id, props["PolicyDocument"]
        # A KMS key policy's "*" means the key itself: not walked here.


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements_of_role(synthesis: Synthesis, role_id: str) -> list[dict[str, Any]]:
    return [
        statement
        for resource in synthesis.resources.values()
        if resource["Type"] == "AWS::IAM::Policy"
        and {"Ref": role_id} in resource["Properties"].get("Roles", [])
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
    ]


@pytest.mark.parametrize("which", ["sandbox", "production"])
def test_no_policy_statement_uses_a_wildcard_where_a_narrower_resource_exists(
    which: str, request: pytest.FixtureRequest
) -> None:
    synthesis: Synthesis = request.getfixturevalue(which)
    walked = 0
    for logical_id, document in _policy_documents(synthesis):
        for statement in document["Statement"]:
            walked += 1
            actions = _as_list(statement["Action"])
            resources = _as_list(statement.get("Resource", []))
            if statement["Effect"] == "Deny":
                continue  # resource policies deny non-TLS access with s3:* / sqs:* on purpose
            for action in actions:
                assert not action.endswith(":*") and action != "*", (logical_id, action)
            if "*" in resources:
                assert len(resources) == 1, (logical_id, statement)
                extra = set(actions) - STAR_ONLY_ACTIONS
                assert not extra, f"{logical_id}: {sorted(extra)} on '*' has a narrower resource"
    assert walked > 20


def _function_statements(synthesis: Synthesis, stage: str) -> list[dict[str, Any]]:
    role_id = synthesis.function(stage)["Role"]["Fn::GetAtt"][0]
    return _statements_of_role(synthesis, role_id)


def _grants(synthesis: Synthesis, stage: str) -> set[tuple[str, str]]:
    """(action, resolved resource) pairs of a function's role, minus logs/ENI/X-Ray basics."""
    pairs = set()
    for statement in _function_statements(synthesis, stage):
        for action in _as_list(statement["Action"]):
            if action.split(":")[0] in ("logs", "xray", "ec2"):
                continue
            for resource in _as_list(statement["Resource"]):
                pairs.add((action, _resolve(synthesis, resource)))
    return pairs


def test_each_function_may_do_exactly_what_its_stage_does(sandbox: Synthesis) -> None:
    machine = "arn:aws:states:us-east-1:123456789012:stateMachine:bixarena-leaderboard-sandbox"
    executions = "arn:aws:states:us-east-1:123456789012:execution:bixarena-leaderboard-sandbox:*"
    bucket = next(i for i in sandbox.of_type("AWS::S3::Bucket") if i.startswith("ArtifactsBucket"))
    bucket_arn, objects = f"<{bucket}.Arn>", f"<{bucket}.Arn>/runs/*"
    db_secret = next(
        i for i in sandbox.of_type("AWS::SecretsManager::Secret") if i.startswith("Database")
    )
    slack_secret = next(
        i for i in sandbox.of_type("AWS::SecretsManager::Secret") if i.startswith("Slack")
    )
    topic = next(iter(sandbox.of_type("AWS::SNS::Topic")))
    key = next(iter(sandbox.of_type("AWS::KMS::Key")))
    read = {("s3:GetObject", objects), ("s3:ListBucket", bucket_arn)}
    write = {("s3:PutObject", objects), ("s3:AbortMultipartUpload", objects)}
    assert _grants(sandbox, "fetch") == read | write | {
        ("secretsmanager:GetSecretValue", f"<{db_secret}.Ref>"),
        ("states:DescribeExecution", executions),
    }
    assert _grants(sandbox, "rank") == read | write
    assert _grants(sandbox, "publish") == read | {
        ("secretsmanager:GetSecretValue", f"<{db_secret}.Ref>")
    }
    unsent = next(i for i in sandbox.of_type("AWS::SQS::Queue") if i.startswith("UnsentFailure"))
    assert _grants(sandbox, "notify") == {
        ("sqs:SendMessage", f"<{unsent}.Arn>"),
        ("secretsmanager:GetSecretValue", f"<{slack_secret}.Ref>"),
        ("states:GetExecutionHistory", executions),
        ("sns:Publish", f"<{topic}.Ref>"),
        ("kms:Decrypt", f"<{key}.Arn>"),
        ("kms:GenerateDataKey", f"<{key}.Arn>"),
    }
    assert _grants(sandbox, "authorizer") == set(), "it reads the JWKS over HTTPS, nothing more"
    # DescribeExecution: the admin function reads running executions' input to refuse overlaps.
    assert _grants(sandbox, "admin") == {
        ("states:StartExecution", machine),
        ("states:ListExecutions", machine),
        ("states:DescribeExecution", executions),
    }
    for stage in ("fetch", "rank", "publish"):
        (listing,) = [
            s for s in _function_statements(sandbox, stage) if s["Action"] == "s3:ListBucket"
        ]
        # GetObject's 404 rests on ListBucket, and its check carries no s3:prefix to match.
        assert "Condition" not in listing


def test_operator_policy_grants_exactly_run_watch_and_redrive(sandbox: Synthesis) -> None:
    (policy,) = sandbox.of_type("AWS::IAM::ManagedPolicy").values()
    assert policy["Properties"]["ManagedPolicyName"] == "bixarena-leaderboard-sandbox-operator"
    grants = {
        (action, _resolve(sandbox, statement["Resource"]))
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        for action in _as_list(statement["Action"])
    }
    machine = "arn:aws:states:us-east-1:123456789012:stateMachine:bixarena-leaderboard-sandbox"
    executions = "arn:aws:states:us-east-1:123456789012:execution:bixarena-leaderboard-sandbox:*"
    assert grants == {
        ("states:StartExecution", machine),
        ("states:ListExecutions", machine),
        ("states:DescribeStateMachine", machine),
        ("states:DescribeExecution", executions),
        ("states:GetExecutionHistory", executions),
        ("states:DescribeStateMachineForExecution", executions),
        ("states:RedriveExecution", executions),
        ("states:StopExecution", executions),
        # The console's way to the execution an alert names; the stack's outputs.
        ("states:ListStateMachines", "*"),
        ("cloudformation:DescribeStacks", STACK_ID),
    }
    roles = [
        r["Properties"]
        for r in sandbox.of_type("AWS::IAM::Role").values()
        if r["Properties"].get("RoleName") == "bixarena-leaderboard-sandbox-operator"
    ]
    (role,) = roles
    assert role["ManagedPolicyArns"] == [
        {"Ref": next(iter(sandbox.of_type("AWS::IAM::ManagedPolicy")))}
    ]


# --- admin endpoint -----------------------------------------------------------------------------
def test_admin_endpoint_posts_to_the_admin_function_throttled_and_logged(
    sandbox: Synthesis,
) -> None:
    template = Template.from_json(sandbox.template)
    resources = {
        r["Properties"]["PathPart"]: r["Properties"]
        for r in sandbox.of_type("AWS::ApiGateway::Resource").values()
    }
    assert set(resources) == {"admin", "generate-snapshot"}
    (method,) = sandbox.of_type("AWS::ApiGateway::Method").values()
    props = method["Properties"]
    assert props["HttpMethod"] == "POST"
    assert props["AuthorizationType"] == "CUSTOM"
    assert props["Integration"]["Type"] == "AWS_PROXY"
    admin_id = sandbox.function_ids()["admin"]
    assert {"Fn::GetAtt": [admin_id, "Arn"]} in _walk(props["Integration"]["Uri"])
    validator = sandbox.resources[props["RequestValidatorId"]["Ref"]]["Properties"]
    assert validator["ValidateRequestBody"] is True
    model = sandbox.resources[props["RequestModels"]["application/json"]["Ref"]]["Properties"]
    assert model["Schema"]["type"] == "object"
    assert model["Schema"]["additionalProperties"] is False
    assert set(model["Schema"]["properties"]) == set(BODY_KEYS)
    assert model["Schema"]["properties"]["bootstrap"] == {
        "type": "integer",
        "minimum": 10,
        "maximum": 10000,
    }
    assert model["Schema"]["properties"]["publish"] == {"type": "boolean"}
    template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "StageName": "v1",
            "TracingEnabled": True,
            "AccessLogSetting": {
                "DestinationArn": Match.any_value(),
                "Format": Match.string_like_regexp("requestId"),
            },
            "MethodSettings": [
                Match.object_like(
                    {
                        "HttpMethod": "*",
                        "ResourcePath": "/*",
                        "ThrottlingRateLimit": 5,
                        "ThrottlingBurstLimit": 10,
                        "DataTraceEnabled": False,
                    }
                )
            ],
        },
    )
    permissions = [p["Properties"] for p in sandbox.of_type("AWS::Lambda::Permission").values()]
    api_permissions = [p for p in permissions if p["Principal"] == "apigateway.amazonaws.com"]
    by_function = {p["FunctionName"]["Fn::GetAtt"][0]: p for p in api_permissions}
    assert set(by_function) == {admin_id, sandbox.function_ids()["authorizer"]}
    source = _resolve(sandbox, by_function[admin_id]["SourceArn"])
    assert source.endswith("/POST/admin/generate-snapshot")


def test_requests_without_a_valid_admin_token_never_reach_the_admin_function(
    sandbox: Synthesis,
) -> None:
    """A TOKEN authorizer, cached per token, in front of the one method; API Gateway refuses a
    header that is not a bearer JWT without invoking it."""
    (method,) = sandbox.of_type("AWS::ApiGateway::Method").values()
    (authorizer_id, authorizer) = next(iter(sandbox.of_type("AWS::ApiGateway::Authorizer").items()))
    assert method["Properties"]["AuthorizerId"] == {"Ref": authorizer_id}
    props = authorizer["Properties"]
    assert props["Type"] == "TOKEN"
    assert props["IdentitySource"] == "method.request.header.Authorization"
    assert props["AuthorizerResultTtlInSeconds"] == 300
    function_id = sandbox.function_ids()["authorizer"]
    assert {"Fn::GetAtt": [function_id, "Arn"]} in _walk(props["AuthorizerUri"])
    pattern = re.compile(props["IdentityValidationExpression"])
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    assert pattern.fullmatch(f"Bearer {token}") and pattern.fullmatch(f"bearer {token}")
    for refused in ("", "Basic dXNlcjpwYXNz", "Bearer", "Bearer not-a-jwt", f"Bearer {token}."):
        assert not pattern.fullmatch(refused), refused
    # alg "none" tokens have an empty signature: refused before any Lambda runs.
    assert not pattern.fullmatch("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
    permissions = [p["Properties"] for p in sandbox.of_type("AWS::Lambda::Permission").values()]
    (invoke,) = [
        p for p in permissions if p["FunctionName"] == {"Fn::GetAtt": [function_id, "Arn"]}
    ]
    assert invoke["Principal"] == "apigateway.amazonaws.com"
    assert _resolve(sandbox, invoke["SourceArn"]).endswith(f"/authorizers/<{authorizer_id}.Ref>")


def test_api_gateways_refusals_answer_in_the_functions_json_shape(sandbox: Synthesis) -> None:
    responses = {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in sandbox.of_type("AWS::ApiGateway::GatewayResponse").values()
    }
    expected = {
        "UNAUTHORIZED": ("401", "invalid_token"),
        "ACCESS_DENIED": ("403", "not_admin"),
        "AUTHORIZER_FAILURE": ("503", "auth_unavailable"),
        "AUTHORIZER_CONFIGURATION_ERROR": ("503", "auth_unavailable"),
        "BAD_REQUEST_BODY": ("400", "invalid_request"),
        "THROTTLED": ("429", "throttled"),
        "WAF_FILTERED": ("403", "forbidden"),
    }
    assert set(responses) == set(expected)
    for kind, (status, code) in expected.items():
        response = responses[kind]
        assert response["StatusCode"] == status
        body = json.loads(response["ResponseTemplates"]["application/json"])
        assert body["error"] == code and body["message"]
        assert (
            response["ResponseParameters"]["gatewayresponse.header.Cache-Control"] == "'no-store'"
        )
    challenge = responses["UNAUTHORIZED"]["ResponseParameters"]
    assert challenge["gatewayresponse.header.WWW-Authenticate"].startswith("'Bearer realm=")


def test_waf_blocks_requests_without_a_bearer_token_and_floods_from_one_address(
    sandbox: Synthesis,
) -> None:
    """Evaluated before API Gateway's throttle: what WAF blocks cannot use up the admins' share."""
    ((acl_id, acl),) = sandbox.of_type("AWS::WAFv2::WebACL").items()
    props = acl["Properties"]
    assert (props["Scope"], props["DefaultAction"]) == ("REGIONAL", {"Allow": {}})
    rules = {rule["Name"]: rule for rule in props["Rules"]}
    assert set(rules) == {"RequireBearerToken", "RateLimitPerAddress"}
    for rule in rules.values():
        assert rule["Action"] == {"Block": {}}
        assert rule["VisibilityConfig"]["CloudWatchMetricsEnabled"] is True
    match = rules["RequireBearerToken"]["Statement"]["NotStatement"]["Statement"]
    assert match["ByteMatchStatement"] == {
        "FieldToMatch": {"SingleHeader": {"Name": "authorization"}},
        "PositionalConstraint": "STARTS_WITH",
        "SearchString": "bearer ",
        "TextTransformations": [{"Priority": 0, "Type": "LOWERCASE"}],
    }
    rate = rules["RateLimitPerAddress"]["Statement"]["RateBasedStatement"]
    assert (rate["AggregateKeyType"], rate["EvaluationWindowSec"]) == ("IP", 300)
    assert 100 <= rate["Limit"] <= 300
    (association,) = sandbox.of_type("AWS::WAFv2::WebACLAssociation").values()
    assert association["Properties"]["WebACLArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}
    stage_id = next(iter(sandbox.of_type("AWS::ApiGateway::Stage")))
    stage_arn = _resolve(sandbox, association["Properties"]["ResourceArn"])
    assert stage_arn.endswith(f"/stages/<{stage_id}.Ref>"), "the stage, which it waits for"


# --- production context -------------------------------------------------------------------------
def test_production_context_uses_the_given_vpc_subnets_secrets_and_schedule(
    production: Synthesis,
) -> None:
    assert not production.of_type("AWS::EC2::VPC")
    assert not production.of_type("AWS::EC2::VPCEndpoint")
    assert not production.of_type("AWS::SecretsManager::Secret")
    for stage in STAGES:
        vpc_config = production.function(stage)["VpcConfig"]
        assert vpc_config["SubnetIds"] == ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
    env = {stage: production.function(stage)["Environment"]["Variables"] for stage in STAGES}
    assert env["fetch"]["DATABASE_SECRET_ARN"] == PROD_CONTEXT["databaseSecretArn"]
    assert env["publish"]["DATABASE_SECRET_ARN"] == PROD_CONTEXT["databaseSecretArn"]
    assert env["notify"]["SLACK_SECRET_ARN"] == PROD_CONTEXT["slackSecretArn"]
    assert env["fetch"]["MIN_BATTLES"] == "50"
    assert json.loads(env["fetch"]["LEADERBOARD_FILTERS"])["min_confidence"] == 0.8
    for stage in ("fetch", "publish"):
        assert env[stage]["STYLE_CONTROL_LEADERBOARDS"] == '{"overall":"overall-style-control"}'
    assert production.function("publish")["ReservedConcurrentExecutions"] == 6
    (ingress,) = [
        r["Properties"] for r in production.of_type("AWS::EC2::SecurityGroupIngress").values()
    ]
    assert ingress["GroupId"] == "sg-0123456789abcdef0"
    assert (ingress["FromPort"], ingress["ToPort"]) == (5433, 5433)
    (schedule,) = production.of_type("AWS::Scheduler::Schedule").values()
    assert schedule["Properties"]["ScheduleExpression"] == "cron(30 3 * * ? *)"
    assert schedule["Properties"]["ScheduleExpressionTimezone"] == "America/Los_Angeles"
    assert json.loads(schedule["Properties"]["Target"]["Input"])["leaderboards"] == [
        "overall",
        "genomics",
    ]
    assert json.loads(schedule["Properties"]["Target"]["Input"])["bootstrap"] == 500
    for function in ("admin", "authorizer"):
        env = production.function(function)["Environment"]["Variables"]
        assert env["JWKS_URL"] == PROD_CONTEXT["jwksUrl"]
    assert not production.of_type("AWS::ApiGateway::Account")
    definition = _definition(production)
    assert definition["States"]["RankAndPublish"]["MaxConcurrency"] == 6
    assert production.stack_name == "bixarena-leaderboard-prod"


# --- cdk-nag and cfn-lint -----------------------------------------------------------------------
@pytest.mark.parametrize("which", ["sandbox", "production"])
def test_cdk_nag_reports_no_unacknowledged_finding(
    which: str, request: pytest.FixtureRequest
) -> None:
    synthesis: Synthesis = request.getfixturevalue(which)
    report = json.loads((synthesis.outdir / "validation-report.json").read_text())
    violations = [
        f"{v['ruleName']} at {c['constructPath']}"
        for plugin in report["pluginReports"]
        for v in plugin["violations"]
        for c in v["violatingConstructs"]
    ]
    assert violations == []
    assert synthesis.nag_failure is None


def _acknowledgements(app: App) -> list[tuple[str, str, str]]:
    found = []
    for construct in app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                found += [
                    (construct.node.path, rule, reason) for rule, reason in entry.data.items()
                ]
    return found


def test_every_acknowledged_finding_carries_a_specific_reason(sandbox: Synthesis) -> None:
    ours = [
        (path, rule, reason)
        for path, rule, reason in _acknowledgements(sandbox.app)
        if rule.startswith(("AwsSolutions-", "Annotation::"))
    ]
    assert len(ours) >= 10
    vague = re.compile(r"^(n/?a|todo|fixme|ok|fine|not needed|suppress(ed)?|ignore(d)?)\.?$", re.I)
    for path, rule, reason in ours:
        assert len(reason) >= 40 and not vague.match(reason.strip()), (path, rule, reason)
    reasons = [reason for _, _, reason in ours]
    # One reason per kind of finding, not one blanket sentence pasted everywhere.
    rules = {rule.split("[")[0] for _, rule, _ in ours}
    assert len(set(reasons)) >= len(rules)


@pytest.mark.parametrize("which", ["sandbox", "production"])
def test_cfn_lint_finds_nothing_but_cdks_redundant_depends_on(
    which: str, request: pytest.FixtureRequest
) -> None:
    synthesis: Synthesis = request.getfixturevalue(which)
    matches = lint_file(synthesis.outdir / f"{synthesis.stack_name}.template.json")
    assert [f"{m.rule.id} {m.message}" for m in matches if m.rule.id != "W3005"] == []


# --- the image ----------------------------------------------------------------------------------
def test_synthesis_copies_only_what_the_image_needs(sandbox: Synthesis) -> None:
    assets = json.loads((sandbox.outdir / f"{sandbox.stack_name}.assets.json").read_text())
    (image,) = assets["dockerImages"].values()
    assert image["source"]["platform"] == "linux/amd64"
    context = sandbox.outdir / image["source"]["directory"]
    assert sorted(p.name for p in context.iterdir()) == [
        ".dockerignore",
        "Dockerfile",
        "common",
        "requirements.lock",
        "stages",
    ]
    assert not list(context.rglob("__pycache__"))


def test_dockerfile_builds_what_the_image_check_checks() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert f"FROM public.ecr.aws/lambda/python:{check_image.IMAGE_PYTHON}\n" in dockerfile
    for source in check_image.IMAGE_SOURCES:
        assert f"COPY {source}/ ${{LAMBDA_TASK_ROOT}}/{source}/\n" in dockerfile
    assert '-r "${LAMBDA_TASK_ROOT}/requirements.lock"' in dockerfile
    lock_header = (REPO / "requirements.lock").read_text().splitlines()[1]
    assert f"--python-version {check_image.IMAGE_PYTHON}" in lock_header
    assert "x86_64-manylinux_2_28" in lock_header


def test_image_check_finds_every_handler_and_keys_its_cache_by_the_lock(tmp_path: Path) -> None:
    for stage in ("fetch", "rank"):
        (tmp_path / "stages" / stage).mkdir(parents=True)
        (tmp_path / "stages" / stage / "handler.py").write_text(
            "def handler(event, context): ...\n"
        )
    (tmp_path / "stages" / "notes").mkdir()
    assert check_image.handler_modules(tmp_path) == ["stages.fetch.handler", "stages.rank.handler"]
    for module in ("__init__.py", "rank.py", "ranking/__init__.py", "ranking/_bootstrap.py"):
        (tmp_path / "common" / module).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "common" / module).write_text("")
    assert check_image.common_modules(tmp_path) == [
        "common", "common.rank", "common.ranking", "common.ranking._bootstrap",
    ]  # fmt: skip
    lock = tmp_path / "requirements.lock"
    lock.write_text("numpy==2.0.0\n")
    first = check_image.site_dir_for(lock)
    lock.write_text("numpy==2.0.1\n")
    assert check_image.site_dir_for(lock) != first


def test_image_check_fails_clearly_without_a_python_312(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(check_image, "PYENV_ROOTS", (tmp_path,))
    monkeypatch.setattr(check_image.shutil, "which", lambda name: None)
    monkeypatch.delenv("LAMBDA_PYTHON", raising=False)
    with pytest.raises(
        check_image.ImageCheckFailed, match=r"no Python 3\.12 interpreter.*LAMBDA_PYTHON"
    ):
        check_image.find_interpreter()


# --- context parsing ----------------------------------------------------------------------------
def test_no_context_is_a_sandbox_with_documented_defaults() -> None:
    config = parse_context(
        {"@aws-cdk/core:target-partitions": ["aws"], "aws:cdk:enable-path-metadata": True}
    )
    assert config.network is None and config.creates_vpc
    assert config.environment == "sandbox"
    assert config.state_machine_name == "bixarena-leaderboard-sandbox"
    assert (config.schedule_expression, config.schedule_time_zone) == ("cron(0 2 * * ? *)", "UTC")
    assert (config.leaderboards, config.bootstrap) == ("all", 1000)
    assert (config.map_max_concurrency, config.artifact_expiry_days, config.log_retention_days) == (
        4,
        30,
        90,
    )
    assert (config.jwt_issuer, config.admin_claim, config.admin_role) == (
        "urn:bixarena:auth",
        "roles",
        "admin",
    )
    assert config.database_secret_arn is None and config.slack_secret_arn is None
    assert config.style_control_leaderboards is None


def test_context_from_the_command_line_arrives_as_strings() -> None:
    config = parse_context(PROD_CONTEXT)
    assert config.network is not None
    assert config.network.private_subnet_ids == (
        "subnet-0123456789abcdef0",
        "subnet-0fedcba9876543210",
    )
    assert config.network.availability_zones == ("us-east-1a", "us-east-1b")
    assert (config.database_port, config.bootstrap, config.map_max_concurrency) == (5433, 500, 6)
    assert config.leaderboards == ["overall", "genomics"]
    assert config.create_api_gateway_logs_role is False
    assert parse_context(
        {"leaderboards": '["genomics"]', "scheduleEnabled": "false"}
    ).leaderboards == ["genomics"]
    assert config.style_control_leaderboards == '{"overall":"overall-style-control"}'
    from_json = parse_context({"styleControlLeaderboards": {"overall": "overall-sc"}})
    assert from_json.style_control_leaderboards == '{"overall":"overall-sc"}'


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"environment": "Prod!"}, r"^environment: "),
        ({"vpcId": "vpc-0123456789abcdef0"}, r"^privateSubnetIds: required with vpcId"),
        (
            {"vpcId": "vpc-0123456789abcdef0", "privateSubnetIds": "subnet-0123456789abcdef0"},
            r"^databaseSecurityGroupId: required with vpcId",
        ),
        (
            {
                "vpcId": "vpc-0123456789abcdef0",
                "privateSubnetIds": "subnet-0123456789abcdef0",
                "databaseSecurityGroupId": "sg-0123456789abcdef0",
            },
            r"^availabilityZones: required with vpcId",
        ),
        (
            {"privateSubnetIds": "subnet-0123456789abcdef0"},
            r"^privateSubnetIds: only valid with vpcId",
        ),
        ({"vpcId": "vpc-1"}, r"^vpcId: 'vpc-1' is not a VPC id"),
        (
            {"databaseSecretArn": "arn:aws:secretsmanager:us-east-1:1:secret:db"},
            r"^databaseSecretArn: ",
        ),
        ({"scheduleExpression": "every day"}, r"^scheduleExpression: "),
        ({"scheduleTimeZone": "Mars/Olympus"}, r"^scheduleTimeZone: 'Mars/Olympus' is not an IANA"),
        (
            # The default 02:00 does not exist in Berlin on the day clocks go forward.
            {"scheduleTimeZone": "Europe/Berlin"},
            r"^scheduleExpression: cron\(0 2 \* \* \? \*\) in Europe/Berlin names a time that"
            r" does not exist on \d{4}-03-\d\d, when clocks go forward",
        ),
        (
            {"scheduleTimeZone": "America/New_York", "scheduleExpression": "cron(15 6,2 * * ? *)"},
            r"^scheduleExpression: .* does not exist on \d{4}-03-\d\d",
        ),
        ({"bootstrap": "5"}, r"^bootstrap: must be between 10 and 10000"),
        ({"bootstrap": "many"}, r"^bootstrap: expected an integer"),
        ({"bootstrap": "\u00b2"}, r"^bootstrap: expected an integer"),
        ({"leaderboards": "Overall"}, r"^leaderboards: 'Overall' is not a valid leaderboard slug"),
        ({"mapMaxConcurrency": "0"}, r"^mapMaxConcurrency: must be between 1 and 40"),
        ({"artifactExpiryDays": "soon"}, r"^artifactExpiryDays: expected an integer"),
        ({"logRetentionDays": "10"}, r"^logRetentionDays: 10 is not one of"),
        ({"alarmEmail": "ops"}, r"^alarmEmail: 'ops' is not an e-mail address"),
        ({"jwksUrl": "http://auth/jwks.json"}, r"^jwksUrl: must be an https:// URL"),
        ({"scheduleEnabled": "yes"}, r"^scheduleEnabled: expected true or false"),
        ({"apiRateLimit": "fast"}, r"^apiRateLimit: expected a number"),
        ({"leaderboardFilters": "{not json"}, r"^leaderboardFilters: not valid JSON"),
        ({"leaderboardFilters": '{"min_confidenc": 0.8}'}, r"^leaderboardFilters: .*min_confidenc"),
        (
            {"leaderboardFilters": {"window_days": 10**6}},
            r"^leaderboardFilters: LEADERBOARD_FILTERS: window_days: expected null or an integer",
        ),
        (
            {"leaderboardFilters": {"leaderboards": {"Overall": {"window_days": 30}}}},
            r"^leaderboardFilters: LEADERBOARD_FILTERS: leaderboards.Overall: not a leaderboard",
        ),
        (
            {"leaderboardFilters": {"since": "0001-01-01T00:00:00+05:00"}},
            r"^leaderboardFilters: LEADERBOARD_FILTERS: since: .* is out of range in UTC",
        ),
        ({"vpcid": "vpc-0123456789abcdef0"}, r"^vpcid: unknown context key"),
        ({"styleControlLeaderboards": "{oops"}, r"^styleControlLeaderboards: not valid JSON"),
        (
            {"styleControlLeaderboards": {"overall": "overall"}},
            r"^styleControlLeaderboards: overall maps to itself",
        ),
        (
            {"styleControlLeaderboards": {"overall": "Overall SC"}},
            r"^styleControlLeaderboards: 'Overall SC' is not a style-controlled leaderboard slug",
        ),
        (
            {"styleControlLeaderboards": '{"overall": "sc", "genomics": "sc"}'},
            r"^styleControlLeaderboards: genomics and overall both map to sc",
        ),
        (
            {"styleControlLeaderboards": {"overall": "sc", "sc": "sc-2"}},
            r"^styleControlLeaderboards: sc is a style-controlled leaderboard and is mapped",
        ),
        (
            {"styleControlLeaderboards": {"overall": "genetics"}},
            r"^styleControlLeaderboards: overall maps to genetics, a reference leaderboard",
        ),
        (
            {"styleControlLeaderboards": {"overall": "sc"}, "leaderboards": "overall,sc"},
            r"^leaderboards: sc is a style-controlled leaderboard",
        ),
    ],
)
def test_a_bad_context_value_is_one_line_naming_the_key(
    context: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidContext, match=message) as caught:
        parse_context(context)
    assert "\n" not in str(caught.value)


def test_every_context_key_is_documented_in_the_deploy_guide() -> None:
    guide = (REPO / "docs" / "deploy.md").read_text()
    for key in CONTEXT_KEYS:
        assert f"`{key}`" in guide, key
