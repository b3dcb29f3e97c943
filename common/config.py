"""Runtime configuration of the stages: environment variables and secrets.

A Lambda function gets its settings from the environment the CDK stack gives it; the local runner
sets the same variables. Secrets (database credentials in RDS format, the Slack webhook URL) are
read through Powertools Parameters, cached for the life of the container, and never logged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from common.errors import ConfigurationError, SecretUnavailable

SECRET_MAX_AGE_S = 300


@dataclass(frozen=True)
class Settings:
    """Everything a stage reads from its environment. Unset optional values are None."""

    artifacts_bucket: str | None
    artifacts_prefix: str
    database_url: str | None
    database_secret_arn: str | None
    slack_webhook_url: str | None
    slack_secret_arn: str | None
    sns_topic_arn: str | None
    filters_json: str | None
    style_control_json: str | None
    """STYLE_CONTROL_LEADERBOARDS: base slug -> style-controlled slug (``common.style_boards``)."""
    min_battles: int
    min_models: int
    min_evals: int
    rank_threads: int | None
    """RANK_THREADS: threads a rank invocation's bootstrap runs on (None: the CPUs it has)."""
    environment: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def integer(name: str, default: int) -> int:
            raw = env.get(name)
            if raw is None or raw == "":
                return default
            try:
                return int(raw)
            except ValueError:
                raise ConfigurationError(f"{name}: expected an integer, got {raw[:20]!r}") from None

        def positive(name: str) -> int | None:
            if not env.get(name):
                return None
            value = integer(name, 0)
            if value < 1:
                raise ConfigurationError(f"{name}: expected a positive integer, got {value}")
            return value

        return cls(
            artifacts_bucket=env.get("ARTIFACTS_BUCKET") or None,
            artifacts_prefix=env.get("ARTIFACTS_PREFIX", "runs/"),
            database_url=env.get("DATABASE_URL") or None,
            database_secret_arn=env.get("DATABASE_SECRET_ARN") or None,
            slack_webhook_url=env.get("SLACK_WEBHOOK_URL") or None,
            slack_secret_arn=env.get("SLACK_SECRET_ARN") or None,
            sns_topic_arn=env.get("SNS_TOPIC_ARN") or None,
            filters_json=env.get("LEADERBOARD_FILTERS") or None,
            style_control_json=env.get("STYLE_CONTROL_LEADERBOARDS") or None,
            min_battles=integer("MIN_BATTLES", 30),
            min_models=integer("MIN_MODELS", 4),
            min_evals=integer("MIN_EVALS", 10),
            rank_threads=positive("RANK_THREADS"),
            environment=env.get("ENVIRONMENT_NAME", "local"),
        )

    def require_bucket(self) -> str:
        if not self.artifacts_bucket:
            raise ConfigurationError("ARTIFACTS_BUCKET is not set")
        return self.artifacts_bucket


def _secret(arn: str, *, empty_ok: bool = False) -> Any:
    """The secret's current value; with ``empty_ok``, None for a secret that has no value yet
    (the sandbox stack creates its secrets empty, to be filled in after deploy)."""
    from aws_lambda_powertools.utilities import parameters
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return parameters.get_secret(arn, max_age=SECRET_MAX_AGE_S)
    except parameters.exceptions.GetParameterError as exc:
        # Powertools re-raises without ``from``: the boto error is the implicit context.
        cause = exc.__cause__ or exc.__context__
        if (
            empty_ok
            and isinstance(cause, ClientError)
            and cause.response["Error"]["Code"] == "ResourceNotFoundException"
            and "secret value" in str(cause.response["Error"].get("Message", ""))
        ):
            return None
        if isinstance(cause, ClientError) and cause.response["Error"]["Code"] in (
            "ResourceNotFoundException",
            "AccessDeniedException",
            "DecryptionFailure",
        ):
            raise ConfigurationError(
                f"secret {arn} cannot be read: {cause.response['Error']['Code']}"
            ) from None
        raise SecretUnavailable(f"Secrets Manager did not answer for {arn}") from None
    except (BotoCoreError, ClientError):
        raise SecretUnavailable(f"Secrets Manager did not answer for {arn}") from None


def database_url(settings: Settings) -> str:
    """A libpq connection string: DATABASE_URL, or built from an RDS-format secret."""
    if settings.database_url:
        return settings.database_url
    if not settings.database_secret_arn:
        raise ConfigurationError("neither DATABASE_URL nor DATABASE_SECRET_ARN is set")
    return conninfo_from_secret(_secret(settings.database_secret_arn))


def conninfo_from_secret(raw: Any) -> str:
    """RDS secret JSON (host, port, dbname, username, password) -> libpq conninfo, TLS required."""
    # Here, not at the top: stages that never connect (rank, notify) need not load psycopg.
    from psycopg.conninfo import make_conninfo

    try:
        data = json.loads(raw) if isinstance(raw, str | bytes) else raw
        fields = {
            "host": data["host"],
            "port": int(data.get("port", 5432)),
            "dbname": data.get("dbname") or data.get("dbName") or "postgres",
            "user": data["username"],
            "password": data["password"],
        }
    except (KeyError, TypeError, ValueError):
        raise ConfigurationError(
            "database secret is not in RDS format (host, port, dbname, username, password)"
        ) from None
    return make_conninfo(**fields, sslmode=str(data.get("sslmode", "require")))


def slack_webhook_url(settings: Settings) -> str | None:
    """The webhook URL (a secret in itself), or None when Slack is not configured.

    The stack gives functions SLACK_SECRET_ARN, whose value must be an https:// URL. SLACK_WEBHOOK_URL,
    which the stack never sets, is taken as it is: the local run points it at its capture server."""
    if settings.slack_webhook_url:
        return settings.slack_webhook_url
    if not settings.slack_secret_arn:
        return None
    raw = _secret(settings.slack_secret_arn, empty_ok=True)
    if isinstance(raw, bytes):
        raw = raw.decode()
    if isinstance(raw, str) and raw.lstrip().startswith("{"):
        raw = json.loads(raw).get("webhook_url", "")
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or not raw.startswith("https://"):
        raise ConfigurationError(
            "Slack secret must hold an https:// webhook URL (or {'webhook_url': ...})"
        )
    return raw
