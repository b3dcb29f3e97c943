"""The fetch stage: run context, leaderboard selection, votes streamed to Parquet, sparse gate,
idempotency, bad input, transient faults, and no secret in the logs."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common import fetch as fetch_service
from common.errors import (
    ConfigurationError,
    DatabaseUnavailable,
    InvalidInput,
    LeaderboardNotFound,
)
from local import bad_data
from local.faults import CLOSED_DATABASE_URL
from stages.fetch.handler import handler as fetch
from tests.stage_fixtures import (
    BUCKET,
    EXECUTION_NAME,
    REGION,
    SEED_NOW,
    fetch_event,
    object_bytes,
    object_keys,
)

ALL_SLUGS = 21


def _reference_votes(url: str, slug: str) -> set[str]:
    """Upstream's filters, written out independently of common.filters."""
    category = "" if slug == "overall" else (
        " AND EXISTS (SELECT 1 FROM api.battle_categorization c"
        " JOIN api.battle_categorization_category cc ON cc.categorization_id = c.id"
        " WHERE c.id = b.effective_categorization_id AND c.status = 'matched'"
        " AND cc.category = %(slug)s)"
    )  # fmt: skip
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT e.id::text FROM api.battle_evaluation e JOIN api.battle b ON b.id = e.battle_id"
            " JOIN api.battle_validation v ON v.id = b.effective_validation_id"
            " WHERE v.is_biomedical" + category,
            {"slug": slug},
        ).fetchall()
    return {r[0] for r in rows}


def test_fetch_exports_every_leaderboard_with_upstreams_votes(
    stage_env: str, stage_aws: Any, lambda_context: Any, stage_logs: Any
) -> None:
    result = fetch(fetch_event(correlation_id="corr-123"), lambda_context)

    run = result["run"]
    assert run["run_id"] == f"20250601T060000Z-{EXECUTION_NAME}"
    assert run["snapshot_identifier"] == "snapshot_2025-06-01_06-00-00"
    assert run["artifacts_prefix"] == f"s3://{BUCKET}/runs/{run['run_id']}/"
    assert (run["correlation_id"], run["bootstrap"], run["publish"]) == ("corr-123", 20, True)
    assert len(result["leaderboards"]) + len(result["skipped"]) == ALL_SLUGS
    by_slug = {b["slug"]: b for b in result["leaderboards"]}
    assert {"overall", "biochemistry", "systems-biology"} <= set(by_slug)
    # The Map starts its items in this order: the largest leaderboard first.
    order = [(-b["vote_count"], b["slug"]) for b in result["leaderboards"]]
    assert order == sorted(order) and result["leaderboards"][0]["slug"] == "overall"
    for slug in ("overall", "genomics"):
        board = by_slug[slug]
        assert board["votes_uri"] == f"{run['artifacts_prefix']}{slug}/votes.parquet"
        table = pq.ParquetFile(io.BytesIO(object_bytes(stage_aws, board["votes_uri"]))).read()
        assert table.column_names == [
            "evaluation_id", "model1_id", "model2_id", "outcome", "evaluated_at",
            "model1_tokens", "model1_headers", "model1_list_items", "model1_bold",
            "model2_tokens", "model2_headers", "model2_list_items", "model2_bold",
        ]  # fmt: skip
        for column in ("model1_id", "model2_id", "outcome"):
            assert pa.types.is_dictionary(table.schema.field(column).type)
        assert table.schema.field("evaluation_id").type == pa.uuid()
        ids = [str(i) for i in table.column("evaluation_id").to_pylist()]
        assert set(ids) == _reference_votes(stage_env, slug)
        assert board["vote_count"] == len(ids) == len(set(ids))
        assert set(table.column("outcome").to_pylist()) == {"model1", "model2", "tie"}
        times = table.column("evaluated_at").to_pylist()
        assert times == sorted(times) and max(times) <= datetime(2025, 6, 1, 6, tzinfo=UTC)
        models = pq.ParquetFile(io.BytesIO(object_bytes(stage_aws, board["models_uri"]))).read()
        used = set(table.column("model1_id").to_pylist()) | set(
            table.column("model2_id").to_pylist()
        )
        assert set(models.column("id").to_pylist()) == used
        assert board["model_count"] == len(used)
        assert models.column_names == ["id", "slug", "name", "active"]
    logs = stage_logs()
    assert logs and all(line.get("correlation_id") == "corr-123" for line in logs)


