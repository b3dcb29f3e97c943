"""Publishing a style-controlled ranking into the row STYLE_CONTROL_LEADERBOARDS maps it to (real
PostgreSQL): its entries and snapshot beside the plain one, one transaction for both, an
idempotent rerun, a private run, a missing row or a missing ranking skipped with the reason, an
unmapped leaderboard reported only; fetch never ranks a style-controlled row from votes of its
own; the mapping is checked at run time."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from common.errors import ArtifactCorrupt, ConfigurationError, InvalidInput
from common.style_publish import missing_row_reason
from common.style_rank import NO_STYLE_COLUMNS
from stages.fetch.handler import handler as fetch
from stages.publish.handler import handler as publish_stage
from stages.rank.handler import handler as rank
from tests.stage_fixtures import fetch_event, object_bytes, payload, put_object
from tests.style_fixtures import styled_votes, votes_before_style_control

TARGET = "overall-style-control"
MAPPING = json.dumps({"overall": TARGET})
SNAPSHOTS = """
    SELECT l.slug, s.id::text, s.snapshot_identifier, s.visibility, s.description
    FROM api.leaderboard_snapshot s JOIN api.leaderboard l ON l.id = s.leaderboard_id
    ORDER BY l.slug
"""
ENTRIES = (
    "SELECT e.model_id::text, e.rank, e.bt_score, e.bootstrap_q025, e.bootstrap_q975,"
    " e.vote_count, e.leaderboard_id::text FROM api.leaderboard_entry e WHERE e.snapshot_id = %s"
    " ORDER BY e.rank"
)


def _six(value: float) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.000001"))


def create_row(url: str, slug: str = TARGET) -> str:
    """The style-controlled row, as BixArena's admins create it; returns its id."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "INSERT INTO api.leaderboard (slug, name, description) VALUES (%s, %s, %s)"
            " RETURNING id::text",
            (slug, "Overall (style control)", "Overall, answer length and markdown held equal"),
        ).fetchone()
    assert row is not None
    return str(row[0])


def ranked_overall(s3: Any, context: Any, *, styled: bool = True, **request: Any) -> dict[str, Any]:
    """fetch -> (our votes with style) -> rank of overall: the publish event."""
    fetched = payload(fetch(fetch_event(leaderboards=["overall"], **request), context))
    event = payload({"run": fetched["run"], "leaderboard": fetched["leaderboards"][0]})
    if styled:
        styled_votes(s3, event, missing_every=9)
    else:
        votes_before_style_control(s3, event)
    return payload(rank(event, context))


def snapshots_in(url: str) -> dict[str, tuple[str, str, str, str]]:
    with psycopg.connect(url) as conn:
        return {slug: tuple(rest) for slug, *rest in conn.execute(SNAPSHOTS).fetchall()}


