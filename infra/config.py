"""The stack's configuration: CDK context values parsed into one typed, validated dataclass.

With no context at all the stack is a self-contained sandbox (its own VPC, empty secrets). A
production deployment passes its VPC, subnets, database security group and secrets as context
values (``cdk deploy -c vpcId=vpc-... -c privateSubnetIds=subnet-a,subnet-b ...`` or the
``context`` block of cdk.json). Values given with ``-c`` arrive as strings, values from cdk.json as
JSON; both are accepted. A bad value stops synthesis with one line naming the context key.
"""

from __future__ import annotations

import json
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from common.contracts import parse_bootstrap, parse_leaderboards
from common.errors import InvalidInput, PipelineError
from common.filters import parse_filters
from common.style_boards import canonical, parse_style_boards

DEFAULT_SCHEDULE = "cron(0 2 * * ? *)"
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
)  # fmt: skip
"""The retention periods CloudWatch Logs accepts."""

_ENV_NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,18}[a-z0-9]")
_VPC_RE = re.compile(r"vpc-[0-9a-f]{8,17}")
_SUBNET_RE = re.compile(r"subnet-[0-9a-f]{8,17}")
_SG_RE = re.compile(r"sg-[0-9a-f]{8,17}")
_AZ_RE = re.compile(r"[a-z]{2}(-[a-z]+)+-\d[a-z]")
# A complete secret ARN ends with the 6-character suffix Secrets Manager appends to the name:
# IAM policies need it (a partial ARN would have to be widened with wildcards).
_SECRET_ARN_RE = re.compile(
    r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}"
)
_SCHEDULE_RE = re.compile(r"(cron|rate|at)\(.+\)")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CLAIM_RE = re.compile(r"[A-Za-z0-9_:.\-/]{1,100}")
_OURS_RE = re.compile(r"[a-z][A-Za-z0-9]*")
"""Our keys are camelCase; CDK's own context keys carry ':', '@', '/' or '-'."""


class InvalidContext(ValueError):
    """A CDK context value is missing, malformed or inconsistent with another one."""


@dataclass(frozen=True)
class ExistingNetwork:
    """Production: the VPC, the private subnets the functions run in, and the database's SG."""

    vpc_id: str
    private_subnet_ids: tuple[str, ...]
    availability_zones: tuple[str, ...]
    database_security_group_id: str


@dataclass(frozen=True)
class StackConfig:
    environment: str
    network: ExistingNetwork | None
    """None: the stack creates its own VPC (sandbox)."""
    database_port: int
    database_secret_arn: str | None
    """None: the stack creates an empty secret to fill in after deploy."""
    slack_secret_arn: str | None
    schedule_expression: str
    schedule_time_zone: str
    schedule_enabled: bool
    leaderboards: list[str] | Literal["all"]
    bootstrap: int
    alarm_email: str | None
    map_max_concurrency: int
    artifact_expiry_days: int
    log_retention_days: int
    jwks_url: str | None
    jwt_issuer: str
    jwt_audience: str
    admin_claim: str
    admin_role: str
    api_rate_limit: float
    api_burst_limit: int
    create_api_gateway_logs_role: bool
    min_battles: int | None
    min_models: int | None
    min_evals: int | None
    leaderboard_filters: str | None
    style_control_leaderboards: str | None
    """STYLE_CONTROL_LEADERBOARDS of the stages (canonical JSON), None: nothing mapped."""

    @property
    def name_prefix(self) -> str:
        """Prefix of every physical name, so two environments can share an account."""
        return f"bixarena-leaderboard-{self.environment}"

    @property
    def state_machine_name(self) -> str:
        return self.name_prefix

    @property
    def creates_vpc(self) -> bool:
        return self.network is None