def test_votes_match_the_database_row_for_row(
    stage_env: str, stage_aws: Any, lambda_context: Any
) -> None:
    result = fetch(fetch_event(leaderboards=["overall"]), lambda_context)
    table = pq.ParquetFile(
        io.BytesIO(object_bytes(stage_aws, result["leaderboards"][0]["votes_uri"]))
    ).read()
    with psycopg.connect(stage_env) as conn:
        expected = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT e.id::text, b.model1_id::text, b.model2_id::text, e.outcome, e.created_at"
                " FROM api.battle_evaluation e JOIN api.battle b ON b.id = e.battle_id"
            )
        }
    for row in table.slice(0, 500).to_pylist():
        assert expected[str(row["evaluation_id"])] == (
            row["model1_id"], row["model2_id"], row["outcome"], row["evaluated_at"],
        )  # fmt: skip


def test_fetch_twice_writes_the_same_objects(
    stage_env: str, stage_aws: Any, lambda_context: Any
) -> None:
    event = fetch_event(leaderboards=["overall", "genomics"])
    first = fetch(event, lambda_context)
    keys = object_keys(stage_aws)
    contents = {k: object_bytes(stage_aws, f"s3://{BUCKET}/{k}") for k in keys}
    second = fetch(event, lambda_context)
    assert second == first
    assert object_keys(stage_aws) == keys and len(keys) == 4
    assert {k: object_bytes(stage_aws, f"s3://{BUCKET}/{k}") for k in keys} == contents


def test_run_start_comes_from_the_execution_when_the_request_has_none(
    stage_env: str, stage_aws: Any, lambda_context: Any
) -> None:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    machine = sfn.create_state_machine(
        name="leaderboard",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn=role,
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, name="daily-1", input="{}")
    started = sfn.describe_execution(executionArn=execution["executionArn"])["startDate"]

    event = {
        "request": {"leaderboards": ["overall"], "bootstrap": 10},
        "execution_id": execution["executionArn"],
        "execution_name": "daily-1",
    }
    result = fetch(event, lambda_context)
    run = result["run"]
    assert run["snapshot_identifier"] == started.astimezone(UTC).strftime(
        "snapshot_%Y-%m-%d_%H-%M-%S"
    )
    assert run["run_id"].endswith("Z-daily-1") and run["correlation_id"] == "daily-1"
    assert (run["trigger"], run["seed"], run["publish"]) == ("scheduled", 0, True)


def test_execution_that_does_not_exist_is_bad_input(
    stage_env: str, stage_aws: Any, lambda_context: Any
) -> None:
    event = fetch_event(leaderboards=["overall"])
    del event["request"]["run_at"]
    with pytest.raises(InvalidInput, match="execution_id"):
        fetch(event, lambda_context)
    assert object_keys(stage_aws) == []