def entries_of(url: str, snapshot_id: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(ENTRIES, (snapshot_id,)).fetchall()


@pytest.fixture
def mapped(publish_env: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("STYLE_CONTROL_LEADERBOARDS", MAPPING)
    return create_row(publish_env)


def test_a_mapped_leaderboard_publishes_its_style_controlled_ranking_beside_the_plain_one(
    mapped: str, publish_env: str, stage_aws: Any, lambda_context: Any
) -> None:
    event = ranked_overall(stage_aws, lambda_context)
    summary = event["style"]
    document = json.loads(object_bytes(stage_aws, summary["entries_uri"]))
    result = publish_stage(event, lambda_context)
    assert "snapshot_id" in result
    assert result["style"] == summary
    board = result["style_board"]
    assert (board["slug"], board["created"], board["skipped"]) == (TARGET, True, None)

    found = snapshots_in(publish_env)
    assert set(found) == {"overall", TARGET}
    identifier = event["run"]["snapshot_identifier"]
    style_id, style_identifier, visibility, description = found[TARGET]
    assert (style_id, style_identifier, visibility) == (board["snapshot_id"], identifier, "public")
    assert found["overall"][:3] == (result["snapshot_id"], identifier, "public")
    n = summary["votes_used"]
    assert description == (
        f"Leaderboard snapshot with {n} evaluations and {summary['ranked_count']} ranked models"
    )
    assert entries_of(publish_env, style_id) == [
        (e["model_id"], e["rank"], _six(e["bt_score"]), _six(e["bootstrap_q025"]),
         _six(e["bootstrap_q975"]), e["vote_count"], mapped)
        for e in document["entries"]
    ]  # fmt: skip
    plain = json.loads(object_bytes(stage_aws, event["entries_uri"]))
    assert [row[:2] for row in entries_of(publish_env, result["snapshot_id"])] == [
        (e["model_id"], e["rank"]) for e in plain["entries"]
    ]
    assert len(json.dumps(result)) < 6000


def test_a_rerun_writes_nothing_and_reports_the_same(
    mapped: str, publish_env: str, stage_aws: Any, lambda_context: Any
) -> None:
    event = ranked_overall(stage_aws, lambda_context)
    first = publish_stage(event, lambda_context)
    before = snapshots_in(publish_env)
    with psycopg.connect(publish_env) as conn:
        row = conn.execute("SELECT count(*) FROM api.leaderboard_entry").fetchone()
    second = publish_stage(payload(event), lambda_context)
    assert "snapshot_id" in first and "snapshot_id" in second
    assert second["created"] is False and second["style_board"]["created"] is False
    assert {
        **second,
        "created": True,
        "style_board": {**second["style_board"], "created": True},
    } == first
    assert snapshots_in(publish_env) == before
    with psycopg.connect(publish_env) as conn:
        assert conn.execute("SELECT count(*) FROM api.leaderboard_entry").fetchone() == row


def test_a_private_run_keeps_both_private(
    mapped: str, publish_env: str, stage_aws: Any, lambda_context: Any
) -> None:
    event = ranked_overall(stage_aws, lambda_context, publish=False)
    result = publish_stage(event, lambda_context)
    assert "snapshot_id" in result and result["style_board"]["snapshot_id"] is not None
    assert {slug: row[2] for slug, row in snapshots_in(publish_env).items()} == {
        "overall": "private",
        TARGET: "private",
    }


def test_a_mapped_row_that_does_not_exist_is_skipped_with_the_reason(
    publish_env: str, stage_aws: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STYLE_CONTROL_LEADERBOARDS", MAPPING)
    event = ranked_overall(stage_aws, lambda_context)
    result = publish_stage(event, lambda_context)
    assert "snapshot_id" in result
    assert result["style_board"] == {
        "slug": TARGET,
        "snapshot_id": None,
        "created": False,
        "skipped": missing_row_reason(TARGET),
    }
    assert set(snapshots_in(publish_env)) == {"overall"}


def test_a_mapped_leaderboard_without_a_style_controlled_ranking_publishes_plain_only(
    mapped: str, publish_env: str, stage_aws: Any, lambda_context: Any
) -> None:
    event = ranked_overall(stage_aws, lambda_context, styled=False)
    result = publish_stage(event, lambda_context)
    assert "snapshot_id" in result
    assert result["style"]["reason"] == NO_STYLE_COLUMNS
    assert result["style_board"]["skipped"] == f"no style-controlled ranking: {NO_STYLE_COLUMNS}"
    assert set(snapshots_in(publish_env)) == {"overall"}


def test_an_unmapped_leaderboard_reports_its_style_controlled_ranking_only(
    publish_env: str, stage_aws: Any, lambda_context: Any
) -> None:
    create_row(publish_env)
    event = ranked_overall(stage_aws, lambda_context)
    result = publish_stage(event, lambda_context)
    assert "snapshot_id" in result
    assert result["style"] == event["style"] and "style_board" not in result
    assert set(snapshots_in(publish_env)) == {"overall"}


def test_plain_and_style_controlled_snapshots_commit_together_or_not_at_all(
    mapped: str, publish_env: str, stage_aws: Any, lambda_context: Any
) -> None:
    event = ranked_overall(stage_aws, lambda_context)
    # The style-controlled entries fail to insert after the plain snapshot was written.
    with psycopg.connect(publish_env) as conn:
        conn.execute(
            "CREATE FUNCTION public.refuse_style() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN RAISE EXCEPTION 'style entries refused'; END $$"
        )
        conn.execute(
            "CREATE TRIGGER refuse_style BEFORE INSERT ON api.leaderboard_entry FOR EACH ROW"
            f" WHEN (NEW.leaderboard_id = '{mapped}') EXECUTE FUNCTION public.refuse_style()"
        )
    with pytest.raises(psycopg.Error, match="style entries refused"):
        publish_stage(event, lambda_context)
    assert snapshots_in(publish_env) == {}
    with psycopg.connect(publish_env) as conn:
        conn.execute("DROP TRIGGER refuse_style ON api.leaderboard_entry")
    result = publish_stage(event, lambda_context)
    assert "snapshot_id" in result and result["created"] and result["style_board"]["created"]
    assert set(snapshots_in(publish_env)) == {"overall", TARGET}


def test_a_document_that_is_not_the_style_controlled_one_is_refused(
    mapped: str, publish_env: str, stage_aws: Any, lambda_context: Any
) -> None:
    event = ranked_overall(stage_aws, lambda_context)
    put_object(
        stage_aws, event["style"]["entries_uri"], object_bytes(stage_aws, event["entries_uri"])
    )
    with pytest.raises(ArtifactCorrupt, match="not a style-controlled entries document"):
        publish_stage(event, lambda_context)
    assert snapshots_in(publish_env) == {}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda s: s["shifts"].append({"model": "x", "plain_rank": -1, "style_rank": 2}),
         r"event\.style\.shifts\[\d+\]\.plain_rank"),
        (lambda s: s.update(entries_uri="/tmp/style.json"), r"event\.style\.entries_uri"),
        (lambda s: s.update(extra=1), r"event\.style: unknown field\(s\) extra"),
        (lambda s: s["effects"][0].update(elo="big"), r"event\.style\.effects\[0\]\.elo"),
    ],
)  # fmt: skip
def test_a_malformed_style_summary_is_refused(
    mapped: str, publish_env: str, stage_aws: Any, lambda_context: Any, change: Any, field: str
) -> None:
    event = ranked_overall(stage_aws, lambda_context)
    change(event["style"])
    with pytest.raises(InvalidInput, match=field):
        publish_stage(event, lambda_context)
    assert snapshots_in(publish_env) == {}


