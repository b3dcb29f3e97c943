"""Request and response logic of the admin endpoint ``POST /admin/generate-snapshot``, and of
the API Gateway authorizer in front of it.

Pure functions from an API Gateway proxy event (REST API v1 or HTTP API v2 payload) to a request,
from the request body to the leaderboards, bootstrap count and visibility wanted (the pipeline's
own contract, plus a whitelist of known leaderboards since the endpoint has no database access),
from those to
the execution input, and from a named error to its HTTP status and JSON body
``{"error": code, "message": ...}``. Messages come from our own errors, which never hold the
token. The Step Functions calls live in ``common.stepfunctions.executions``; the handler strings them together.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from common.auth import (
    AuthError,
    InvalidToken,
    JwksUnavailable,
    MissingToken,
    NotAdmin,
    Principal,
)
from common.contracts import (
    BOOTSTRAP_DEFAULT,
    REFERENCE_LEADERBOARDS,
    SLUG_RE,
    RunRequest,
    parse_bootstrap,
    parse_leaderboards,
    parse_run_request,
)
from common.errors import (
    ConfigurationError,
    InvalidInput,
    LeaderboardNotFound,
    PipelineError,
    StepFunctionsUnavailable,
)
from common.stepfunctions.executions import ExecutionNameTaken, RunInProgress, Selection

DEFAULT_MAX_BODY_BYTES = 4096
STALE_KEYS_WARNING = (
    "BixArena's JWKS could not be refreshed: tokens are checked against the last keys fetched"
)
BODY_KEYS = ("leaderboards", "bootstrap", "publish")

Response = dict[str, Any]


class RequestTooLarge(PipelineError):
    """The request body is larger than MAX_BODY_BYTES."""


class RunAlreadyStarted(PipelineError):
    """An identical request (same leaderboards, same minute) already started a run."""

    def __init__(self, message: str, execution_arn: str) -> None:
        super().__init__(message)
        self.execution_arn = execution_arn


class Unauthorized(AuthError):
    """How an authorizer tells API Gateway to answer 401: an error whose message is exactly this."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


@dataclass(frozen=True)
class AdminConfig:
    """The endpoint's own settings (the token checks are ``common.auth.AuthConfig``)."""

    state_machine_arn: str
    known_leaderboards: frozenset[str]
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AdminConfig:
        arn = env.get("STATE_MACHINE_ARN")
        if not arn:
            raise ConfigurationError("STATE_MACHINE_ARN is not set")
        raw_known = env.get("KNOWN_LEADERBOARDS")
        known = (
            tuple(s.strip() for s in raw_known.split(",") if s.strip())
            if raw_known
            else REFERENCE_LEADERBOARDS
        )
        bad = [slug for slug in known if not SLUG_RE.fullmatch(slug)]
        if bad or not known:
            raise ConfigurationError(f"KNOWN_LEADERBOARDS: invalid slug(s) {', '.join(bad)}")
        raw_max = env.get("MAX_BODY_BYTES") or str(DEFAULT_MAX_BODY_BYTES)
        if not raw_max.isdecimal() or int(raw_max) < 64:
            raise ConfigurationError("MAX_BODY_BYTES: expected an integer of at least 64")
        return cls(
            state_machine_arn=arn, known_leaderboards=frozenset(known), max_body_bytes=int(raw_max)
        )


@dataclass(frozen=True)
class HttpRequest:
    """What the endpoint reads from a proxy event; header names are lower-case."""

    headers: dict[str, str]
    body: bytes
    request_id: str | None
    source_ip: str | None


@dataclass(frozen=True)
class SnapshotRequest:
    """The admin's wish: which leaderboards, how many bootstrap replicates, and whether the
    snapshots go public at once (``publish: false`` writes them private, for review)."""

    leaderboards: Selection
    bootstrap: int
    publish: bool = True


@dataclass
class Audit:
    """What the audit line of one request says; filled in as the request gets further."""

    correlation_id: str
    request_id: str | None
    source_ip: str | None
    sub: str | None = None
    leaderboards: Selection | None = None
    bootstrap: int | None = None
    execution_arn: str | None = None
    reason: str | None = None