CONTEXT_KEYS: dict[str, str] = {
    "environment": "environment name, part of every resource name (default: sandbox)",
    "vpcId": "existing VPC (production); without it the stack creates a sandbox VPC",
    "privateSubnetIds": "private subnets of vpcId for the functions (list or comma-separated)",
    "availabilityZones": "the AZs of privateSubnetIds, in the same order (with vpcId)",
    "databaseSecurityGroupId": "security group of the PostgreSQL instance (with vpcId)",
    "databasePort": "PostgreSQL port (default: 5432)",
    "databaseSecretArn": "complete ARN of the RDS-format database secret (default: created empty)",
    "slackSecretArn": "complete ARN of the Slack webhook secret (default: created empty)",
    "scheduleExpression": f"EventBridge Scheduler expression (default: {DEFAULT_SCHEDULE})",
    "scheduleTimeZone": "IANA time zone of the schedule (default: UTC)",
    "scheduleEnabled": "whether the daily schedule is enabled (default: true)",
    "leaderboards": "leaderboards of the scheduled run: 'all' or slugs (default: all)",
    "bootstrap": "bootstrap replicates of the scheduled run (default: 1000)",
    "alarmEmail": "e-mail address subscribed to the alarm topic (optional)",
    "mapMaxConcurrency": "leaderboards ranked and published at once (default: 4)",
    "artifactExpiryDays": "days before run artifacts in S3 expire (default: 30)",
    "logRetentionDays": "retention of every log group, in days (default: 90)",
    "jwksUrl": "JWKS URL of BixArena's auth service (admin endpoint; unset: refuses all)",
    "jwtIssuer": "expected JWT issuer (default: urn:bixarena:auth)",
    "jwtAudience": "expected JWT audience (default: urn:bixarena:leaderboard)",
    "adminClaim": "JWT claim holding the roles (default: roles)",
    "adminRole": "role that grants admin (default: admin)",
    "apiRateLimit": "admin endpoint steady-state requests per second (default: 1)",
    "apiBurstLimit": "admin endpoint burst (default: 5)",
    "createApiGatewayLogsRole": "set API Gateway's account-level CloudWatch role (default: true)",
    "minBattles": "MIN_BATTLES of the stages (default: the stages' own)",
    "minModels": "MIN_MODELS of the stages (default: the stages' own)",
    "minEvals": "MIN_EVALS of the stages (default: the stages' own)",
    "leaderboardFilters": "LEADERBOARD_FILTERS JSON of the stages (default: the stages' own)",
    "styleControlLeaderboards": "JSON object {base slug: style-controlled slug}: the rows that "
    "publish style-controlled rankings (default: none, computed and reported only)",
}
"""Every context key the stack reads, with what it means (docs/deploy.md shows the same table)."""


def _str(ctx: Mapping[str, Any], key: str, default: str | None = None) -> str | None:
    value = ctx.get(key)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise InvalidContext(f"{key}: expected a string, got {type(value).__name__}")
    return value.strip()


def _matching(ctx: Mapping[str, Any], key: str, pattern: re.Pattern[str], what: str) -> str | None:
    value = _str(ctx, key)
    if value is not None and not pattern.fullmatch(value):
        raise InvalidContext(f"{key}: {value[:80]!r} is not {what}")
    return value