def test_a_row_mapped_as_a_style_target_since_fetch_is_skipped_not_written_twice(
    mapped: str, publish_env: str, stage_aws: Any, lambda_context: Any
) -> None:
    """A run fetched TARGET as a plain leaderboard before the mapping was deployed (or is
    redriven after): its publish would write the identifier the base's style board writes."""
    event = ranked_overall(stage_aws, lambda_context)
    event["leaderboard"] = {**event["leaderboard"], "slug": TARGET, "leaderboard_id": mapped}
    result = publish_stage(event, lambda_context)
    assert result["slug"] == TARGET
    assert "style-controlled leaderboard" in str(result.get("reason"))
    assert snapshots_in(publish_env) == {}


def test_a_bad_mapping_is_a_configuration_error_at_run_time(
    publish_env: str, stage_aws: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = ranked_overall(stage_aws, lambda_context)
    monkeypatch.setenv("STYLE_CONTROL_LEADERBOARDS", '{"overall": "overall"}')
    with pytest.raises(ConfigurationError, match="STYLE_CONTROL_LEADERBOARDS: overall maps to"):
        publish_stage(event, lambda_context)
    with pytest.raises(ConfigurationError, match="STYLE_CONTROL_LEADERBOARDS"):
        fetch(fetch_event(), lambda_context)
    assert snapshots_in(publish_env) == {}


def test_fetch_never_ranks_a_style_controlled_row_from_votes_of_its_own(
    mapped: str, lambda_context: Any
) -> None:
    fetched = fetch(fetch_event(), lambda_context)
    slugs = [b["slug"] for b in fetched["leaderboards"]] + [s["slug"] for s in fetched["skipped"]]
    assert "overall" in slugs and TARGET not in slugs
    with pytest.raises(InvalidInput, match=f"{TARGET} is a style-controlled leaderboard"):
        fetch(fetch_event(leaderboards=["overall", TARGET]), lambda_context)