def parse_http_event(event: Mapping[str, Any], max_body_bytes: int) -> HttpRequest:
    """Headers and body of a REST API (v1) or HTTP API (v2) proxy event.

    A body over ``max_body_bytes`` is not decoded: it is kept as is and refused by ``parse_body``.
    """
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    context = event.get("requestContext") or {}
    source_ip = (context.get("identity") or {}).get("sourceIp") or (context.get("http") or {}).get(
        "sourceIp"
    )
    raw = event.get("body") or ""
    body = raw.encode() if isinstance(raw, str) else bytes(raw)
    # Base64 is 4/3 the size of what it encodes: anything longer is over the limit anyway.
    if event.get("isBase64Encoded") and len(body) <= 4 * (max_body_bytes // 3 + 1):
        try:
            body = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            body = b"\xff"  # not UTF-8, so parse_body reports a body that is not JSON
    return HttpRequest(
        headers=headers,
        body=body,
        request_id=context.get("requestId"),
        source_ip=source_ip if isinstance(source_ip, str) else None,
    )


def parse_body(body: bytes, config: AdminConfig) -> SnapshotRequest:
    """Validate the body against the pipeline's contract and the known leaderboards.

    An empty body means the defaults: every leaderboard, the default bootstrap count.
    """
    if len(body) > config.max_body_bytes:
        raise RequestTooLarge(f"body: larger than {config.max_body_bytes} bytes")
    try:
        raw = json.loads(body.decode("utf-8")) if body.strip() else {}
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidInput("body: not valid JSON") from None
    if not isinstance(raw, dict):
        raise InvalidInput("body: expected a JSON object")
    unknown = sorted(str(key)[:40] for key in set(raw) - set(BODY_KEYS))
    if unknown:
        raise InvalidInput(
            f"body: unknown field(s) {', '.join(unknown[:5])}; accepted: {', '.join(BODY_KEYS)}"
        )
    leaderboards = parse_leaderboards(raw.get("leaderboards", "all"))
    if isinstance(leaderboards, list):
        missing = [slug for slug in leaderboards if slug not in config.known_leaderboards]
        if missing:
            raise LeaderboardNotFound(f"leaderboards: unknown leaderboard(s) {', '.join(missing)}")
    publish = raw.get("publish", True)
    if not isinstance(publish, bool):
        raise InvalidInput("publish: expected true or false")
    return SnapshotRequest(
        leaderboards=leaderboards,
        bootstrap=parse_bootstrap(raw.get("bootstrap", BOOTSTRAP_DEFAULT)),
        publish=publish,
    )


def run_request(
    wanted: SnapshotRequest, principal: Principal, correlation_id: str, now: datetime
) -> RunRequest:
    """The execution input of a manual run, checked against the pipeline's input contract."""
    return parse_run_request(
        {
            "leaderboards": wanted.leaderboards,
            "bootstrap": wanted.bootstrap,
            "trigger": "manual",
            "requested_by": principal.label,
            "correlation_id": correlation_id,
            "run_at": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "publish": wanted.publish,
        }
    )


def execution_name(now: datetime, leaderboards: Selection) -> str:
    """The same name for the same selection in the same minute: ``manual-20260101T1200Z-all``,
    or the selection's digest, ``manual-20260101T1200Z-3f2a9c0e1b7d``. Step Functions refuses a
    second execution of a name, atomically, so two identical requests arriving together start
    one run, whatever the order in which they passed the check for running executions."""
    which = (
        "all"
        if leaderboards == "all"
        else hashlib.sha256(",".join(sorted(set(leaderboards))).encode()).hexdigest()[:12]
    )
    return f"manual-{now.astimezone(UTC):%Y%m%dT%H%MZ}-{which}"


def duplicate_of(taken: ExecutionNameTaken) -> RunAlreadyStarted:
    """The answer to a request whose run an identical request started this minute."""
    return RunAlreadyStarted(
        "an identical request started a run this minute: execution "
        f"{taken.execution_arn.rsplit(':', 1)[-1]}",
        taken.execution_arn,
    )


def json_response(
    status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> Response:
    return {
        "statusCode": status,
        "headers": {
            "Content-Type": "application/json",
            "Cache-Control": "no-store",
            **(headers or {}),
        },
        "body": json.dumps(body),
    }


def accepted(execution_arn: str, correlation_id: str) -> Response:
    return json_response(
        202, {"execution_arn": execution_arn, "correlation_id": correlation_id, "status": "started"}
    )


_STATUSES: tuple[tuple[type[Exception], int, str], ...] = (
    (RequestTooLarge, 413, "payload_too_large"),
    (LeaderboardNotFound, 400, "unknown_leaderboard"),
    (InvalidInput, 400, "invalid_request"),
    (MissingToken, 401, "missing_token"),
    (InvalidToken, 401, "invalid_token"),
    (NotAdmin, 403, "not_admin"),
    (RunInProgress, 409, "run_in_progress"),
    (RunAlreadyStarted, 409, "run_in_progress"),
    (JwksUnavailable, 503, "auth_unavailable"),
    (StepFunctionsUnavailable, 503, "workflow_unavailable"),
)


def status_of(exc: BaseException) -> tuple[int, str]:
    """HTTP status and error code of an error; anything unnamed is a 500 ``internal_error``."""
    return next(
        ((status, code) for kind, status, code in _STATUSES if isinstance(exc, kind)),
        (500, "internal_error"),
    )


def error_response(exc: BaseException, correlation_id: str) -> Response:
    status, code = status_of(exc)
    message = (
        str(exc)
        if status != 500
        else f"unexpected error; the operators can trace it with correlation id {correlation_id}"
    )
    body = {"error": code, "message": message}
    if isinstance(exc, RunInProgress):
        body["execution_arn"] = exc.execution.arn
    elif isinstance(exc, RunAlreadyStarted):
        body["execution_arn"] = exc.execution_arn
    headers: dict[str, str] = {}
    if isinstance(exc, MissingToken):
        headers["WWW-Authenticate"] = 'Bearer realm="bixarena-leaderboard"'
    elif isinstance(exc, InvalidToken):
        headers["WWW-Authenticate"] = 'Bearer realm="bixarena-leaderboard", error="invalid_token"'
    return json_response(status, body, headers)


# --- the authorizer -----------------------------------------------------------------------------
def authorizer_headers(event: Mapping[str, Any]) -> dict[str, str]:
    """The request's Authorization header as a TOKEN authorizer event carries it."""
    token = event.get("authorizationToken")
    return {"authorization": token} if isinstance(token, str) else {}


def authorizer_policy(principal_id: str, method_arn: str, *, allow: bool) -> dict[str, Any]:
    """The authorizer's answer for the one method it guards; API Gateway caches it per token."""
    return {
        "principalId": principal_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Action": "execute-api:Invoke",
                    "Effect": "Allow" if allow else "Deny",
                    "Resource": method_arn,
                }
            ],
        },
    }


def allow(principal: Principal, method_arn: str) -> dict[str, Any]:
    """Let an admin through; the principal goes to the function in ``requestContext.authorizer``
    (string values only: API Gateway's rule)."""
    return {
        **authorizer_policy(principal.sub, method_arn, allow=True),
        "context": {
            "sub": principal.sub,
            "email": principal.email or "",
            "roles": " ".join(principal.roles),
        },
    }


def audit_line(audit: Audit, response: Response) -> dict[str, Any]:
    """The structured fields of the request's audit log line: who, what, and the result."""
    body = json.loads(response["body"])
    return {
        "audit": {
            "sub": audit.sub,
            "leaderboards": audit.leaderboards,
            "bootstrap": audit.bootstrap,
            "status": response["statusCode"],
            "error": body.get("error"),
            "reason": audit.reason,
            "execution_arn": audit.execution_arn,
            "request_id": audit.request_id,
            "source_ip": audit.source_ip,
        }
    }
