"""The admin endpoint end to end: API Gateway proxy events into the real handler, tokens checked
against a JWKS served over HTTP, executions started in moto's Step Functions.

moto's default (non-executing) Step Functions mode keeps every execution RUNNING until it is
stopped, which is what a long pipeline run looks like to the endpoint; one test uses the executing
mode to show that a finished run does not block a new one. Every request made through the
``endpoint`` fixture is checked afterwards for one audit line and for the token appearing in no
log line and no response.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from common import admin
from common.auth import JwksUnavailable, Principal
from common.contracts import REFERENCE_LEADERBOARDS, parse_run_request
from common.errors import (
    ConfigurationError,
    InvalidInput,
    LeaderboardNotFound,
    StepFunctionsUnavailable,
)
from common.observability import logger
from common.stepfunctions.executions import (
    RunInProgress,
    RunningExecution,
    overlapping,
    parse_input,
    refuse_overlap,
    running_executions,
    start_execution,
)
from local.moto_lambda import InvocationContext
from stages.admin import handler as admin_handler
from stages.authorizer import handler as authorizer_handler
from tests.jwks_server import (
    AUDIENCE,
    ISSUER,
    JwksServer,
    SigningKey,
    claims,
    closed_port_url,
    forge_hs256,
    forge_unsigned,
)

ADMIN_CONTEXT = InvocationContext(
    function_name="leaderboard-admin",
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:leaderboard-admin",
    memory_limit_in_mb=256,
    timeout_s=25,
)

AUTHORIZER_CONTEXT = InvocationContext(
    function_name="leaderboard-authorizer",
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:leaderboard-authorizer",
    memory_limit_in_mb=256,
    timeout_s=10,
)

REGION = "us-east-1"
NAME_RE = re.compile(r"^manual-\d{8}T\d{4}Z-(all|[0-9a-f]{12})$")
PASS_DEFINITION = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
DEFAULT_BODY = {"leaderboards": ["overall", "genomics"], "bootstrap": 200}


@dataclass(frozen=True)
class Keys:
    current: SigningKey
    impostor: SigningKey
    unpublished: SigningKey


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class Endpoint:
    """The deployed shape: env vars, a state machine in moto, the handler behind a proxy event."""

    sfn: Any
    state_machine_arn: str
    jwks: JwksServer
    keys: Keys
    lines: list[str]
    tokens: list[str] = field(default_factory=list)
    raw_responses: list[str] = field(default_factory=list)

    def token(self, **overrides: Any) -> str:
        return self.keys.current.sign(claims(**overrides))

    def post(
        self,
        body: Any = DEFAULT_BODY,
        *,
        token: str | None = "",
        raw_body: str | None = None,
        raw_bytes: bytes | None = None,
        v2: bool = False,
    ) -> Answer:
        token = self.token() if token == "" else token
        text = raw_body if raw_body is not None else json.dumps(body)
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        if token is not None:
            self.tokens.append(token)
        if raw_bytes is not None:
            event = _v2_event(headers, raw_bytes)
        else:
            event = _v2_event(headers, text.encode()) if v2 else _v1_event(headers, text)
        response = admin_handler.handler(event, ADMIN_CONTEXT)
        self.raw_responses.append(json.dumps(response))
        return Answer(response["statusCode"], json.loads(response["body"]), response["headers"])

    def executions(self) -> list[dict[str, Any]]:
        listed = self.sfn.list_executions(stateMachineArn=self.state_machine_arn)["executions"]
        return [self.sfn.describe_execution(executionArn=e["executionArn"]) for e in listed]

    def audit(self) -> list[dict[str, Any]]:
        records = [json.loads(line) for line in self.lines]
        return [r for r in records if r.get("message") == "admin request"]


def _v1_event(headers: dict[str, str], body: str) -> dict[str, Any]:
    all_headers = {"Content-Type": "application/json", "Host": "api.example", **headers}
    return {
        "resource": "/admin/generate-snapshot",
        "path": "/admin/generate-snapshot",
        "httpMethod": "POST",
        "headers": all_headers,
        "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
        "queryStringParameters": None,
        "pathParameters": None,
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "httpMethod": "POST",
            "identity": {"sourceIp": "198.51.100.7"},
        },
        "body": body,
        "isBase64Encoded": False,
    }


def _v2_event(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "POST /admin/generate-snapshot",
        "rawPath": "/admin/generate-snapshot",
        "headers": {
            "content-type": "application/json",
            **{k.lower(): v for k, v in headers.items()},
        },
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "http": {
                "method": "POST",
                "path": "/admin/generate-snapshot",
                "sourceIp": "203.0.113.9",
            },
        },
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(
        current=SigningKey.generate("bixarena-1"),
        impostor=SigningKey.generate("bixarena-1"),
        unpublished=SigningKey.generate("bixarena-9"),
    )


@pytest.fixture(scope="module")
def jwks_server(keys: Keys) -> Iterator[JwksServer]:
    with JwksServer([keys.current]) as server:
        yield server


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """Every line the Powertools logger writes, formatted exactly as it goes to CloudWatch."""
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    capture = Capture()
    capture.setFormatter(logger.registered_formatter)
    target = logging.getLogger(logger.name)
    target.addHandler(capture)
    yield lines
    target.removeHandler(capture)


@pytest.fixture
def endpoint(
    jwks_server: JwksServer,
    keys: Keys,
    log_lines: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Endpoint]:
    jwks_server.reset()
    for name in (
        "ADMIN_CLAIM",
        "ADMIN_ROLE",
        "KNOWN_LEADERBOARDS",
        "MAX_BODY_BYTES",
        "JWT_LEEWAY_S",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("SSL_CERT_FILE", jwks_server.ca_file)
    monkeypatch.setenv("JWKS_URL", jwks_server.url)
    monkeypatch.setenv("JWT_ISSUER", ISSUER)
    monkeypatch.setenv("JWT_AUDIENCE", AUDIENCE)
    admin_handler.services.cache_clear()
    with mock_aws():
        sfn = boto3.client("stepfunctions", region_name=REGION)
        arn = _state_machine(sfn, PASS_DEFINITION)
        monkeypatch.setenv("STATE_MACHINE_ARN", arn)
        running = Endpoint(sfn, arn, jwks_server, keys, log_lines)
        yield running
    admin_handler.services.cache_clear()
    requests = len(running.raw_responses)
    assert len(running.audit()) == requests, "one audit line per request"
    printed = capsys.readouterr()
    for token in running.tokens:
        for where, texts in (
            ("a log line", running.lines),
            ("a response", running.raw_responses),
            ("stdout/stderr", [printed.out, printed.err]),
        ):
            assert all(token not in text for text in texts), f"the token leaked into {where}"


def _state_machine(sfn: Any, definition: dict[str, Any], name: str = "leaderboard") -> str:
    role = boto3.client("iam", region_name=REGION).create_role(
        RoleName=f"{name}-role", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]
    return str(
        sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=role)[
            "stateMachineArn"
        ]
    )


# --- accepted -------------------------------------------------------------------------------------
def test_an_admin_starts_a_manual_run(endpoint: Endpoint) -> None:
    answer = endpoint.post()
    assert answer.status == 202, answer.body
    assert answer.body["status"] == "started"
    [execution] = endpoint.executions()
    assert execution["executionArn"] == answer.body["execution_arn"]
    assert execution["status"] == "RUNNING"
    assert NAME_RE.match(execution["name"])
    run = json.loads(execution["input"])
    assert parse_run_request(run) == run, "the input follows the pipeline's contract as is"
    assert run["leaderboards"] == ["overall", "genomics"] and run["bootstrap"] == 200
    assert run["trigger"] == "manual"
    assert run["requested_by"] == "admin@bixarena.example"
    assert run["correlation_id"] == answer.body["correlation_id"]
    assert uuid.UUID(run["correlation_id"]).version == 4
    started = datetime.fromisoformat(run["run_at"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - started).total_seconds()) < 60


def test_the_audit_line_says_who_what_and_the_result(endpoint: Endpoint) -> None:
    answer = endpoint.post()
    [line] = endpoint.audit()
    assert line["audit"] == {
        "sub": "8f0e3a52-7d1c-4b7e-9a51-1c2d3e4f5a6b",
        "leaderboards": ["overall", "genomics"],
        "bootstrap": 200,
        "status": 202,
        "error": None,
        "reason": None,
        "execution_arn": answer.body["execution_arn"],
        "request_id": line["audit"]["request_id"],
        "source_ip": "198.51.100.7",
    }
    assert line["correlation_id"] == answer.body["correlation_id"]


def test_an_empty_body_runs_every_leaderboard_with_the_default_bootstrap(
    endpoint: Endpoint,
) -> None:
    assert endpoint.post(raw_body="").status == 202
    run = json.loads(endpoint.executions()[0]["input"])
    assert (run["leaderboards"], run["bootstrap"]) == ("all", 1000)


def test_publish_false_starts_a_run_that_writes_private_snapshots(endpoint: Endpoint) -> None:
    answer = endpoint.post({"leaderboards": ["overall"], "publish": False})
    assert answer.status == 202, answer.body
    run = json.loads(endpoint.executions()[0]["input"])
    assert parse_run_request(run) == run
    assert (run["leaderboards"], run["publish"]) == (["overall"], False)


def test_publish_defaults_to_true(endpoint: Endpoint) -> None:
    assert endpoint.post({"leaderboards": ["overall"]}).status == 202
    assert json.loads(endpoint.executions()[0]["input"])["publish"] is True


def test_an_http_api_v2_event_with_a_base64_body(endpoint: Endpoint) -> None:
    answer = endpoint.post({"leaderboards": "all", "bootstrap": 100}, v2=True)
    assert answer.status == 202, answer.body
    assert json.loads(endpoint.executions()[0]["input"])["leaderboards"] == "all"
    assert endpoint.audit()[0]["audit"]["source_ip"] == "203.0.113.9"


def test_without_email_the_run_is_attributed_to_the_subject(endpoint: Endpoint) -> None:
    assert endpoint.post(token=endpoint.token(email=None)).status == 202
    assert json.loads(endpoint.executions()[0]["input"])["requested_by"] == claims()["sub"]


def test_cognito_groups_as_the_admin_claim(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADMIN_CLAIM", "cognito:groups")
    groups_token = endpoint.token(roles=None, **{"cognito:groups": ["admin"]})
    assert endpoint.post(token=groups_token).status == 202
    refused = endpoint.post({"leaderboards": ["genetics"], "bootstrap": 100})
    assert (refused.status, refused.body["error"]) == (403, "not_admin")


# --- refused by authentication and authorization ---------------------------------------------------
@pytest.mark.parametrize(
    ("make", "status", "code"),
    [
        (lambda e: None, 401, "missing_token"),
        (lambda e: "not.a.token", 401, "invalid_token"),
        (lambda e: forge_unsigned(claims(), "bixarena-1"), 401, "invalid_token"),
        (
            lambda e: forge_hs256(claims(), e.keys.current.public_pem(), "bixarena-1"),
            401,
            "invalid_token",
        ),
        (lambda e: e.keys.impostor.sign(claims()), 401, "invalid_token"),
        (lambda e: e.token(exp=int(datetime.now(UTC).timestamp()) - 120), 401, "invalid_token"),
        (lambda e: e.token(nbf=int(datetime.now(UTC).timestamp()) + 600), 401, "invalid_token"),
        (lambda e: e.token(iss="urn:someone-else"), 401, "invalid_token"),
        (lambda e: e.token(aud="urn:bixarena:ai"), 401, "invalid_token"),
        (lambda e: e.token(roles=["user"]), 403, "not_admin"),
        (lambda e: e.token(roles=None), 403, "not_admin"),
    ],
    ids=[
        "missing",
        "malformed",
        "alg-none",
        "hs256-with-public-pem",
        "other-key-same-kid",
        "expired",
        "not-yet-valid",
        "wrong-issuer",
        "wrong-audience",
        "no-admin-role",
        "no-roles-claim",
    ],
)
def test_refused_callers_start_nothing(
    endpoint: Endpoint, make: Any, status: int, code: str
) -> None:
    answer = endpoint.post(token=make(endpoint))
    assert (answer.status, answer.body["error"]) == (status, code), answer.body
    assert answer.body["message"]
    if status == 401:
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert endpoint.executions() == []
    [line] = endpoint.audit()
    assert line["audit"]["status"] == status and line["audit"]["execution_arn"] is None


def test_an_unknown_kid_refetches_the_key_set_once_then_401(endpoint: Endpoint) -> None:
    admin_handler.services().jwks.refresh_cooldown_s = 0
    answer = endpoint.post(token=endpoint.keys.unpublished.sign(claims()))
    assert (answer.status, answer.body["error"]) == (401, "invalid_token")
    assert endpoint.jwks.hits == 2, "the first fetch, then exactly one refetch"
    assert endpoint.executions() == []
    assert endpoint.post().status == 202
    assert endpoint.jwks.hits == 2, "known keys come from the cache"


def test_an_unreachable_jwks_is_503(endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWKS_URL", closed_port_url())
    answer = endpoint.post()
    assert (answer.status, answer.body["error"]) == (503, "auth_unavailable")
    assert endpoint.executions() == []


def test_a_jwks_answering_500_is_503(endpoint: Endpoint) -> None:
    endpoint.jwks.mode = "500"
    assert endpoint.post().status == 503
    assert endpoint.executions() == []


def test_a_jwks_outage_keeps_admins_in_with_the_last_good_keys_and_no_fetch_per_request(
    endpoint: Endpoint,
) -> None:
    jwks = admin_handler.services().jwks
    assert endpoint.post({"leaderboards": ["overall"], "bootstrap": 100}).status == 202
    assert endpoint.jwks.hits == 1
    endpoint.jwks.mode = "500"
    jwks.ttl_s = 0  # every request now wants fresh keys, and the auth service fails them
    slugs = ["genomics", "genetics", "immunology", "neuroscience"]
    answers = [endpoint.post({"leaderboards": [slug], "bootstrap": 100}) for slug in slugs]
    assert [a.status for a in answers] == [202] * len(slugs)
    assert endpoint.jwks.hits == 2, "one failed refresh, then the backoff: no fetch per request"
    jwks.max_stale_s = 0  # the last good keys have grown too old to trust
    refused = endpoint.post({"leaderboards": ["pathology"], "bootstrap": 100})
    assert (refused.status, refused.body["error"]) == (503, "auth_unavailable")
    assert endpoint.jwks.hits == 2, "refused at once: the backoff has not passed"


def test_a_jwks_redirect_to_plain_http_is_refused(endpoint: Endpoint, keys: Keys) -> None:
    with JwksServer([keys.current], tls=False) as plain:
        endpoint.jwks.mode = "redirect"
        endpoint.jwks.redirect_to = plain.url
        answer = endpoint.post()
        assert (answer.status, answer.body["error"]) == (503, "auth_unavailable")
        assert "only https:// is followed" in answer.body["message"]
        assert plain.hits == 0
    assert endpoint.executions() == []


def test_a_plain_http_jwks_url_is_a_configuration_error(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JWKS_URL", endpoint.jwks.url.replace("https://", "http://"))
    answer = endpoint.post()
    assert (answer.status, answer.body["error"]) == (500, "internal_error")
    assert any("JWKS_URL: must be an https:// URL" in line for line in endpoint.lines)
    assert endpoint.jwks.hits == 0 and endpoint.executions() == []


# --- the authorizer in front -----------------------------------------------------------------------
METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/v1/POST/admin/generate-snapshot"


def _authorize(endpoint: Endpoint, header: str | None) -> Any:
    """The TOKEN authorizer event API Gateway sends (``header``: the Authorization value)."""
    authorizer_handler.services.cache_clear()
    if header is not None and header.startswith("Bearer "):
        endpoint.tokens.append(header.removeprefix("Bearer "))
    event: dict[str, Any] = {"type": "TOKEN", "methodArn": METHOD_ARN}
    if header is not None:
        event["authorizationToken"] = header
    return authorizer_handler.handler(event, AUTHORIZER_CONTEXT)


def test_the_authorizer_lets_an_admin_through_with_the_principal(endpoint: Endpoint) -> None:
    answer = _authorize(endpoint, f"Bearer {endpoint.token()}")
    assert answer == {
        "principalId": claims()["sub"],
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": METHOD_ARN}
            ],
        },
        "context": {
            "sub": claims()["sub"],
            "email": "admin@bixarena.example",
            "roles": "user admin",
        },
    }
    assert endpoint.executions() == [], "the authorizer starts nothing"


def test_the_authorizer_denies_a_valid_token_without_the_admin_role(endpoint: Endpoint) -> None:
    answer = _authorize(endpoint, f"Bearer {endpoint.token(roles=['user'])}")
    (statement,) = answer["policyDocument"]["Statement"]
    assert (statement["Effect"], statement["Resource"]) == ("Deny", METHOD_ARN)
    assert "context" not in answer


@pytest.mark.parametrize(
    "make",
    [
        lambda e: None,
        lambda e: "Basic dXNlcjpwYXNz",
        lambda e: "Bearer not.a.token",
        lambda e: f"Bearer {forge_unsigned(claims(), 'bixarena-1')}",
        lambda e: f"Bearer {e.keys.impostor.sign(claims())}",
        lambda e: f"Bearer {e.token(exp=int(datetime.now(UTC).timestamp()) - 120)}",
        lambda e: f"Bearer {e.token(aud='urn:bixarena:ai')}",
    ],
    ids=["missing", "basic", "malformed", "alg-none", "other-key", "expired", "wrong-audience"],
)
def test_the_authorizer_refuses_bad_tokens_as_401(endpoint: Endpoint, make: Any) -> None:
    with pytest.raises(Exception) as raised:
        _authorize(endpoint, make(endpoint))
    assert str(raised.value) == "Unauthorized", "API Gateway answers 401 for exactly this message"
    refusals = [json.loads(line) for line in endpoint.lines]
    assert [r["decision"] for r in refusals if r.get("decision")] == ["401"]


def test_the_authorizer_fails_when_the_jwks_is_down(endpoint: Endpoint) -> None:
    endpoint.jwks.mode = "500"
    with pytest.raises(JwksUnavailable) as raised:
        _authorize(endpoint, f"Bearer {endpoint.token()}")
    assert str(raised.value) != "Unauthorized", "a failure (503 at the gateway), not a 401"


# --- refused bodies --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw_body", "status", "code", "named"),
    [
        ("{not json", 400, "invalid_request", "body: not valid JSON"),
        ("[1, 2]", 400, "invalid_request", "body: expected a JSON object"),
        (
            json.dumps({"leaderboards": ["overall"], "seed": 3}),
            400,
            "invalid_request",
            "body: unknown field(s) seed; accepted: leaderboards, bootstrap, publish",
        ),
        (json.dumps({"publish": "no"}), 400, "invalid_request", "publish: expected true or false"),
        (json.dumps({"publish": None}), 400, "invalid_request", "publish: expected true or false"),
        (
            json.dumps({"leaderboards": ["overall", "astrology"]}),
            400,
            "unknown_leaderboard",
            "leaderboards: unknown leaderboard(s) astrology",
        ),
        (json.dumps({"leaderboards": ["Not A Slug"]}), 400, "invalid_request", "leaderboards:"),
        (json.dumps({"leaderboards": []}), 400, "invalid_request", "leaderboards:"),
        (json.dumps({"bootstrap": 5}), 400, "invalid_request", "bootstrap: must be between"),
        (json.dumps({"bootstrap": 10_001}), 400, "invalid_request", "bootstrap: must be between"),
        (json.dumps({"bootstrap": True}), 400, "invalid_request", "bootstrap: expected an integer"),
        (
            json.dumps({"bootstrap": "100"}),
            400,
            "invalid_request",
            "bootstrap: expected an integer",
        ),
        (
            json.dumps({"leaderboards": ["overall"] * 2000}),
            413,
            "payload_too_large",
            "body: larger than 4096 bytes",
        ),
    ],
    ids=[
        "not-json",
        "not-an-object",
        "unknown-field",
        "publish-string",
        "publish-null",
        "unknown-leaderboard",
        "bad-slug",
        "no-leaderboard",
        "bootstrap-too-small",
        "bootstrap-too-large",
        "bootstrap-bool",
        "bootstrap-string",
        "oversized",
    ],
)
def test_bad_bodies_are_refused_naming_the_field(
    endpoint: Endpoint, raw_body: str, status: int, code: str, named: str
) -> None:
    answer = endpoint.post(raw_body=raw_body)
    assert (answer.status, answer.body["error"]) == (status, code), answer.body
    assert named in answer.body["message"]
    assert endpoint.executions() == []


def test_a_body_that_is_not_utf8_is_400(endpoint: Endpoint) -> None:
    answer = endpoint.post(raw_bytes=b'{"bootstrap": "\xff"}')
    assert (answer.status, answer.body["message"]) == (400, "body: not valid JSON")


def test_the_whitelist_and_body_limit_come_from_the_environment(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KNOWN_LEADERBOARDS", "overall, rare-diseases")
    monkeypatch.setenv("MAX_BODY_BYTES", "100")
    assert endpoint.post({"leaderboards": ["genomics"]}).body["error"] == "unknown_leaderboard"
    long_body = {"leaderboards": ["rare-diseases"], "bootstrap": 100, "pad": "x" * 100}
    assert endpoint.post(long_body).status == 413
    assert endpoint.post({"leaderboards": ["rare-diseases"], "bootstrap": 100}).status == 202


# --- concurrent runs -------------------------------------------------------------------------------
def test_a_second_run_over_the_same_leaderboard_is_409(endpoint: Endpoint) -> None:
    first = endpoint.post({"leaderboards": ["overall", "genomics"], "bootstrap": 100})
    assert first.status == 202
    [running] = endpoint.executions()
    second = endpoint.post({"leaderboards": ["genomics", "genetics"], "bootstrap": 100})
    assert (second.status, second.body["error"]) == (409, "run_in_progress")
    assert f"execution {running['name']}" in second.body["message"]
    assert second.body["message"].endswith("is still running for genomics")
    assert second.body["execution_arn"] == running["executionArn"]
    assert len(endpoint.executions()) == 1
    assert endpoint.audit()[1]["audit"]["error"] == "run_in_progress"


def test_two_identical_requests_arriving_together_start_one_run(endpoint: Endpoint) -> None:
    """Both pass the check for running executions before either starts (a barrier holds each
    StartExecution until both got there): Step Functions' name check decides, and the loser is
    answered 409 with the winner's execution ARN."""
    # Both requests must fall in the same minute, as requests arriving together do.
    if datetime.now(UTC).second >= 55:
        time.sleep(61 - datetime.now(UTC).second)
    sfn = admin_handler.services().sfn
    together = threading.Barrier(2, timeout=10)

    def hold(**_: Any) -> None:
        together.wait()  # a handler that returns nothing lets the call go on

    sfn.meta.events.register("before-call.sfn.StartExecution", hold)
    answers: list[Answer] = []

    def request() -> None:
        answers.append(endpoint.post({"leaderboards": ["overall", "genomics"], "bootstrap": 100}))

    threads = [threading.Thread(target=request) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(a.status for a in answers) == [202, 409], [a.body for a in answers]
    started = next(a for a in answers if a.status == 202)
    refused = next(a for a in answers if a.status == 409)
    [execution] = endpoint.executions()
    assert execution["executionArn"] == started.body["execution_arn"]
    assert refused.body["error"] == "run_in_progress"
    assert refused.body["execution_arn"] == execution["executionArn"]
    assert f"execution {execution['name']}" in refused.body["message"]
    assert sorted(line["audit"]["status"] for line in endpoint.audit()) == [202, 409]


def test_the_same_request_a_minute_later_is_refused_by_the_running_one(
    endpoint: Endpoint,
) -> None:
    assert endpoint.post().status == 202
    [running] = endpoint.executions()
    again = endpoint.post()
    assert (again.status, again.body["execution_arn"]) == (409, running["executionArn"])


def test_disjoint_leaderboards_run_side_by_side(endpoint: Endpoint) -> None:
    assert endpoint.post({"leaderboards": ["overall"], "bootstrap": 100}).status == 202
    assert endpoint.post({"leaderboards": ["genomics"], "bootstrap": 100}).status == 202
    assert len(endpoint.executions()) == 2


@pytest.mark.parametrize(
    ("first", "second"), [("all", ["immunology"]), (["immunology"], "all"), ("all", "all")]
)
def test_all_overlaps_everything(endpoint: Endpoint, first: Any, second: Any) -> None:
    assert endpoint.post({"leaderboards": first, "bootstrap": 100}).status == 202
    assert endpoint.post({"leaderboards": second, "bootstrap": 100}).status == 409


def test_a_scheduled_run_blocks_and_a_stopped_one_does_not(endpoint: Endpoint) -> None:
    scheduled = endpoint.sfn.start_execution(
        stateMachineArn=endpoint.state_machine_arn,
        name="scheduled-20260101T060000Z",
        input=json.dumps({"trigger": "scheduled"}),
    )["executionArn"]
    refused = endpoint.post()
    assert refused.status == 409
    assert "scheduled-20260101T060000Z" in refused.body["message"]
    assert "all leaderboards" not in refused.body["message"]  # it names what the admin asked
    endpoint.sfn.stop_execution(executionArn=scheduled)
    assert endpoint.post().status == 202


def test_a_running_execution_with_an_unreadable_input_blocks_everything(
    endpoint: Endpoint,
) -> None:
    endpoint.sfn.start_execution(
        stateMachineArn=endpoint.state_machine_arn,
        name="legacy-run",
        input=json.dumps({"leaderboard": "overall", "replicates": 5}),
    )
    answer = endpoint.post({"leaderboards": ["pathology"], "bootstrap": 100})
    assert answer.status == 409 and "legacy-run" in answer.body["message"]


def test_a_finished_run_does_not_block(jwks_server: JwksServer, keys: Keys) -> None:
    """moto's executing mode runs the Pass state machine to SUCCEEDED; it is no longer RUNNING."""
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name=REGION)
        arn = _state_machine(sfn, PASS_DEFINITION, name="executing")
        done = sfn.start_execution(
            stateMachineArn=arn, name="finished", input=json.dumps({"leaderboards": "all"})
        )["executionArn"]
        for _ in range(100):
            if sfn.describe_execution(executionArn=done)["status"] != "RUNNING":
                break
            time.sleep(0.02)
        assert sfn.describe_execution(executionArn=done)["status"] == "SUCCEEDED"
        assert running_executions(sfn, arn) == []