def _int(ctx: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = ctx.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidContext(f"{key}: expected an integer, got {str(value)[:40]!r}")
    if not low <= value <= high:
        raise InvalidContext(f"{key}: must be between {low} and {high}, got {value}")
    return value


def _optional_int(ctx: Mapping[str, Any], key: str, low: int, high: int) -> int | None:
    if ctx.get(key) in (None, ""):
        return None
    return _int(ctx, key, low, low, high)


def _float(ctx: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = ctx.get(key)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidContext(f"{key}: expected a number, got {str(value)[:40]!r}") from None
    if isinstance(value, bool) or not low <= number <= high:
        raise InvalidContext(f"{key}: must be between {low:g} and {high:g}, got {value}")
    return number


def _bool(ctx: Mapping[str, Any], key: str, default: bool) -> bool:
    value = ctx.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InvalidContext(f"{key}: expected true or false, got {str(value)[:40]!r}")


def _list(ctx: Mapping[str, Any], key: str) -> list[Any] | None:
    """A list from JSON, a JSON array in a string, or a comma-separated string."""
    value = ctx.get(key)
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise InvalidContext(f"{key}: {text[:60]!r} is not a JSON array") from None
        else:
            value = [part.strip() for part in text.split(",") if part.strip()]
    if not isinstance(value, list):
        raise InvalidContext(f"{key}: expected a list or a comma-separated string")
    return value


def _ids(ctx: Mapping[str, Any], key: str, pattern: re.Pattern[str], what: str) -> tuple[str, ...]:
    values = _list(ctx, key) or []
    for value in values:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise InvalidContext(f"{key}: {str(value)[:60]!r} is not {what}")
    if len(set(values)) != len(values):
        raise InvalidContext(f"{key}: lists the same value twice")
    return tuple(values)


def _network(ctx: Mapping[str, Any]) -> ExistingNetwork | None:
    vpc_id = _matching(ctx, "vpcId", _VPC_RE, "a VPC id (vpc-...)")
    subnets = _ids(ctx, "privateSubnetIds", _SUBNET_RE, "a subnet id (subnet-...)")
    zones = _ids(ctx, "availabilityZones", _AZ_RE, "an availability zone (e.g. us-east-1a)")
    db_sg = _matching(ctx, "databaseSecurityGroupId", _SG_RE, "a security group id (sg-...)")
    if vpc_id is None:
        for key, given in (
            ("privateSubnetIds", subnets),
            ("availabilityZones", zones),
            ("databaseSecurityGroupId", db_sg),
        ):
            if given:
                raise InvalidContext(f"{key}: only valid with vpcId (without it a VPC is created)")
        return None
    if not subnets:
        raise InvalidContext("privateSubnetIds: required with vpcId (the functions' subnets)")
    if db_sg is None:
        raise InvalidContext("databaseSecurityGroupId: required with vpcId (the database's SG)")
    if len(zones) != len(subnets):
        raise InvalidContext(
            "availabilityZones: required with vpcId, one zone per private subnet, in the same order"
        )
    return ExistingNetwork(vpc_id, subnets, zones, db_sg)


def _schedule_expression(ctx: Mapping[str, Any], zone: str) -> str:
    expression = (
        _matching(
            ctx, "scheduleExpression", _SCHEDULE_RE, "a cron(...), rate(...) or at(...) expression"
        )
        or DEFAULT_SCHEDULE
    )
    skipped = skipped_run(expression, zoneinfo.ZoneInfo(zone), datetime.now(UTC).date())
    if skipped is not None:
        raise InvalidContext(
            f"scheduleExpression: {expression} in {zone} names a time that does not exist on"
            f" {skipped:%Y-%m-%d}, when clocks go forward, and EventBridge Scheduler skips that"
            " day's run: choose a time outside the hour the clocks skip"
        )
    return expression


_DAILY_CRON_RE = re.compile(r"cron\((\d+(?:,\d+)*) (\d+(?:,\d+)*) .*\)")
DST_YEARS = 10
"""How many years ahead a schedule's times are checked against the zone's clock changes."""


def skipped_run(expression: str, zone: zoneinfo.ZoneInfo, today: date) -> date | None:
    """The first day within DST_YEARS of ``today`` on which a cron schedule's fixed time of day
    does not exist in ``zone`` (the hour a clock change skips), or None. Scheduler then skips
    the run rather than moving it (its documentation, "Daylight savings time"): a missed day.
    Schedules with ranges or steps in their minutes or hours are not checked."""
    found = _DAILY_CRON_RE.fullmatch(expression.strip())
    if found is None:
        return None
    times = [(int(h), int(m)) for h in found[2].split(",") for m in found[1].split(",")]
    day, end = today, date(today.year + DST_YEARS, 1, 1)
    while day < end:
        for hour, minute in times:
            if hour > 23 or minute > 59:
                continue
            wall = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
            back = wall.astimezone(UTC).astimezone(zone)
            if (back.hour, back.minute) != (hour, minute):
                return day
        day += timedelta(days=1)
    return None


def _schedule_time_zone(ctx: Mapping[str, Any]) -> str:
    zone = _str(ctx, "scheduleTimeZone", "UTC") or "UTC"
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidContext(f"scheduleTimeZone: {zone[:60]!r} is not an IANA time zone") from None
    return zone


def _leaderboards(ctx: Mapping[str, Any]) -> list[str] | Literal["all"]:
    raw = ctx.get("leaderboards", "all")
    if isinstance(raw, str) and raw.strip().startswith("["):
        raw = _list(ctx, "leaderboards")
    try:
        return parse_leaderboards(raw)
    except InvalidInput as exc:
        raise InvalidContext(str(exc)) from None


def _bootstrap(ctx: Mapping[str, Any]) -> int:
    raw = ctx.get("bootstrap", 1000)
    if isinstance(raw, str) and raw.strip().isdecimal():
        raw = int(raw)
    try:
        return parse_bootstrap(raw)
    except InvalidInput as exc:
        raise InvalidContext(str(exc)) from None


def _leaderboard_filters(ctx: Mapping[str, Any]) -> str | None:
    value = ctx.get("leaderboardFilters")
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise InvalidContext("leaderboardFilters: not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidContext("leaderboardFilters: expected a JSON object")
    text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    try:
        parse_filters(text)  # the fetch stage's own parser: a typo fails the synth, not a run
    except PipelineError as exc:
        raise InvalidContext(f"leaderboardFilters: {exc}") from None
    return text


def _style_control(ctx: Mapping[str, Any], leaderboards: list[str] | Literal["all"]) -> str | None:
    try:
        mapping = parse_style_boards(
            ctx.get("styleControlLeaderboards"), "styleControlLeaderboards"
        )
    except PipelineError as exc:
        raise InvalidContext(str(exc)) from None
    named = (
        [slug for slug in leaderboards if slug in mapping.values()] if leaderboards != "all" else []
    )
    if named:
        raise InvalidContext(
            f"leaderboards: {named[0]} is a style-controlled leaderboard (styleControlLeaderboards);"
            " select its base leaderboard"
        )
    return canonical(mapping) if mapping else None


def _check_unknown_keys(ctx: Mapping[str, Any]) -> None:
    unknown = sorted(k for k in ctx if _OURS_RE.fullmatch(k) and k not in CONTEXT_KEYS)
    if unknown:
        raise InvalidContext(
            f"{unknown[0]}: unknown context key (known: {', '.join(sorted(CONTEXT_KEYS))})"
        )


def parse_context(ctx: Mapping[str, Any]) -> StackConfig:
    """Validate the CDK context (CDK's own keys are ignored) and fill in defaults."""
    _check_unknown_keys(ctx)
    environment = _str(ctx, "environment", "sandbox") or "sandbox"
    if not _ENV_NAME_RE.fullmatch(environment):
        raise InvalidContext(
            f"environment: {environment[:40]!r} must be 2-20 lowercase letters, digits or '-'"
        )
    jwks_url = _str(ctx, "jwksUrl")
    if jwks_url is not None and not jwks_url.startswith("https://"):
        raise InvalidContext("jwksUrl: must be an https:// URL")
    retention = _int(ctx, "logRetentionDays", 90, 1, 3653)
    if retention not in LOG_RETENTION_DAYS:
        raise InvalidContext(
            f"logRetentionDays: {retention} is not one of {', '.join(map(str, LOG_RETENTION_DAYS))}"
        )
    secret_what = "a complete Secrets Manager secret ARN (ending in -XXXXXX)"
    leaderboards = _leaderboards(ctx)
    claim = "1-100 letters, digits or _:.-/"
    schedule_zone = _schedule_time_zone(ctx)
    return StackConfig(
        environment=environment,
        network=_network(ctx),
        database_port=_int(ctx, "databasePort", 5432, 1, 65535),
        database_secret_arn=_matching(ctx, "databaseSecretArn", _SECRET_ARN_RE, secret_what),
        slack_secret_arn=_matching(ctx, "slackSecretArn", _SECRET_ARN_RE, secret_what),
        schedule_expression=_schedule_expression(ctx, schedule_zone),
        schedule_time_zone=schedule_zone,
        schedule_enabled=_bool(ctx, "scheduleEnabled", True),
        leaderboards=leaderboards,
        bootstrap=_bootstrap(ctx),
        alarm_email=_matching(ctx, "alarmEmail", _EMAIL_RE, "an e-mail address"),
        map_max_concurrency=_int(ctx, "mapMaxConcurrency", 4, 1, 40),
        artifact_expiry_days=_int(ctx, "artifactExpiryDays", 30, 1, 3650),
        log_retention_days=retention,
        jwks_url=jwks_url,
        jwt_issuer=_matching(ctx, "jwtIssuer", re.compile(r"\S{1,200}"), "a non-blank issuer")
        or "urn:bixarena:auth",
        jwt_audience=_matching(ctx, "jwtAudience", re.compile(r"\S{1,200}"), "a non-blank audience")
        or "urn:bixarena:leaderboard",
        admin_claim=_matching(ctx, "adminClaim", _CLAIM_RE, claim) or "roles",
        admin_role=_matching(ctx, "adminRole", _CLAIM_RE, claim) or "admin",
        # Above what WAF lets a few addresses send (RATE_LIMIT_PER_IP: 1 every 3 s each), so that
        # forged tokens from a handful of them cannot starve the admins; the authorizer and the
        # admin function's reserved concurrency guard what is behind.
        api_rate_limit=_float(ctx, "apiRateLimit", 5.0, 0.1, 1000.0),
        api_burst_limit=_int(ctx, "apiBurstLimit", 10, 1, 5000),
        create_api_gateway_logs_role=_bool(ctx, "createApiGatewayLogsRole", True),
        min_battles=_optional_int(ctx, "minBattles", 1, 10_000_000),
        min_models=_optional_int(ctx, "minModels", 2, 10_000),
        min_evals=_optional_int(ctx, "minEvals", 0, 10_000_000),
        leaderboard_filters=_leaderboard_filters(ctx),
        style_control_leaderboards=_style_control(ctx, leaderboards),
    )
