"""Fetch once: the shared pass gives every leaderboard exactly the rows that a query of its own
would, under several filter configurations, with each vote's answer style, and the same bytes
whatever order the server scans the rows in.

The references are written here, independently of ``common.filters``: one SQL query per
leaderboard as the fetch stage ran them before the shared pass, and the style counts taken from
the rounds' messages with the rule's Python form (``common.answer_style.answer_style``).
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest

from common import storage
from common.answer_style import STYLE_COLUMNS, answer_style
from local import bad_data
from stages.fetch.handler import handler as fetch
from tests.stage_fixtures import (
    BUCKET,
    RUN_AT,
    SEED_NOW,
    fetch_event,
    object_bytes,
    object_keys,
    s3_requests,
)

CONFIGURATIONS: list[dict[str, Any]] = [
    {},
    {
        "require_biomedical": False,
        "leaderboards": {"genomics": {"require_biomedical": True, "min_confidence": 0.8}},
    },
    {
        "category_statuses": ["matched", "abstained"],
        "leaderboards": {
            "neuroscience": {"category_source": "any", "category_statuses": ["failed"]},
            "overall": {"include_inactive_models": False, "window_days": 60},
        },
    },
    {
        "min_confidence": 0.7,
        "window_days": 90,
        "leaderboards": {"genetics": {"since": "2025-04-01T00:00:00Z", "window_days": None}},
    },
    {"include_inactive_models": False, "category_source": "any"},
]


def _rule(config: dict[str, Any], slug: str, key: str, default: Any) -> Any:
    override = config.get("leaderboards", {}).get(slug, {})
    return override[key] if key in override else config.get(key, default)


def _reference_rows(conn: psycopg.Connection, slug: str, config: dict[str, Any]) -> list[tuple]:
    """One leaderboard's rows as a query of its own selects them, sorted by (time, id), without
    self-battles and votes naming a model that is not in api.model."""
    run_at = datetime.fromisoformat(RUN_AT)
    where = [
        "e.created_at <= %(run_at)s",
        "b.model1_id <> b.model2_id",
        "EXISTS (SELECT 1 FROM api.model m WHERE m.id = b.model1_id)",
        "EXISTS (SELECT 1 FROM api.model m WHERE m.id = b.model2_id)",
    ]
    params: dict[str, Any] = {"run_at": run_at, "slug": slug}
    validation = "SELECT 1 FROM api.battle_validation v WHERE v.id = b.effective_validation_id"
    if _rule(config, slug, "require_biomedical", True):
        where.append(f"EXISTS ({validation} AND v.is_biomedical)")
    confidence = _rule(config, slug, "min_confidence", None)
    if confidence is not None:
        where.append(f"EXISTS ({validation} AND v.confidence >= %(confidence)s)")
        params["confidence"] = confidence
    if not _rule(config, slug, "include_inactive_models", True):
        where.append(
            "(SELECT bool_and(m.active) FROM api.model m WHERE m.id IN (b.model1_id, b.model2_id))"
        )
    starts = []
    window = _rule(config, slug, "window_days", None)
    if window is not None:
        starts.append(run_at - timedelta(days=window))
    since = _rule(config, slug, "since", None)
    if since is not None:
        starts.append(datetime.fromisoformat(since))
    if starts:
        where.append("e.created_at >= %(start)s")
        params["start"] = max(starts)
    if slug != "overall":
        link = (
            "c.id = b.effective_categorization_id"
            if _rule(config, slug, "category_source", "effective") == "effective"
            else "c.battle_id = b.id"
        )
        where.append(
            "EXISTS (SELECT 1 FROM api.battle_categorization c"
            " JOIN api.battle_categorization_category cc ON cc.categorization_id = c.id"
            f" WHERE {link} AND c.status = ANY(%(statuses)s) AND cc.category = %(slug)s)"
        )
        params["statuses"] = _rule(config, slug, "category_statuses", ["matched"])
    return conn.execute(
        "SELECT e.id::text, b.model1_id::text, b.model2_id::text, e.outcome, e.created_at"
        " FROM api.battle_evaluation e JOIN api.battle b ON b.id = e.battle_id"
        f" WHERE {' AND '.join(where)} ORDER BY e.created_at, e.id::text",
        params,
    ).fetchall()


def _reference_style(conn: psycopg.Connection) -> dict[str, tuple[int, ...] | None]:
    """Per evaluation: model1's then model2's summed counts, None for a missing answer."""
    rounds: dict[str, list[tuple[str | None, str | None]]] = {}
    for evaluation, answer1, answer2 in conn.execute(
        "SELECT e.id::text, m1.content, m2.content FROM api.battle_evaluation e"
        " JOIN api.battle_round r ON r.battle_id = e.battle_id"
        " LEFT JOIN api.message m1 ON m1.id = r.model1_message_id"
        " LEFT JOIN api.message m2 ON m2.id = r.model2_message_id"
    ):
        rounds.setdefault(evaluation, []).append((answer1, answer2))
    style: dict[str, tuple[int, ...] | None] = {}
    for evaluation, pairs in rounds.items():
        if any(a is None or b is None for a, b in pairs):
            style[evaluation] = None
            continue
        one = [answer_style(a) for a, _ in pairs if a is not None]
        two = [answer_style(b) for _, b in pairs if b is not None]
        style[evaluation] = tuple(sum(c[i] for c in one) for i in range(4)) + tuple(
            sum(c[i] for c in two) for i in range(4)
        )
    return style


def test_each_leaderboard_gets_the_rows_of_its_own_query_under_every_configuration(
    publish_env: str, stage_aws: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert bad_data.write_bad_data(publish_env, "self-battle", "vanished-model", now=SEED_NOW)
    monkeypatch.setenv("MIN_BATTLES", "1")
    monkeypatch.setenv("MIN_MODELS", "2")
    monkeypatch.setenv("MIN_EVALS", "0")
    with psycopg.connect(publish_env) as conn:
        style = _reference_style(conn)
        slugs = [r[0] for r in conn.execute("SELECT slug FROM api.leaderboard").fetchall()]
        assert sum(s is None for s in style.values()) > 0  # some battles miss an answer
        for config in CONFIGURATIONS:
            monkeypatch.setenv("LEADERBOARD_FILTERS", json.dumps(config))
            result = fetch(fetch_event(), lambda_context)
            boards = {b["slug"]: b for b in result["leaderboards"]}
            skipped = {s["slug"] for s in result["skipped"]}
            assert set(boards) | skipped == set(slugs)
            for slug in slugs:
                expected = _reference_rows(conn, slug, config)
                if slug in skipped:  # fewer than 1 battle or 2 models
                    assert len({m for row in expected for m in row[1:3]}) < 2, (config, slug)
                    continue
                table = pq.ParquetFile(
                    io.BytesIO(object_bytes(stage_aws, boards[slug]["votes_uri"]))
                ).read()
                got = table.to_pylist()
                assert [
                    (str(r["evaluation_id"]), r["model1_id"], r["model2_id"], r["outcome"],
                     r["evaluated_at"])
                    for r in got
                ] == expected, (config, slug)  # fmt: skip
                assert boards[slug]["vote_count"] == len(expected)
                for row in got:
                    counts = tuple(row[c] for c in STYLE_COLUMNS)
                    want = style.get(str(row["evaluation_id"]))
                    assert counts == (want if want is not None else (None,) * 8), row
            # The bad rows are counted for the leaderboards that would have had them.
            left_out = {(x["slug"], x["reason"]): x["count"] for x in result["left_out"]}
            assert all(count == 1 for count in left_out.values())


def test_the_same_votes_give_the_same_bytes_whatever_the_scan_order(
    publish_env: str, stage_aws: Any, lambda_context: Any
) -> None:
    event = fetch_event(leaderboards=["overall", "genomics", "neuroscience"])
    first = fetch(event, lambda_context)
    keys = object_keys(stage_aws)
    contents = {k: object_bytes(stage_aws, f"s3://{BUCKET}/{k}") for k in keys}
    scan = "SELECT id FROM api.battle_evaluation"
    with psycopg.connect(publish_env, autocommit=True) as conn:
        before = conn.execute(scan).fetchall()
        # New row versions at the end of every table the pass reads: a different scan order.
        for table, column in (
            ("api.battle_evaluation", "outcome"), ("api.battle", "title"),
            ("api.battle_round", "round_number"), ("api.message", "role"),
        ):  # fmt: skip
            conn.execute(
                f"UPDATE {table} SET {column} = {column} WHERE ctid IN (SELECT ctid FROM {table}"
                " ORDER BY random() LIMIT (SELECT count(*) / 2 FROM " + table + "))"
            )
        conn.execute("VACUUM ANALYZE")
        after = conn.execute(scan).fetchall()
    assert sorted(after) == sorted(before) and after != before
    second = fetch(event, lambda_context)
    assert second == first
    assert {k: object_bytes(stage_aws, f"s3://{BUCKET}/{k}") for k in keys} == contents


def test_a_votes_object_sent_in_parts_is_the_object_sent_whole(
    publish_env: str, stage_aws: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A votes object larger than a part goes as a multipart upload (here with parts small
    enough for the test's data, moto's least part size lowered to match) and is, byte for byte,
    the object that one put makes."""
    event = fetch_event(leaderboards=["overall"])
    first = fetch(event, lambda_context)
    uri = first["leaderboards"][0]["votes_uri"]
    whole = object_bytes(stage_aws, uri)
    part = 4096
    assert len(whole) > 3 * part
    monkeypatch.setattr(storage, "PART_BYTES", part)
    monkeypatch.setattr("moto.s3.models.S3_UPLOAD_PART_MIN_SIZE", part)
    stage_aws.delete_object(Bucket=BUCKET, Key=uri.split("/", 3)[3])
    with s3_requests(["UploadPart"]) as parts:
        second = fetch(event, lambda_context)
    assert second == first
    assert len(parts) >= 3
    assert object_bytes(stage_aws, uri) == whole
