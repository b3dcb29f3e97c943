"""Which votes count: the filter configuration, and each rule seen to include or exclude a
hand-made battle, through the real export path (binary COPY out of PostgreSQL)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common import fetch
from common.errors import ConfigurationError
from common.filters import (
    FilterConfig,
    LeaderboardFilters,
    check_overrides,
    parse_filters,
    plan_fetch,
    votes_query,
)

RUN_AT = datetime(2025, 6, 1, 6, tzinfo=UTC)
RECENT = RUN_AT - timedelta(days=3)


def _battle(
    conn: psycopg.Connection,
    model1: str,
    model2: str,
    *,
    validation: tuple[bool, float] | None = (True, 0.9),
    status: str | None = "matched",
    categories: tuple[str, ...] = ("genomics",),
    at: datetime = RECENT,
    outcome: str = "model1",
) -> str:
    """One voted battle with its effective validation and categorization; returns the vote id."""
    battle = conn.execute(
        "INSERT INTO api.battle (user_id, model1_id, model2_id, created_at)"
        " VALUES (%s, %s, %s, %s) RETURNING id",
        (uuid.uuid4(), model1, model2, at),
    ).fetchone()[0]  # type: ignore[index]
    vote = conn.execute(
        "INSERT INTO api.battle_evaluation (battle_id, outcome, created_at) VALUES (%s, %s, %s)"
        " RETURNING id::text",
        (battle, outcome, at),
    ).fetchone()[0]  # type: ignore[index]
    if validation is not None:
        conn.execute(
            "WITH v AS (INSERT INTO api.battle_validation (battle_id, method, confidence,"
            " is_biomedical) VALUES (%s, 'test', %s, %s) RETURNING id)"
            " UPDATE api.battle SET effective_validation_id = (SELECT id FROM v) WHERE id = %s",
            (battle, validation[1], validation[0], battle),
        )
    if status is not None:
        categorization = conn.execute(
            "INSERT INTO api.battle_categorization (battle_id, method, status)"
            " VALUES (%s, 'test', %s) RETURNING id",
            (battle, status),
        ).fetchone()[0]  # type: ignore[index]
        for category in categories:
            conn.execute(
                "INSERT INTO api.battle_categorization_category VALUES (%s, %s)",
                (categorization, category),
            )
        conn.execute(
            "UPDATE api.battle SET effective_categorization_id = %s WHERE id = %s",
            (categorization, battle),
        )
    return str(vote)


@pytest.fixture
def arena(database_url: str) -> tuple[str, dict[str, str]]:
    """A database with one battle per rule to exercise; returns its URL and vote id by label."""
    with psycopg.connect(database_url) as conn:
        models = {}
        for slug, active in (("a", True), ("b", True), ("c", True), ("gone", False)):
            models[slug] = conn.execute(
                "INSERT INTO api.model (slug, name, license, active, external_link,"
                " api_model_name, api_base) VALUES (%s, %s, 'open-source', %s, 'https://x', %s,"
                " 'https://api') RETURNING id::text",
                (slug, slug.upper(), active, slug),
            ).fetchone()[0]  # type: ignore[index]
        a, b, c, gone = models["a"], models["b"], models["c"], models["gone"]
        votes = {
            "good": _battle(conn, a, b),
            "two_categories": _battle(conn, b, c, categories=("genomics", "neuroscience")),
            "tie": _battle(conn, a, c, outcome="tie"),
            "non_biomedical": _battle(conn, a, b, validation=(False, 0.9)),
            "no_validation": _battle(conn, a, c, validation=None),
            "abstained": _battle(conn, b, c, status="abstained"),
            "other_category": _battle(conn, a, b, categories=("neuroscience",)),
            "uncategorized": _battle(conn, a, c, status=None),
            "inactive_model": _battle(conn, a, gone),
            "low_confidence": _battle(conn, b, c, validation=(True, 0.55)),
            "old": _battle(conn, a, b, at=RUN_AT - timedelta(days=200)),
            "after_run": _battle(conn, a, b, at=RUN_AT + timedelta(minutes=1)),
        }
        # A battle re-categorized: its effective categorization failed; an older one matched.
        stale = _battle(conn, b, c, status="failed", categories=())
        conn.execute(
            "WITH c AS (INSERT INTO api.battle_categorization (battle_id, method, status)"
            " SELECT battle_id, 'older', 'matched' FROM api.battle_evaluation WHERE id = %s"
            " RETURNING id) INSERT INTO api.battle_categorization_category"
            " SELECT id, 'genomics' FROM c",
            (stale,),
        )
        votes["stale_categorization"] = stale
        conn.commit()
    return database_url, votes


def _selected(url: str, slug: str, filters: LeaderboardFilters, votes: dict[str, str]) -> set[str]:
    with psycopg.connect(url) as conn:
        catalogue = fetch.model_catalogue(conn)
        plan = plan_fetch([slug], filters, RUN_AT)
        shared = fetch.fetch_shared(conn, plan, catalogue)
        selected = fetch.board_rows(shared, plan.member(slug, shared.rows(catalogue)), catalogue)
    sink = pa.BufferOutputStream()
    fetch.write_votes(shared, selected, catalogue, sink)
    table = pq.ParquetFile(pa.BufferReader(sink.getvalue())).read()
    label = {vote: name for name, vote in votes.items()}
    return {label[str(v)] for v in table.column("evaluation_id").to_pylist()}


BIOMEDICAL = {
    "good", "two_categories", "tie", "abstained", "other_category", "uncategorized",
    "inactive_model", "low_confidence", "old", "stale_categorization",
}  # fmt: skip
GENOMICS = {"good", "two_categories", "tie", "inactive_model", "low_confidence", "old"}


def test_upstreams_rules_by_default(arena: tuple[str, dict[str, str]]) -> None:
    url, votes = arena
    default = LeaderboardFilters()
    assert _selected(url, "overall", default, votes) == BIOMEDICAL
    assert _selected(url, "genomics", default, votes) == GENOMICS
    assert _selected(url, "neuroscience", default, votes) == {"two_categories", "other_category"}
    assert _selected(url, "immunology", default, votes) == set()


@pytest.mark.parametrize(
    ("config", "slug", "added", "removed"),
    [
        ({"require_biomedical": False}, "overall", {"non_biomedical", "no_validation"}, set()),
        ({"require_biomedical": False}, "genomics", {"non_biomedical", "no_validation"}, set()),
        ({"category_statuses": ["matched", "abstained"]}, "genomics", {"abstained"}, set()),
        ({"category_statuses": ["failed"]}, "genomics", set(), GENOMICS),
        ({"category_source": "any"}, "genomics", {"stale_categorization"}, set()),
        ({"include_inactive_models": False}, "genomics", set(), {"inactive_model"}),
        ({"min_confidence": 0.8}, "genomics", set(), {"low_confidence"}),
        ({"window_days": 90}, "overall", set(), {"old"}),
        ({"since": "2025-05-01T00:00:00Z"}, "genomics", set(), {"old"}),
        ({"leaderboards": {"genomics": {"window_days": 90}}}, "genomics", set(), {"old"}),
        ({"leaderboards": {"genomics": {"window_days": 90}}}, "overall", set(), set()),
    ],
)
def test_each_rule_is_configuration(
    arena: tuple[str, dict[str, str]],
    config: dict[str, Any],
    slug: str,
    added: set[str],
    removed: set[str],
) -> None:
    url, votes = arena
    base = GENOMICS if slug == "genomics" else BIOMEDICAL
    filters = parse_filters(json.dumps(config))
    assert _selected(url, slug, filters, votes) == (base | added) - removed


def test_defaults_are_upstreams_rules() -> None:
    assert parse_filters(None) == parse_filters("") == parse_filters("{}") == LeaderboardFilters()
    rules = FilterConfig()
    assert rules.require_biomedical and rules.include_inactive_models
    assert rules.category_statuses == ("matched",) and rules.category_source == "effective"
    assert (rules.min_confidence, rules.window_days, rules.since) == (None, None, None)


def test_overrides_start_from_the_top_level_rules() -> None:
    filters = parse_filters(
        '{"min_confidence": 0.7, "leaderboards": {"genomics": {"window_days": 30}}}'
    )
    assert filters.for_leaderboard("overall") == FilterConfig(min_confidence=0.7)
    assert filters.for_leaderboard("genomics") == FilterConfig(min_confidence=0.7, window_days=30)
    assert filters.default.start(RUN_AT) is None
    assert filters.for_leaderboard("genomics").start(RUN_AT) == RUN_AT - timedelta(days=30)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("{", "not valid JSON"),
        ("[]", "expected a JSON object"),
        ('{"require_biomedical": 1}', "require_biomedical"),
        ('{"min_confidence": 2}', "min_confidence"),
        ('{"category_statuses": []}', "category_statuses"),
        ('{"category_source": "latest"}', "category_source"),
        ('{"window_days": 0}', "window_days"),
        ('{"window_days": 1000000}', r"^LEADERBOARD_FILTERS: window_days: .* from 1 to 36500"),
        ('{"window_days": 1.5}', "window_days"),
        ('{"category_statuses": ' + json.dumps(["s"] * 21) + "}", "category_statuses"),
        ('{"since": "0001-01-01T00:00:00+01:00"}', r"^LEADERBOARD_FILTERS: since: .* out of range"),
        (
            '{"leaderboards": {"Genomics": {"window_days": 3}}}',
            r"^LEADERBOARD_FILTERS: leaderboards.Genomics: not a leaderboard slug",
        ),
        ('{"since": "last week"}', "since"),
        ('{"colour": "red"}', "colour"),
        (
            '{"leaderboards": {"genomics": {"windowdays": 3}}}',
            r"leaderboards.genomics: unknown field\(s\) windowdays",
        ),
        ('{"leaderboards": []}', "leaderboards"),
    ],
)
def test_bad_configuration_names_the_field(raw: str, field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        parse_filters(raw)


def test_values_are_bound_never_pasted_into_the_statement() -> None:
    slug = "x-robert-tables"
    filters = LeaderboardFilters(default=FilterConfig(min_confidence=0.5))
    statement, params = votes_query(plan_fetch([slug], filters, RUN_AT))
    text = statement.as_string(None)
    assert slug not in text and "0.5" not in text and "2025" not in text
    assert params["categories_0"] == [slug] and params["min_confidence"] == 0.5
    assert params["until"] == RUN_AT
    overall, overall_params = votes_query(plan_fetch(["overall"], LeaderboardFilters(), RUN_AT))
    assert "categories_0" not in overall_params
    assert "battle_categorization" not in overall.as_string(None)


def test_an_override_must_name_a_leaderboard_the_database_has() -> None:
    filters = parse_filters('{"leaderboards": {"genomics": {"window_days": 3}}}')
    check_overrides(filters, ["overall", "genomics"])
    with pytest.raises(
        ConfigurationError, match=r"^LEADERBOARD_FILTERS: leaderboards.genomics: no"
    ):
        check_overrides(filters, ["overall", "genetics"])


def test_a_window_reaching_back_before_year_one_has_no_start() -> None:
    early = datetime(30, 1, 1, tzinfo=UTC)
    assert FilterConfig(window_days=36_500).start(early) is None
    assert FilterConfig(window_days=36_500, since=early).start(early) == early
