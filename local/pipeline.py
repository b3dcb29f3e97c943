"""The local run: the deployed state machine, executed on this machine with no AWS account.

The runner takes the CloudFormation template the CDK app synthesizes, creates moto stand-ins for
its resources (bucket, secrets, topic, functions, the state machine with its definition exactly
as deployed), and executes it with moto's Step Functions interpreter. Lambda tasks run the real
handlers with the environment the stack gives each function: each invocation in one of a few warm
worker processes (``local.lambda_workers``; as many as the Map runs at once, at most one per core),
which reach this process's moto through its server mode, so the Map's iterations run in parallel
as they do on AWS; or, with ``workers=0``, as threads of this process (``local.moto_lambda``).
PostgreSQL is real and reached through a switchable proxy (``local.dbproxy``); Slack is a URL
you give or a local capture. Executions are saved under ``.local/`` with their history and the
run's S3 objects, so ``leaderboard redrive`` in a later process resumes them.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import psycopg
from moto import mock_aws
from moto.stepfunctions.parser.utils import TMP_THREADS

from common.stepfunctions import failures
from common.stepfunctions.history import (
    FAILED_STATUSES,
    FINAL_STATUSES,
    parse_execution_arn,
    read_history,
    until_end,
)
from infra import stack_template
from local import eventbridge, moto_lambda, moto_server, redrive
from local.dbproxy import DatabaseProxy
from local.faults import DatabaseSwitch, FaultPlan
from local.lambda_workers import Invocation, WorkerPool, cores_each, default_size, peak_mb
from local.slack_server import SlackServer
from local.store import ExecutionRecord, ExecutionStore, LocalRunError, json_default

REGION = "us-east-1"
ACCOUNT = "123456789012"
POLL_S = (0.05, 0.5)
"""Polling interval bounds: moto answers each poll with the whole history, serialized in this
process, so a long run is polled less and less often (up to every 0.5 s)."""
INTERPRETER_DRAIN_S = 60.0
"""How long closing a pipeline waits for the interpreter's leftover threads (see _setup)."""

EventSink = Callable[[dict[str, Any], list[dict[str, Any]]], None]
"""Called with each new history event and the history so far (for progress output)."""


def _socket_target(database_url: str) -> tuple[str, dict[str, Any]]:
    """Where the proxy forwards to, and the connection fields the database secret carries."""
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    host = str(info.get("host") or "/tmp")
    port = int(info.get("port") or 5432)
    target = f"{host}/.s.PGSQL.{port}" if host.startswith("/") else f"{host}:{port}"
    fields = {
        "dbname": info.get("dbname") or "postgres",
        "username": info.get("user") or "postgres",
        "password": info.get("password") or "",
        "sslmode": info.get("sslmode") or "prefer",
    }
    return target, fields