# --- AWS trouble and the unexpected ----------------------------------------------------------------
def test_step_functions_unreachable_is_503(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SFN", closed_port_url().split("/.well-known")[0])
    answer = endpoint.post()
    assert (answer.status, answer.body["error"]) == (503, "workflow_unavailable")


def test_a_missing_state_machine_is_a_500_without_details(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = endpoint.state_machine_arn.replace(":leaderboard", ":deleted-machine")
    monkeypatch.setenv("STATE_MACHINE_ARN", gone)
    answer = endpoint.post()
    assert (answer.status, answer.body["error"]) == (500, "internal_error")
    assert "deleted-machine" not in answer.body["message"]
    assert "Traceback" not in json.dumps(answer.body)
    assert answer.body["message"].endswith(endpoint.audit()[0]["correlation_id"])
    assert any("StateMachineDoesNotExist" in line for line in endpoint.lines)


def test_missing_configuration_is_a_500(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JWT_AUDIENCE")
    answer = endpoint.post()
    assert (answer.status, answer.body["error"]) == (500, "internal_error")
    assert any("JWT_AUDIENCE not set" in line for line in endpoint.lines)


# --- the Step Functions layer on its own -----------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "status", "error", "http"),
    [
        ("ThrottlingException", 400, StepFunctionsUnavailable, 503),
        ("ExecutionLimitExceeded", 400, StepFunctionsUnavailable, 503),
        ("InternalFailure", 500, StepFunctionsUnavailable, 503),
        ("AccessDeniedException", 400, ConfigurationError, 500),
        ("StateMachineDoesNotExist", 400, ConfigurationError, 500),
    ],
)
def test_start_execution_names_step_functions_failures(
    code: str, status: int, error: type[Exception], http: int
) -> None:
    # moto cannot throttle: botocore's own Stubber answers with the error Step Functions would.
    sfn = boto3.client(
        "stepfunctions", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    arn = f"arn:aws:states:{REGION}:123456789012:stateMachine:leaderboard"
    with Stubber(sfn) as stub:
        stub.add_client_error("start_execution", service_error_code=code, http_status_code=status)
        with pytest.raises(error, match=code) as raised:
            start_execution(sfn, arn, parse_run_request({}), "manual-x")
    assert admin.status_of(raised.value)[0] == http


def _running(name: str, leaderboards: Any) -> RunningExecution:
    return RunningExecution(
        arn=f"arn:aws:states:{REGION}:1:execution:leaderboard:{name}",
        name=name,
        started_at=datetime(2026, 1, 1, 6, tzinfo=UTC),
        request=None if leaderboards is None else parse_run_request({"leaderboards": leaderboards}),
    )


def test_overlap_rules() -> None:
    running = [_running("a", ["overall"]), _running("b", ["genomics", "genetics"])]
    assert overlapping(["pathology"], running) == []
    assert [e.name for e in overlapping(["genetics"], running)] == ["b"]
    assert [e.name for e in overlapping("all", running)] == ["a", "b"]
    assert [e.name for e in overlapping(["pathology"], [_running("c", "all")])] == ["c"]
    assert [e.name for e in overlapping(["pathology"], [_running("d", None)])] == ["d"]


@pytest.mark.parametrize(
    ("wanted", "covered", "tail"),
    [
        (["genetics", "overall"], ["genetics", "genomics"], "for genetics"),
        ("all", ["genetics", "genomics"], "for genetics, genomics"),
        (["overall", "genomics"], "all", "for overall, genomics"),
        ("all", "all", "for all leaderboards"),
    ],
)
def test_refusal_names_the_execution_and_the_shared_leaderboards(
    wanted: Any, covered: Any, tail: str
) -> None:
    with pytest.raises(RunInProgress) as raised:
        refuse_overlap(wanted, [_running("scheduled-1", covered)])
    assert str(raised.value) == (
        f"execution scheduled-1 (started 2026-01-01T06:00:00Z) is still running {tail}"
    )
    assert raised.value.execution.name == "scheduled-1"


def test_parse_input_is_none_for_inputs_off_contract() -> None:
    assert parse_input('{"leaderboards": ["overall"]}') is not None
    assert parse_input(None) == parse_run_request({})
    assert parse_input("{broken") is None
    assert parse_input('{"unknown": 1}') is None


# --- pure request logic ----------------------------------------------------------------------------
CONFIG = admin.AdminConfig(
    state_machine_arn="arn:aws:states:us-east-1:1:stateMachine:leaderboard",
    known_leaderboards=frozenset(REFERENCE_LEADERBOARDS),
)


def test_reference_leaderboards_are_overall_and_twenty_categories() -> None:
    assert len(REFERENCE_LEADERBOARDS) == 21 and len(set(REFERENCE_LEADERBOARDS)) == 21
    assert REFERENCE_LEADERBOARDS[0] == "overall"
    assert {"cancer-biology", "neuroscience", "pharmacology-and-toxicology"} <= set(
        REFERENCE_LEADERBOARDS
    )


def test_parse_body() -> None:
    assert admin.parse_body(b"", CONFIG) == admin.SnapshotRequest("all", 1000, publish=True)
    assert admin.parse_body(b'{"publish": false}', CONFIG).publish is False
    assert admin.parse_body(b'{"leaderboards": "overall,genomics"}', CONFIG).leaderboards == [
        "overall",
        "genomics",
    ]
    with pytest.raises(LeaderboardNotFound):
        admin.parse_body(b'{"leaderboards": ["nope"]}', CONFIG)
    with pytest.raises(InvalidInput, match="not valid JSON"):
        admin.parse_body(b"[" * 3000, CONFIG)
    with pytest.raises(admin.RequestTooLarge):
        admin.parse_body(b" " * 4097, CONFIG)


def test_parse_http_event_reads_v1_and_v2_headers() -> None:
    v1 = admin.parse_http_event({"headers": {"AUTHORIZATION": "Bearer t"}, "body": "{}"}, 4096)
    assert v1.headers == {"authorization": "Bearer t"} and v1.body == b"{}"
    bare = admin.parse_http_event({"headers": None, "body": None, "requestContext": None}, 4096)
    assert (bare.headers, bare.body, bare.request_id, bare.source_ip) == ({}, b"", None, None)
    broken = admin.parse_http_event({"body": "%%%", "isBase64Encoded": True}, 4096)
    with pytest.raises(InvalidInput, match="not valid JSON"):
        admin.parse_body(broken.body, CONFIG)
    huge = base64.b64encode(b"x" * 10_000).decode()
    oversized = admin.parse_http_event({"body": huge, "isBase64Encoded": True}, 4096)
    with pytest.raises(admin.RequestTooLarge):
        admin.parse_body(oversized.body, CONFIG)


def test_run_request_and_execution_name() -> None:
    now = datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=UTC)
    principal = Principal(sub="s" * 300, email=None, roles=("admin",))
    run = admin.run_request(admin.SnapshotRequest(["overall"], 50), principal, "cid", now)
    assert run["run_at"] == "2026-03-04T05:06:07Z"
    assert run["requested_by"] == "s" * 200
    assert (run["trigger"], run["publish"], run["seed"]) == ("manual", True, 0)
    private = admin.SnapshotRequest(["overall"], 50, publish=False)
    assert admin.run_request(private, principal, "cid", now)["publish"] is False
    assert admin.execution_name(now, "all") == "manual-20260304T0506Z-all"
    # The selection, whatever its order or repeats, and the minute make the name.
    digest = hashlib.sha256(b"genomics,overall").hexdigest()[:12]
    same_minute = now.replace(second=59)
    for selection in (["overall", "genomics"], ["genomics", "overall", "genomics"]):
        assert admin.execution_name(same_minute, selection) == f"manual-20260304T0506Z-{digest}"
    assert admin.execution_name(now.replace(minute=7), ["overall", "genomics"]).startswith(
        "manual-20260304T0507Z-"
    )
    assert admin.execution_name(now, ["overall"]) != admin.execution_name(now, ["genomics"])


def test_admin_config_from_env() -> None:
    with pytest.raises(ConfigurationError, match="STATE_MACHINE_ARN"):
        admin.AdminConfig.from_env({})
    env = {"STATE_MACHINE_ARN": CONFIG.state_machine_arn}
    assert admin.AdminConfig.from_env(env) == CONFIG
    with pytest.raises(ConfigurationError, match="KNOWN_LEADERBOARDS"):
        admin.AdminConfig.from_env({**env, "KNOWN_LEADERBOARDS": "overall,Bad Slug"})
    with pytest.raises(ConfigurationError, match="MAX_BODY_BYTES"):
        admin.AdminConfig.from_env({**env, "MAX_BODY_BYTES": "lots"})
    with pytest.raises(ConfigurationError, match="MAX_BODY_BYTES"):
        admin.AdminConfig.from_env({**env, "MAX_BODY_BYTES": "\u00b2"})