def test_a_run_at_ahead_of_the_clock_is_refused_before_anything_is_written(
    stage_env: str, stage_aws: Any, lambda_context: Any
) -> None:
    ahead = (datetime.now(UTC) + timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with pytest.raises(InvalidInput, match=rf"^run_at: {ahead} is in the future"):
        fetch(fetch_event(leaderboards=["overall"], run_at=ahead), lambda_context)
    assert object_keys(stage_aws) == []
    soon = (datetime.now(UTC) + timedelta(seconds=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert fetch(fetch_event(leaderboards=["overall"], run_at=soon), lambda_context)["leaderboards"]


def test_unknown_leaderboard_is_refused_before_anything_is_written(
    stage_env: str, stage_aws: Any, lambda_context: Any
) -> None:
    with pytest.raises(LeaderboardNotFound, match="no-such-board"):
        fetch(fetch_event(leaderboards=["overall", "no-such-board"]), lambda_context)
    assert object_keys(stage_aws) == []


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ([], "event"),
        ({"request": {}, "execution_id": "x"}, "execution_name"),
        ({**fetch_event(), "extra": 1}, "extra"),
        (fetch_event(bootstrap=5), "bootstrap"),
        (fetch_event(bootstrap=10_001), "bootstrap"),
        (fetch_event(bootstrap="1000"), "bootstrap"),
        (fetch_event(leaderboards=["overall'; DROP TABLE api.model; --"]), "leaderboards"),
        (fetch_event(leaderboards=[]), "leaderboards"),
        (fetch_event(colour="red"), "colour"),
        (fetch_event(run_at="yesterday"), "run_at"),
        (fetch_event(publish="yes"), "publish"),
    ],
)
def test_malformed_events_are_refused_naming_the_field(
    stage_aws: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch, event: Any, field: str
) -> None:
    # The database is unreachable: a refusal proves validation came before any connection.
    monkeypatch.setenv("DATABASE_URL", CLOSED_DATABASE_URL)
    with pytest.raises(InvalidInput, match=field):
        fetch(event, lambda_context)
    assert object_keys(stage_aws) == []


def test_sparse_leaderboards_are_skipped_with_the_reason(
    stage_env: str, stage_aws: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIN_BATTLES", "1000")
    result = fetch(
        fetch_event(leaderboards=["overall", "genomics", "neuroscience"]), lambda_context
    )
    assert [b["slug"] for b in result["leaderboards"]] == ["overall"]
    assert [s["slug"] for s in result["skipped"]] == ["genomics", "neuroscience"]
    assert all(s["reason"].startswith("fewer than 1000 battles (") for s in result["skipped"])
    assert object_keys(stage_aws) == [
        f"runs/{result['run']['run_id']}/overall/models.parquet",
        f"runs/{result['run']['run_id']}/overall/votes.parquet",
    ]
    monkeypatch.setenv("MIN_BATTLES", "30")
    monkeypatch.setenv("MIN_MODELS", "13")
    result = fetch(fetch_event(leaderboards=["overall"]), lambda_context)
    assert result["skipped"] == [{"slug": "overall", "reason": "fewer than 13 models (12)"}]
    monkeypatch.setenv("MIN_MODELS", "4")
    monkeypatch.setenv("MIN_EVALS", "100000")
    result = fetch(fetch_event(leaderboards=["overall"]), lambda_context)
    assert result["skipped"] == [{"slug": "overall", "reason": "no model with 100000 evaluations"}]


def test_bad_rows_are_left_out_counted_and_leave_the_export_unchanged(
    publish_env: str, stage_aws: Any, lambda_context: Any
) -> None:
    event = fetch_event(leaderboards=["overall", "genetics", "immunology"])
    clean = fetch(event, lambda_context)
    keys = object_keys(stage_aws)
    contents = {k: object_bytes(stage_aws, f"s3://{BUCKET}/{k}") for k in keys}
    assert clean["left_out"] == []
    assert (
        len(bad_data.write_bad_data(publish_env, "self-battle", "vanished-model", now=SEED_NOW))
        == 2
    )
    with psycopg.connect(publish_env) as conn:
        bad = {
            r[0]
            for r in conn.execute(
                "SELECT e.id::text FROM api.battle_evaluation e JOIN api.battle b"
                " ON b.id = e.battle_id WHERE b.model1_id = b.model2_id"
                " OR NOT EXISTS (SELECT 1 FROM api.model m WHERE m.id = b.model2_id)"
            )
        }
    assert len(bad) == 2
    dirty = fetch(event, lambda_context)
    assert dirty["leaderboards"] == clean["leaderboards"]
    assert {k: object_bytes(stage_aws, f"s3://{BUCKET}/{k}") for k in keys} == contents
    assert dirty["left_out"] == [
        {"slug": slug, "reason": reason, "count": 1}
        for slug in ("overall", "genetics")
        for reason in ("a model faces itself", "names a model not in api.model")
    ]


def test_leaderboard_rows_our_contract_cannot_carry_are_skipped_named_or_not(
    publish_env: str, stage_aws: Any, lambda_context: Any
) -> None:
    assert bad_data.write_bad_data(publish_env, "unusable-leaderboards", now=SEED_NOW)
    result = fetch(fetch_event(), lambda_context)
    unusable = [
        s for s in result["skipped"] if s["slug"] in {"cancer_biology", "Genomics", "no-name"}
    ]
    carries = "slug is not one our contract carries (a-z, 0-9 and '-', at most 100 characters)"
    assert unusable == [
        {"slug": "Genomics", "reason": carries},
        {"slug": "cancer_biology", "reason": carries},
        {"slug": "no-name", "reason": "name is empty"},
    ]
    assert len(result["leaderboards"]) + len(result["skipped"]) == ALL_SLUGS + 3
    # Named in the request, the row is just as unusable: skipped, and the others still go on.
    named = fetch(fetch_event(leaderboards=["overall", "no-name"]), lambda_context)
    assert [b["slug"] for b in named["leaderboards"]] == ["overall"]
    assert named["skipped"] == [{"slug": "no-name", "reason": "name is empty"}]
    # A slug our contract cannot carry cannot be requested at all.
    with pytest.raises(InvalidInput, match="'cancer_biology' is not a valid leaderboard slug"):
        fetch(fetch_event(leaderboards=["cancer_biology"]), lambda_context)


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        (
            {"leaderboards": {"overal": {"window_days": 30}}},
            r"leaderboards\.overal: no leaderboard",
        ),
        ({"window_days": 10**6}, r"window_days: expected null or an integer from 1 to 36500"),
    ],
)
def test_a_filter_configuration_fault_is_named_before_anything_is_written(
    filters: dict[str, Any],
    message: str,
    stage_env: str,
    stage_aws: Any,
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEADERBOARD_FILTERS", json.dumps(filters))
    with pytest.raises(ConfigurationError, match=f"^LEADERBOARD_FILTERS: {message}"):
        fetch(fetch_event(leaderboards=["overall"]), lambda_context)
    assert object_keys(stage_aws) == []


def test_filter_configuration_is_honored(
    stage_env: str, stage_aws: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = fetch(fetch_event(leaderboards=["overall"]), lambda_context)["leaderboards"][0]
    monkeypatch.setenv("LEADERBOARD_FILTERS", json.dumps({"require_biomedical": False}))
    everything = fetch(fetch_event(leaderboards=["overall"]), lambda_context)["leaderboards"][0]
    with psycopg.connect(stage_env) as conn:
        all_votes = conn.execute("SELECT count(*) FROM api.battle_evaluation").fetchone()
    assert all_votes is not None
    assert everything["vote_count"] == all_votes[0] > default["vote_count"]
    monkeypatch.setenv("LEADERBOARD_FILTERS", '{"require_biomedical": "no"}')
    with pytest.raises(ConfigurationError, match="require_biomedical"):
        fetch(fetch_event(leaderboards=["overall"]), lambda_context)


def test_database_down_is_transient_and_the_password_stays_secret(
    stage_aws: Any,
    lambda_context: Any,
    stage_logs: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    password = "Sup3r-S3cret-Pa55"
    url = CLOSED_DATABASE_URL.replace("leaderboard@", f"leaderboard:{password}@")
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(DatabaseUnavailable) as caught:
        fetch(fetch_event(leaderboards=["overall"]), lambda_context)
    logs = stage_logs()
    assert any(line.get("error_type") == "DatabaseUnavailable" for line in logs)
    assert all(line.get("correlation_id") == EXECUTION_NAME for line in logs)
    output = json.dumps(logs) + str(caught.value) + "".join(capsys.readouterr())
    assert password not in output
    assert object_keys(stage_aws) == []


def test_secret_from_secrets_manager_never_reaches_the_logs(
    stage_env: str, stage_aws: Any, lambda_context: Any, stage_logs: Any,
    monkeypatch: pytest.MonkeyPatch, capsys: Any,
) -> None:  # fmt: skip
    password = "Rds-Secret-Value-42"
    info = psycopg.conninfo.conninfo_to_dict(stage_env)
    secret = {
        "host": info["host"], "port": int(info.get("port") or 5432), "dbname": info["dbname"],
        "username": info["user"], "password": password, "sslmode": "disable",
    }  # fmt: skip
    arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="db", SecretString=json.dumps(secret)
    )["ARN"]
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("DATABASE_SECRET_ARN", arn)
    result = fetch(fetch_event(leaderboards=["overall"]), lambda_context)
    assert result["leaderboards"][0]["vote_count"] > 0
    out, err = capsys.readouterr()
    assert "BattlesFetched" in out  # the EMF metrics line
    assert password not in json.dumps(stage_logs()) + out + err


def test_missing_bucket_is_a_configuration_error(
    stage_env: str, stage_aws: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARTIFACTS_BUCKET", "no-such-bucket-here")
    with pytest.raises(ConfigurationError, match="NoSuchBucket"):
        fetch(fetch_event(leaderboards=["overall"]), lambda_context)


def test_sparse_reason() -> None:
    assert fetch_service.sparse_reason(30, 4, 30, 4) is None
    assert fetch_service.sparse_reason(29, 9, 30, 4) == "fewer than 30 battles (29)"
    assert fetch_service.sparse_reason(99, 3, 30, 4) == "fewer than 4 models (3)"
    assert (
        fetch_service.sparse_reason(99, 9, 30, 4, models_over_min_evals=0, min_evals=10)
        == "no model with 10 evaluations"
    )
    assert fetch_service.sparse_reason(99, 9, 30, 4, models_over_min_evals=1, min_evals=10) is None


def test_run_at_is_the_only_clock(stage_env: str, stage_aws: Any, lambda_context: Any) -> None:
    early = fetch(
        fetch_event(leaderboards=["overall"], run_at="2025-05-01T00:00:00Z"), lambda_context
    )
    late = fetch(fetch_event(leaderboards=["overall"]), lambda_context)
    assert 0 < early["leaderboards"][0]["vote_count"] < late["leaderboards"][0]["vote_count"]
    assert early["run"]["run_id"] != late["run"]["run_id"]
