"""The state machine definition (docs/state-machine.md), built from the four stage functions.

``build_definition`` returns the chain the stack deploys. ``render_definition`` builds the same
chain in a throwaway stack around given function ARNs and returns the Amazon States Language
document as a dict: no synthesis of the full stack, no AWS account. The local runner instead reads
the definition back from the synthesized stack (``infra.app.synthesize_template`` and
``infra.stack_template``), so that it runs exactly what is deployed.

No Catch and no Fail state on purpose (docs/adr/0003-no-catch-to-fail.md): a failed execution
stops at the failing state, so a redrive resumes there with the same input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws_cdk import App, Duration, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from common.errors import TRANSIENT_ERRORS
from infra import stack_template

STAGES = ("fetch", "rank", "publish", "notify")
STATE_NAMES = {"fetch": "Fetch", "rank": "Rank", "publish": "Publish", "notify": "Notify"}
MAP_STATE_NAME = "RankAndPublish"


@dataclass(frozen=True)
class RetryPolicy:
    errors: tuple[str, ...]
    interval_s: int
    backoff_rate: float
    max_attempts: int
    """Retries after the first attempt (ASL's MaxAttempts)."""
    max_delay_s: int | None = None
    """The longest wait before one retry (MaxDelaySeconds): the backoff stops growing there."""
    jitter: bool = False
    """JitterStrategy FULL: each wait is drawn between 0 and its computed interval, so the
    leaderboards' retries after an outage do not reach the database in step."""

    def as_asl(self) -> dict[str, Any]:
        """The Retry entry as it appears in the deployed definition."""
        entry: dict[str, Any] = {
            "ErrorEquals": list(self.errors),
            "IntervalSeconds": self.interval_s,
            "BackoffRate": self.backoff_rate,
            "MaxAttempts": self.max_attempts,
        }
        if self.max_delay_s is not None:
            entry["MaxDelaySeconds"] = self.max_delay_s
        if self.jitter:
            entry["JitterStrategy"] = "FULL"
        return entry


DATABASE_ERRORS = ("DatabaseUnavailable",)
DATABASE_RETRY = RetryPolicy(
    DATABASE_ERRORS, interval_s=2, backoff_rate=2, max_attempts=28, max_delay_s=30, jitter=True
)
"""A PostgreSQL failover or restart takes one to two minutes. Waits of at most 2, 4, 8, 16 s, then
30 s each (jittered), 28 retries: the waits before the last attempt add up to 375 s on average,
750 s at most, and fall short of an outage of 3 minutes plus one connect timeout with a
probability of about 4 in a million (docs/state-machine.md, tests/unit/test_retry_policy.py)."""
TRANSIENT_RETRY = RetryPolicy(
    tuple(error for error in TRANSIENT_ERRORS if error not in DATABASE_ERRORS),
    interval_s=2,
    backoff_rate=2,
    max_attempts=6,
    max_delay_s=30,
    jitter=True,
)
"""S3 throttling, Slack 429/5xx, Secrets Manager, SNS, Step Functions' API: at most 90 s of waits."""
LAMBDA_SERVICE_RETRY = RetryPolicy(
    (
        "Lambda.ClientExecutionTimeoutException",
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
    ),
    interval_s=2,
    backoff_rate=2,
    max_attempts=6,
    jitter=True,
)
THROTTLE_RETRY = RetryPolicy(
    ("Lambda.TooManyRequestsException",),
    interval_s=2,
    backoff_rate=2,
    max_attempts=15,
    max_delay_s=60,
    jitter=True,
)
"""A function at its reserved concurrency (fetch 2, publish the Map's) throttles the executions
beyond it: a backfill's --concurrency 20 queues 18 fetches behind two. Waits of up to 60 s, 15
retries (331 s on average, 662 s at most), so the last of the queue gets its turn."""
LAMBDA_TIMEOUT_ERRORS = ("Sandbox.Timedout", "Lambda.Unknown")
"""What a Lambda Task reports when the function ran out of time: the invocation's errorType is
``Sandbox.Timedout``; Step Functions documents ``Lambda.Unknown`` for a timeout (or running out
of memory) that carries no errorType. ``States.Timeout`` only comes from a state's own
TimeoutSeconds, which no state sets: the function's timeout is the one that applies."""
LAMBDA_TIMEOUT_RETRY = RetryPolicy(
    LAMBDA_TIMEOUT_ERRORS, interval_s=5, backoff_rate=1, max_attempts=1
)
"""Rank is CPU-bound and holds nothing: a timeout (a slow host, a cold start with the numeric
stack) is worth one more run. Fetch and publish are not retried on a timeout: they hold
database connections, and a stage that ran out of time will run out again."""
STAGE_RETRIES: dict[str, tuple[RetryPolicy, ...]] = {
    stage: (DATABASE_RETRY, TRANSIENT_RETRY, LAMBDA_SERVICE_RETRY, THROTTLE_RETRY)
    for stage in STAGES
}
STAGE_RETRIES["rank"] = (*STAGE_RETRIES["rank"], LAMBDA_TIMEOUT_RETRY)
"""Every stage retries the same named transient errors, rank its timeout too; anything else
fails the execution."""


@dataclass(frozen=True)
class StageFunctions:
    fetch: lambda_.IFunction
    rank: lambda_.IFunction
    publish: lambda_.IFunction
    notify: lambda_.IFunction


def _task(
    scope: Construct,
    stage: str,
    function: lambda_.IFunction,
    payload: sfn.TaskInput | None = None,
) -> tasks.LambdaInvoke:
    task = tasks.LambdaInvoke(
        scope,
        STATE_NAMES[stage],
        lambda_function=function,
        payload=payload,
        # The full Invoke response ({"Payload": ..., "StatusCode": ...}) is what the
        # lambda:invoke integration returns; OutputPath keeps only the function's result.
        payload_response_only=False,
        output_path="$.Payload",
        # CDK's built-in service retry differs from the documented one (no TooManyRequests).
        retry_on_service_exceptions=False,
    )
    for policy in STAGE_RETRIES[stage]:
        task.add_retry(
            errors=list(policy.errors),
            interval=Duration.seconds(policy.interval_s),
            backoff_rate=policy.backoff_rate,
            max_attempts=policy.max_attempts,
            max_delay=Duration.seconds(policy.max_delay_s) if policy.max_delay_s else None,
            jitter_strategy=sfn.JitterType.FULL if policy.jitter else None,
        )
    return task


def build_definition(
    scope: Construct, functions: StageFunctions, *, max_concurrency: int
) -> sfn.IChainable:
    """Fetch -> RankAndPublish (inline Map over $.leaderboards: Rank -> Publish) -> Notify."""
    fetch = _task(
        scope,
        "fetch",
        functions.fetch,
        sfn.TaskInput.from_object(
            {
                "request": sfn.JsonPath.entire_payload,
                "execution_id": sfn.JsonPath.string_at("$$.Execution.Id"),
                "execution_name": sfn.JsonPath.string_at("$$.Execution.Name"),
            }
        ),
    )
    rank_and_publish = sfn.Map(
        scope,
        MAP_STATE_NAME,
        items_path="$.leaderboards",
        item_selector={
            "run": sfn.JsonPath.object_at("$.run"),
            "leaderboard": sfn.JsonPath.object_at("$$.Map.Item.Value"),
        },
        max_concurrency=max_concurrency,
        result_path="$.results",
    )
    rank_and_publish.item_processor(
        _task(scope, "rank", functions.rank).next(_task(scope, "publish", functions.publish))
    )
    notify = _task(
        scope,
        "notify",
        functions.notify,
        sfn.TaskInput.from_object(
            {
                "mode": "success",
                "run": sfn.JsonPath.object_at("$.run"),
                "results": sfn.JsonPath.object_at("$.results"),
                "skipped": sfn.JsonPath.object_at("$.skipped"),
                "left_out": sfn.JsonPath.object_at("$.left_out"),
            }
        ),
    )
    return fetch.next(rank_and_publish).next(notify)


def render_definition(function_arns: Mapping[str, str], *, max_concurrency: int) -> dict[str, Any]:
    """The ASL document for the given stage -> function ARN mapping (keys: STAGES)."""
    missing = [stage for stage in STAGES if stage not in function_arns]
    if missing:
        raise ValueError(f"function_arns: missing {', '.join(missing)}")
    stack = Stack(App(), "Definition")
    functions = StageFunctions(
        **{
            stage: lambda_.Function.from_function_arn(stack, f"{stage}-function", arn)
            for stage, arn in function_arns.items()
            if stage in STAGES
        }
    )
    chain = build_definition(stack, functions, max_concurrency=max_concurrency)
    graph = sfn.StateGraph(chain.start_state, "definition")
    partition = function_arns["fetch"].split(":")[1]
    rendered: dict[str, Any] = stack_template.resolve(
        stack.resolve(graph.to_graph_json()), {}, {"AWS::Partition": partition}
    )
    return rendered
