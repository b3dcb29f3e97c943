"""The rank stage: fetch's Parquet in, Bradley-Terry entries out, byte-identical on a rerun;
bad events and missing or corrupt objects are permanent errors, S3 throttling is transient."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.stub import Stubber

from common import storage
from common.contracts import RankResult
from common.errors import ArtifactCorrupt, ArtifactMissing, InvalidInput, StorageUnavailable
from stages.fetch.handler import handler as fetch
from stages.rank.handler import handler as rank_stage
from tests.stage_fixtures import (
    BOOTSTRAP,
    fetch_event,
    object_bytes,
    object_keys,
    payload,
    put_object,
)


def rank(event: Any, context: Any) -> RankResult:
    """The rank stage on a leaderboard where models get ranked (never skipped)."""
    result = rank_stage(event, context)
    assert "entries_uri" in result, result
    return result


@pytest.fixture
def fetched(stage_env: str, lambda_context: Any) -> dict[str, Any]:
    return payload(fetch(fetch_event(leaderboards=["overall", "genomics"]), lambda_context))


def _event(fetched: dict[str, Any], slug: str = "overall") -> dict[str, Any]:
    board = next(b for b in fetched["leaderboards"] if b["slug"] == slug)
    return payload({"run": fetched["run"], "leaderboard": board})


def test_rank_writes_entries_next_to_the_votes(
    fetched: dict[str, Any], stage_aws: Any, lambda_context: Any, stage_logs: Any
) -> None:
    event = _event(fetched)
    result = rank(event, lambda_context)

    prefix = fetched["run"]["artifacts_prefix"]
    assert result["entries_uri"] == f"{prefix}overall/entries.json"
    assert (result["run"], result["leaderboard"]) == (event["run"], event["leaderboard"])
    document = json.loads(object_bytes(stage_aws, result["entries_uri"]))
    board = event["leaderboard"]
    assert document["leaderboard"] == "overall"
    assert document["snapshot_identifier"] == fetched["run"]["snapshot_identifier"]
    assert (document["vote_count"], document["bootstrap"], document["seed"]) == (
        board["vote_count"], BOOTSTRAP, 0,
    )  # fmt: skip
    entries, unranked = document["entries"], document["unranked"]
    assert result["ranked_count"] == len(entries) > 0
    assert result["unranked_count"] == len(unranked)
    assert len(entries) + len(unranked) == board["model_count"]
    assert [e["rank"] for e in entries] == list(range(1, len(entries) + 1))
    scores = [e["bt_score"] for e in entries]
    assert scores == sorted(scores, reverse=True)
    for e in entries:
        assert e["bootstrap_q025"] <= e["bt_score"] <= e["bootstrap_q975"]
        assert e["model_name"].startswith("SimModel ") and e["model_slug"].startswith("sim-model-")
        assert round(e["bt_score"], 6) == e["bt_score"] and e["vote_count"] >= 10
    assert abs(sum(scores) / len(scores) - 1000) < 50
    assert any(line.get("message") == "leaderboard ranked" for line in stage_logs())


def test_rank_twice_writes_byte_identical_entries(
    fetched: dict[str, Any], stage_aws: Any, lambda_context: Any
) -> None:
    event = _event(fetched, "genomics")
    first = rank(event, lambda_context)
    written = object_bytes(stage_aws, first["entries_uri"])
    second = rank(event, lambda_context)
    assert second == first
    assert object_bytes(stage_aws, second["entries_uri"]) == written


def test_min_evals_comes_from_the_environment(
    fetched: dict[str, Any], stage_aws: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIN_EVALS", "100000")
    event = _event(fetched)
    result = rank_stage(event, lambda_context)
    # Nobody reaches MIN_EVALS: the leaderboard is skipped, and the document shows why.
    board = event["leaderboard"]
    document = json.loads(
        object_bytes(stage_aws, board["votes_uri"].replace("votes.parquet", "entries.json"))
    )
    assert document["entries"] == []
    assert {u["reason"] for u in document["unranked"]} == {"fewer than 100000 evaluations"}
    reason = (
        f"no model could be ranked: the {board['model_count']} models that can be compared have"
        f" fewer than 100000 evaluations each ({board['model_count']} models,"
        f" {board['vote_count']:,} votes)"
    )
    assert result == {
        "run": event["run"],
        "leaderboard": board,
        "skipped": {"slug": "overall", "reason": reason},
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda e: e.pop("run"), "event.run"),
        (lambda e: e.update(extra=1), "extra"),
        (
            lambda e: e["leaderboard"].update(slug="x'; DROP TABLE api.model; --"),
            "leaderboard.slug",
        ),
        (
            lambda e: e["leaderboard"].update(votes_uri="/tmp/votes.parquet"),
            "leaderboard.votes_uri",
        ),
        (lambda e: e["run"].update(bootstrap=10_001), "run.bootstrap"),
        (lambda e: e["run"].update(snapshot_identifier="latest"), "run.snapshot_identifier"),
        (lambda e: e["run"].pop("seed"), "run.seed"),
        (lambda e: e["run"].update(artifacts_prefix="s3://bucket"), "run.artifacts_prefix"),
    ],
)
def test_malformed_events_are_refused(
    fetched: dict[str, Any], stage_aws: Any, lambda_context: Any, change: Any, field: str
) -> None:
    event = _event(fetched)
    change(event)
    keys = object_keys(stage_aws)
    with pytest.raises(InvalidInput, match=field):
        rank(event, lambda_context)
    assert object_keys(stage_aws) == keys


def test_missing_votes_object(fetched: dict[str, Any], stage_aws: Any, lambda_context: Any) -> None:
    event = _event(fetched)
    event["leaderboard"]["votes_uri"] = event["leaderboard"]["votes_uri"] + ".gone"
    with pytest.raises(ArtifactMissing, match=r"votes\.parquet\.gone"):
        rank(event, lambda_context)
    assert not any(k.endswith("entries.json") for k in object_keys(stage_aws))


@pytest.mark.parametrize(
    ("target", "content"),
    [
        ("votes_uri", b"this is not parquet"),
        ("votes_uri", storage.parquet_bytes(pa.table({"model1_id": ["a"]}))),
        ("models_uri", b"PAR1 broken"),
    ],
)
def test_corrupt_objects_are_permanent_errors(
    fetched: dict[str, Any], stage_aws: Any, lambda_context: Any, target: str, content: bytes
) -> None:
    event = _event(fetched)
    put_object(stage_aws, event["leaderboard"][target], content)
    with pytest.raises(ArtifactCorrupt):
        rank(event, lambda_context)
    assert not any(k.endswith("entries.json") for k in object_keys(stage_aws))


def _one_null_slug(table: pa.Table) -> pa.Table:
    slugs = [None, *table.column("slug").to_pylist()[1:]]
    at = table.schema.get_field_index("slug")
    return table.set_column(at, "slug", pa.array(slugs, type=pa.string()))


@pytest.mark.parametrize(
    ("target", "change", "problem"),
    [
        ("votes_uri", lambda t: t.slice(0, 0), "no votes"),
        (
            "votes_uri",
            lambda t: t.set_column(2, "model2_id", t.column("model1_id")),
            "a vote of a model against itself",
        ),
        (
            "models_uri",
            lambda t: pa.concat_tables([t, t.slice(0, 1)]),
            "a model id appears more than once",
        ),
        (
            "models_uri",
            _one_null_slug,
            "column slug has 1 null",
        ),
    ],
)
def test_what_fetch_never_writes_is_corrupt_not_another_error(
    fetched: dict[str, Any],
    stage_aws: Any,
    lambda_context: Any,
    target: str,
    change: Any,
    problem: str,
) -> None:
    """A file that breaks what fetch guarantees -- no empty or self-battle votes, one models row
    per id with a slug and a name -- is ArtifactCorrupt naming the file, not a ValueError of the
    ranking or a failure of publish over the entries."""
    event = _event(fetched)
    uri = event["leaderboard"][target]
    table = pq.ParquetFile(io.BytesIO(object_bytes(stage_aws, uri))).read()
    put_object(stage_aws, uri, storage.parquet_bytes(change(table)))
    with pytest.raises(ArtifactCorrupt, match=rf"{re.escape(uri)}: {problem}"):
        rank(event, lambda_context)
    assert not any(k.endswith("entries.json") for k in object_keys(stage_aws))


def test_s3_throttling_is_transient(
    fetched: dict[str, Any], stage_aws: Any, lambda_context: Any
) -> None:
    event = _event(fetched)
    with Stubber(storage.s3_client()) as stub:
        stub.add_client_error("get_object", service_error_code="SlowDown", http_status_code=503)
        with pytest.raises(StorageUnavailable, match="SlowDown"):
            rank(event, lambda_context)
    assert rank(event, lambda_context)["ranked_count"] > 0
