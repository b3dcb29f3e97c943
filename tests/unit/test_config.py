"""Settings from the environment, and secrets read through Secrets Manager (moto)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from common.config import Settings, conninfo_from_secret, database_url, slack_webhook_url
from common.errors import ConfigurationError

REGION = "us-east-1"


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield boto3.client("secretsmanager", region_name=REGION)


def _settings(**env: str) -> Settings:
    return Settings.from_env(env)


def test_defaults_and_integers() -> None:
    settings = _settings()
    assert (settings.min_battles, settings.min_models, settings.min_evals) == (30, 4, 10)
    assert settings.artifacts_prefix == "runs/"
    assert _settings(MIN_EVALS="3").min_evals == 3
    with pytest.raises(ConfigurationError, match="MIN_BATTLES"):
        _settings(MIN_BATTLES="many")
    with pytest.raises(ConfigurationError, match="ARTIFACTS_BUCKET"):
        _settings().require_bucket()


def test_rank_threads_are_unset_or_a_positive_integer() -> None:
    assert _settings().rank_threads is None
    assert _settings(RANK_THREADS="").rank_threads is None
    assert _settings(RANK_THREADS="3").rank_threads == 3
    with pytest.raises(ConfigurationError, match="RANK_THREADS: expected a positive integer"):
        _settings(RANK_THREADS="0")
    with pytest.raises(ConfigurationError, match="RANK_THREADS: expected an integer"):
        _settings(RANK_THREADS="all")


def test_rds_secret_becomes_a_tls_conninfo() -> None:
    secret = {
        "host": "db.internal",
        "port": 5433,
        "dbname": "bixarena",
        "username": "reader",
        "password": "p@ss w",
    }
    conninfo = conninfo_from_secret(json.dumps(secret))
    assert (
        "host=db.internal" in conninfo and "port=5433" in conninfo and "sslmode=require" in conninfo
    )
    with pytest.raises(ConfigurationError, match="RDS format") as info:
        conninfo_from_secret(json.dumps({"host": "h", "password": "hunter2"}))
    assert "hunter2" not in str(info.value)


def test_database_url_from_secrets_manager(secrets: object) -> None:
    value = {"host": "h", "port": 5432, "dbname": "d", "username": "u", "password": "s3cret"}
    arn = secrets.create_secret(Name="db", SecretString=json.dumps(value))["ARN"]  # type: ignore[attr-defined]
    assert "password=s3cret" in database_url(_settings(DATABASE_SECRET_ARN=arn))
    assert (
        database_url(_settings(DATABASE_URL="postgresql:///x", DATABASE_SECRET_ARN=arn))
        == "postgresql:///x"
    )
    with pytest.raises(ConfigurationError, match="neither DATABASE_URL nor DATABASE_SECRET_ARN"):
        database_url(_settings())


def test_missing_or_empty_database_secret_is_a_configuration_error(secrets: object) -> None:
    empty = secrets.create_secret(Name="empty-db")["ARN"]  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError, match="cannot be read"):
        database_url(_settings(DATABASE_SECRET_ARN=empty))
    missing = empty.replace("empty-db", "nope")
    with pytest.raises(ConfigurationError, match="cannot be read"):
        database_url(_settings(DATABASE_SECRET_ARN=missing))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://hooks.slack.com/services/T/B/x", "https://hooks.slack.com/services/T/B/x"),
        (
            json.dumps({"webhook_url": "https://hooks.slack.com/services/T/B/y"}),
            "https://hooks.slack.com/services/T/B/y",
        ),
        ("{}", None),
    ],
)
def test_slack_webhook_from_secrets_manager(
    secrets: object, value: str, expected: str | None
) -> None:
    arn = secrets.create_secret(Name="slack", SecretString=value)["ARN"]  # type: ignore[attr-defined]
    assert slack_webhook_url(_settings(SLACK_SECRET_ARN=arn)) == expected


def test_slack_not_configured(secrets: object) -> None:
    assert slack_webhook_url(_settings()) is None
    # The sandbox stack creates the secret empty: Slack is simply not configured yet.
    empty = secrets.create_secret(Name="slack-empty")["ARN"]  # type: ignore[attr-defined]
    assert slack_webhook_url(_settings(SLACK_SECRET_ARN=empty)) is None


@pytest.mark.parametrize(
    "value", ["http://hooks.example.org/x", "http://127.0.0.1:8765/services/local"]
)
def test_a_plain_http_webhook_secret_is_refused(secrets: object, value: str) -> None:
    # Not even on loopback: the local run's capture server is given as SLACK_WEBHOOK_URL.
    arn = secrets.create_secret(Name="slack-http", SecretString=value)["ARN"]  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError, match="https://") as info:
        slack_webhook_url(_settings(SLACK_SECRET_ARN=arn))
    assert "example.org" not in str(info.value) and "127.0.0.1" not in str(info.value)


def test_secret_values_stay_out_of_debug_logs(
    secrets: object, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    import common.observability  # noqa: F401  (pins the AWS SDK loggers)

    value = {"host": "h", "port": 5432, "dbname": "d", "username": "u", "password": "do-not-log-me"}
    arn = secrets.create_secret(Name="db-debug", SecretString=json.dumps(value))["ARN"]  # type: ignore[attr-defined]
    with caplog.at_level(logging.DEBUG):
        database_url(_settings(DATABASE_SECRET_ARN=arn))
    assert "do-not-log-me" not in caplog.text