class LocalPipeline:
    """moto stand-ins for the stack's resources, with the real handlers behind its functions."""

    def __init__(
        self,
        template: dict[str, Any],
        *,
        database_url: str,
        store: ExecutionStore,
        slack_webhook: str | None = None,
        faults: FaultPlan | None = None,
        log_path: Path | None = None,
        workers: int | None = None,
        database_label: str | None = None,
    ) -> None:
        """``workers``: Lambda worker processes; None sizes the pool to the Map's MaxConcurrency
        and this machine's cores, 0 runs every invocation as a thread of this process.
        ``database_label``: what the saved executions say they ran on (``store.database_label``)."""
        self.template = template
        self.database_url = database_url
        self.database_label = database_label
        self.store = store
        self.slack_webhook = slack_webhook
        self.faults = faults or FaultPlan()
        self.log_path = log_path
        self.slack: SlackServer | None = None
        self._stack = ExitStack()
        self._handlers: dict[str, Callable[..., Any]] = {}
        self._functions: dict[str, stack_template.FunctionSpec] = {}
        self.workers = workers
        self._pool: WorkerPool | None = None
        self._in_process: list[Invocation] = []

    # --- setting up ---------------------------------------------------------------------------------
    def __enter__(self) -> LocalPipeline:
        try:
            self._setup()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _setup(self) -> None:
        saved_env = dict(os.environ)
        self._stack.callback(_restore_environ, saved_env)
        os.environ.update(
            AWS_DEFAULT_REGION=REGION,
            AWS_REGION=REGION,
            AWS_ACCESS_KEY_ID="local",
            AWS_SECRET_ACCESS_KEY="local",
            AWS_SESSION_TOKEN="local",
        )
        for variable in ("AWS_PROFILE", "DATABASE_URL", "SLACK_WEBHOOK_URL"):
            os.environ.pop(variable, None)
        self._stack.enter_context(
            mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        )
        endpoint = self._stack.enter_context(moto_server.served()) if self.workers != 0 else None
        target, db_fields = _socket_target(self.database_url)
        self.proxy = DatabaseProxy(target)
        self.proxy.start()
        self._stack.callback(self.proxy.stop)
        self._database = DatabaseSwitch(self.proxy.stop, self.proxy.start)
        if self.slack_webhook is None:
            mode = self.faults.slack_mode() or "ok"
            self.slack = SlackServer(mode="hang" if mode == "timeout" else mode).start()
            self._stack.callback(self.slack.stop)
        self._create_resources(db_fields)
        if endpoint is not None:
            self._start_workers(endpoint)
        self._stack.enter_context(moto_lambda.in_process(self._dispatch))
        if self.log_path is not None:
            self._stack.enter_context(_function_logs_to(self.log_path))
        # When a Map iteration fails, AWS stops the other iterations; moto lets them run on. Let
        # them end while this pipeline's stand-ins still exist (closing runs this first), so none
        # of them reaches a stopped moto or the in-process dispatch of a later pipeline.
        self._stack.callback(_drain_interpreter, INTERPRETER_DRAIN_S)

    def _start_workers(self, endpoint: str) -> None:
        size = self.workers or default_size(_map_max_concurrency(self.definition))
        # The workers see what a handler in this process would (the functions' shared
        # environment, the database and Slack overrides), with AWS at this process's moto, and
        # rank on their share of the cores unless the functions say otherwise.
        self._pool = WorkerPool(
            size,
            handlers=[spec.handler for spec in self._functions.values()],
            environment={
                "RANK_THREADS": str(cores_each(size)),
                **os.environ,
                "AWS_ENDPOINT_URL": endpoint,
            },
            log_path=self.log_path,
        )
        self._stack.callback(self._pool.stop)
        self._pool.start()

    @property
    def worker_count(self) -> int:
        """Lambda worker processes (0: invocations run as threads of this process)."""
        return self._pool.size if self._pool else 0

    @property
    def invocations(self) -> list[Invocation]:
        """Every Lambda invocation so far: function, the process that ran it, start and end."""
        return list(self._pool.invocations if self._pool else self._in_process)

    def _create_resources(self, db_fields: dict[str, Any]) -> None:
        self.s3 = boto3.client("s3", region_name=REGION)
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        secrets = boto3.client("secretsmanager", region_name=REGION)
        iam = boto3.client("iam", region_name=REGION)
        self.role_arn = iam.create_role(RoleName="local-pipeline", AssumeRolePolicyDocument="{}")[
            "Role"
        ]["Arn"]
        values: dict[str, dict[str, str]] = {}
        self.buckets: list[str] = []
        for logical_id in stack_template.resources_of_type(self.template, "AWS::S3::Bucket"):
            name = f"local-{logical_id.lower()}"[:63]
            self.s3.create_bucket(Bucket=name)
            self.buckets.append(name)
            values[logical_id] = {"Ref": name, "Arn": f"arn:aws:s3:::{name}"}
        for logical_id in stack_template.resources_of_type(
            self.template, "AWS::SecretsManager::Secret"
        ):
            arn = secrets.create_secret(Name=f"local/{logical_id}", SecretString="{}")["ARN"]
            values[logical_id] = {"Ref": arn, "Arn": arn}
        sns = boto3.client("sns", region_name=REGION)
        for logical_id in stack_template.resources_of_type(self.template, "AWS::SNS::Topic"):
            arn = sns.create_topic(Name=f"local-{logical_id}")["TopicArn"]
            values[logical_id] = {"Ref": arn, "Arn": arn, "TopicName": f"local-{logical_id}"}
        sm_logical_id, definition = stack_template.state_machine(self.template)
        # The stack names its state machine so functions can build its ARN; keep that name.
        declared = self.template["Resources"][sm_logical_id]["Properties"].get("StateMachineName")
        self.state_machine_name = str(declared or f"local-{sm_logical_id}")[:80]
        self.state_machine_arn = (
            f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{self.state_machine_name}"
        )
        values[sm_logical_id] = {
            "Ref": self.state_machine_arn,
            "Arn": self.state_machine_arn,
            "Name": self.state_machine_name,
        }
        specs = stack_template.functions(self.template)
        for logical_id in specs:
            name = logical_id[:64]
            arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
            values[logical_id] = {"Ref": name, "Arn": arn}
        self._values = _with_placeholders(self.template, values)
        pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": "local",
            "AWS::NoValue": "",
        }
        self._pseudo = pseudo
        environment: dict[str, str] = {}
        lam = boto3.client("lambda", region_name=REGION)
        for logical_id, spec in specs.items():
            env = {
                k: str(v)
                for k, v in stack_template.resolve(spec.environment, self._values, pseudo).items()
            }
            lam.create_function(
                FunctionName=logical_id[:64],
                Role=self.role_arn,
                PackageType="Image",
                Code={"ImageUri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/leaderboard:local"},
                MemorySize=spec.memory_mb,
                Timeout=spec.timeout_s,
                Environment={"Variables": env},
            )
            self._functions[logical_id[:64]] = spec
            for key, value in env.items():
                if environment.get(key, value) != value:
                    raise LocalRunError(
                        f"functions disagree on {key}; the local run shares one environment"
                    )
                environment[key] = value
        # The handlers read their settings from os.environ; all functions agree on shared keys.
        os.environ.update(environment)
        self.environment = environment
        self._fill_secrets(secrets, environment, db_fields)
        self.definition = json.loads(stack_template.resolve(definition, self._values, pseudo))
        self.sfn.create_state_machine(
            name=self.state_machine_name,
            definition=json.dumps(self.definition),
            roleArn=self.role_arn,
        )

    def _fill_secrets(self, secrets: Any, env: dict[str, str], db_fields: dict[str, Any]) -> None:
        if "DATABASE_SECRET_ARN" in env:
            value = {"host": "127.0.0.1", "port": self.proxy.port, **db_fields}
            secrets.put_secret_value(
                SecretId=env["DATABASE_SECRET_ARN"], SecretString=json.dumps(value)
            )
        else:
            os.environ["DATABASE_URL"] = _through_proxy(self.proxy.port, db_fields)
        webhook = self.slack_webhook or (self.slack.url if self.slack else None)
        # A real webhook goes where the stack puts it; the local capture (plain http on this
        # machine, which the production setting refuses) goes in the developer override.
        if webhook and webhook.startswith("https://") and "SLACK_SECRET_ARN" in env:
            secrets.put_secret_value(
                SecretId=env["SLACK_SECRET_ARN"], SecretString=json.dumps({"webhook_url": webhook})
            )
        elif webhook:
            os.environ["SLACK_WEBHOOK_URL"] = webhook

    # --- the Lambda side ------------------------------------------------------------------------------
    def _dispatch(
        self, function_name: str, event: Any, context: moto_lambda.InvocationContext
    ) -> Any:
        spec = self._functions[function_name]
        stage = stage_of(spec.handler)
        self.faults.before_invoke(stage, timeout_s=spec.timeout_s)
        if not self.faults.touches_database:
            return self._invoke(function_name, spec.handler, event, context)
        with self._database.attempt(lambda: self.faults.database_down(stage)):
            return self._invoke(function_name, spec.handler, event, context)

    def _invoke(
        self, function: str, dotted: str, event: Any, context: moto_lambda.InvocationContext
    ) -> Any:
        """The handler's result, from a worker process or (``workers=0``) this process."""
        if self._pool is not None:
            return self._pool.invoke(function, dotted, event, context)
        handler = self._handler(dotted)
        started = time.time()
        try:
            return handler(event, context)
        finally:
            self._in_process.append(
                Invocation(function, os.getpid(), started, started, time.time(), peak_mb())
            )

    def _handler(self, dotted: str) -> Callable[..., Any]:
        if dotted not in self._handlers:
            module_name, _, attribute = dotted.rpartition(".")
            self._handlers[dotted] = getattr(importlib.import_module(module_name), attribute)
        return self._handlers[dotted]

    # --- the failure rule ------------------------------------------------------------------------------
    def notify_failure(self, record: ExecutionRecord) -> Any:
        """Do what the stack's EventBridge rule does when an execution fails (moto emits no
        "Execution Status Change" events): invoke the rule's target, the notify function in
        failure mode, with the event for ``record``.

        Returns the function's result, or Lambda's error payload when the alert itself failed.
        Injected stage faults stand for the state machine's task failing and do not apply to this
        separate invocation; a Slack fault does, being Slack itself.
        """
        if record.status not in FAILED_STATUSES:
            raise LocalRunError(f"{record.name} is {record.status}: only a failed run is alerted")
        function = self._failure_rule_target()
        spec = self._functions[function]
        arn = parse_execution_arn(record.execution_arn)
        event = eventbridge.status_change_event(
            execution_arn=record.execution_arn,
            state_machine_arn=arn.state_machine_arn,
            # A redrive is the same execution on AWS: name the original, which `redrive` resumes.
            name=record.redrive_of or record.name,
            status=record.status,
            start_ms=_epoch_ms(record.started_at),
            stop_ms=_epoch_ms(record.stopped_at) if record.stopped_at else None,
            input_json=json.dumps(record.input),
            error=record.error,
            cause=record.cause,
            region=arn.region,
            account=arn.account,
        )
        context = moto_lambda.InvocationContext(
            function_name=function,
            invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}",
            memory_limit_in_mb=spec.memory_mb,
            timeout_s=spec.timeout_s,
        )
        try:
            return self._invoke(function, spec.handler, event, context)
        except Exception as exc:
            return moto_lambda.error_payload(exc)

    def _failure_rule_target(self) -> str:
        """The function the stack's rule on failed executions of this state machine targets."""
        for rule in stack_template.resources_of_type(self.template, "AWS::Events::Rule").values():
            pattern = rule.get("Properties", {}).get("EventPattern", {})
            if failures.SOURCE not in pattern.get("source", []):
                continue
            for target in rule["Properties"].get("Targets", []):
                arn = target.get("Arn")
                if isinstance(arn, dict) and "Fn::GetAtt" in arn:
                    name = str(arn["Fn::GetAtt"][0])[:64]
                    if name in self._functions:
                        return name
        raise LocalRunError("the stack has no EventBridge rule sending failed runs to a function")

    # --- executions -----------------------------------------------------------------------------------
    def start(self, request: dict[str, Any], name: str | None = None) -> str:
        name = name or new_execution_name()
        return str(
            self.sfn.start_execution(
                stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(request)
            )["executionArn"]
        )

    def wait(
        self,
        execution_arn: str,
        *,
        definition: dict[str, Any] | None = None,
        on_event: EventSink | None = None,
        redrive_of: str | None = None,
    ) -> ExecutionRecord:
        """Follow an execution to its end, then save it (with the bucket's objects)."""
        seen = 0
        history: list[dict[str, Any]] = []
        interval, longest = POLL_S
        while True:
            described = self.sfn.describe_execution(executionArn=execution_arn)
            history = read_history(self.sfn, execution_arn)
            for event in history[seen:]:
                if on_event:
                    on_event(event, history)
            seen = len(history)
            if described["status"] in FINAL_STATUSES:
                break
            time.sleep(interval)
            interval = min(interval * 1.5, longest)
        # moto lets a failed Map's other iterations run on (AWS aborts them): what they log after
        # the execution ended is not its history, and would make a redrive skip their work.
        history = until_end(history)
        record = ExecutionRecord(
            name=described["name"],
            execution_arn=execution_arn,
            status=described["status"],
            input=json.loads(described.get("input") or "null"),
            output=json.loads(described["output"]) if described.get("output") else None,
            error=described.get("error"),
            cause=described.get("cause"),
            started_at=described["startDate"].astimezone(UTC).isoformat(),
            stopped_at=described["stopDate"].astimezone(UTC).isoformat()
            if described.get("stopDate")
            else None,
            definition=definition or self.definition,
            history=json.loads(json.dumps(history, default=json_default)),
            redrive_of=redrive_of,
            database=self.database_label,
        )
        self.store.save(record)
        for bucket in self.buckets:
            self.store.dump_bucket(self.s3, bucket)
        return record

    def abort(self, execution_arn: str) -> ExecutionRecord:
        """Stop a running execution, as the console's Stop does (ABORTED), and save it: a redrive
        resumes it where it stopped."""
        self.sfn.stop_execution(executionArn=execution_arn)
        return self.wait(execution_arn)

    def redrive(
        self, original: ExecutionRecord, *, on_event: EventSink | None = None
    ) -> ExecutionRecord:
        """Resume ``original`` (or its latest failed redrive) where it stopped."""
        attempt = self.store.load(original.redrives[-1]) if original.redrives else original
        try:
            plan = redrive.plan_redrive(attempt.history, attempt.definition)
        except redrive.NotRedrivable as exc:
            raise LocalRunError(
                f"{original.name} cannot be redriven: {exc} (it is {attempt.status})"
            ) from None
        derived, redrive_input = redrive.redrive_definition(
            attempt.definition,
            plan,
            execution_id=original.execution_arn,
            execution_name=original.name,
        )
        # The resumed states read only objects their inputs name: put those back from the store.
        for bucket, prefixes in _s3_references(redrive_input).items():
            if bucket in self.buckets:
                self.store.restore_bucket(self.s3, bucket, prefixes)
        count = len(original.redrives) + 1
        machine = f"{self.state_machine_name}-redrive-{count}"[:80]
        arn = self.sfn.create_state_machine(
            name=machine, definition=json.dumps(derived), roleArn=self.role_arn
        )["stateMachineArn"]
        name = f"{original.name}-redrive-{count}"[:80]
        execution = self.sfn.start_execution(
            stateMachineArn=arn, name=name, input=json.dumps(redrive_input)
        )["executionArn"]
        record = self.wait(
            execution, definition=derived, on_event=on_event, redrive_of=original.name
        )
        original.redrives.append(record.name)
        # As on AWS, the redriven execution takes the outcome of its redrive.
        original.status, original.output = record.status, record.output
        original.error, original.cause, original.stopped_at = (
            record.error,
            record.cause,
            record.stopped_at,
        )
        self.store.save(original)
        return record


def stage_of(handler: str) -> str:
    """``stages.fetch.handler.handler`` -> ``fetch``."""
    parts = handler.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "stages" else handler


def new_execution_name(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"local-{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def _through_proxy(port: int, fields: dict[str, Any]) -> str:
    return psycopg.conninfo.make_conninfo(
        host="127.0.0.1",
        port=port,
        dbname=fields["dbname"],
        user=fields["username"],
        password=fields["password"] or None,
        sslmode=fields["sslmode"],
    )


def _with_placeholders(
    template: dict[str, Any], values: dict[str, dict[str, str]]
) -> dict[str, dict[str, str]]:
    """Resources with no local stand-in (alarms, roles, queues) still resolve to a readable value."""
    resolved = dict(values)
    for logical_id in template.get("Resources", {}):
        if logical_id not in resolved:
            placeholder = f"local-{logical_id}"
            resolved[logical_id] = _AnyAttribute(placeholder)
    return resolved


class _AnyAttribute(dict[str, str]):
    def __init__(self, value: str) -> None:
        super().__init__()
        self._value = value

    def __missing__(self, key: str) -> str:
        return self._value if key == "Ref" else f"{self._value}.{key}"


_S3_URI = re.compile(r"s3://([a-z0-9.-]+)/([^\s\"']*)")


def _s3_references(value: Any) -> dict[str, set[str]]:
    """Every ``s3://bucket/key-or-prefix`` a JSON value names, as prefixes by bucket."""
    found: dict[str, set[str]] = {}
    for bucket, key in _S3_URI.findall(json.dumps(value)):
        found.setdefault(bucket, set()).add(key)
    return found


def _map_max_concurrency(definition: dict[str, Any]) -> int:
    """The largest MaxConcurrency of the definition's Map states (0: one is unbounded)."""
    found: list[int] = []

    def visit(states: dict[str, Any]) -> None:
        for state in states.values():
            if state.get("Type") == "Map":
                found.append(int(state.get("MaxConcurrency", 0)))
            for key in ("ItemProcessor", "Iterator"):
                if key in state:
                    visit(state[key].get("States", {}))
            for branch in state.get("Branches", []):
                visit(branch.get("States", {}))

    visit(definition.get("States", {}))
    if not found:
        return 1
    return 0 if 0 in found else max(found)


def _epoch_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def _drain_interpreter(timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for thread in list(TMP_THREADS):
        if thread.is_alive() and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))


def _restore_environ(saved: dict[str, str]) -> None:
    os.environ.clear()
    os.environ.update(saved)


@contextmanager
def _function_logs_to(path: Path) -> Iterator[None]:
    """Send the functions' JSON logs and EMF metrics (printed to stdout) to a file, and keep
    moto's interpreter from logging each task failure: the progress lines already say it."""
    import contextlib
    import logging

    from common.observability import logger

    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logger.registered_handler
    interpreter_log = logging.getLogger("moto.stepfunctions")
    level = interpreter_log.level
    with path.open("a") as stream, contextlib.redirect_stdout(stream):
        previous = handler.setStream(stream)  # type: ignore[attr-defined]
        interpreter_log.setLevel(logging.CRITICAL)
        try:
            yield
        finally:
            handler.setStream(previous)  # type: ignore[attr-defined]
            interpreter_log.setLevel(level)
