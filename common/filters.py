"""Which votes count for a leaderboard: a typed configuration and the SQL it stands for.

Upstream changed these rules four times in four months, so they are configuration: the
``LEADERBOARD_FILTERS`` environment variable holds a JSON object whose top-level keys are
``FilterConfig`` fields (defaults below equal upstream's current rules), plus an optional
``"leaderboards": {slug: {field: value}}`` with per-leaderboard overrides. Example::

    {"min_confidence": 0.8, "leaderboards": {"overall": {"window_days": 90}}}

Every value is checked for its type and range (``parse_filters``, at synth through
``infra.config`` and again in the fetch stage), and an override must name a leaderboard slug;
that a leaderboard has that slug is checked against the database by the fetch stage
(``check_overrides``). Errors are ``ConfigurationError``s naming the field.

Upstream's rules: ``overall`` counts every evaluation whose battle's effective validation says
``is_biomedical``; a category leaderboard (any other slug) also needs the battle's effective
categorization to have status ``matched`` and a category equal to the slug. Both active and inactive
models count; there is no time window. Evaluations recorded after the run's start time never count,
so that a retry of the same run reads the same votes.

``votes_query`` composes the SQL with ``psycopg.sql``; every value (slug, statuses, dates) is a bound
parameter, never text pasted into the statement.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from psycopg import sql

from common.contracts import SLUG_RE, parse_timestamp
from common.errors import ConfigurationError, InvalidInput

OVERALL_SLUG = "overall"
"""The leaderboard of all biomedical votes; every other slug is a category of the same name."""

OUTCOME_CODES: tuple[str, str, str] = ("model1", "model2", "tie")
"""The outcome labels in code order (0, 1, 2), as the fetch stage writes them."""

CategorySource = Literal["effective", "any"]
CATEGORY_SOURCES: tuple[str, ...] = ("effective", "any")
MAX_WINDOW_DAYS = 36_500
"""A century: any longer window counts every vote BixArena has (and its start may not exist)."""
MAX_STATUSES = 20


@dataclass(frozen=True)
class FilterConfig:
    """The rules selecting a leaderboard's votes; defaults are upstream's current rules."""

    require_biomedical: bool = True
    """Only battles whose effective validation has ``is_biomedical = true`` (False: any battle)."""
    min_confidence: float | None = None
    """When set, the effective validation must exist with ``confidence >=`` this value."""
    category_statuses: tuple[str, ...] = ("matched",)
    """Categorization statuses that count for a category leaderboard."""
    category_source: CategorySource = "effective"
    """'effective': the battle's effective categorization; 'any': any categorization of it."""
    include_inactive_models: bool = True
    """False: drop battles where either model is inactive (``api.model.active = false``)."""
    window_days: int | None = None
    """When set, only evaluations from the last ``window_days`` days before the run."""
    since: datetime | None = None
    """When set, only evaluations recorded at or after this instant."""

    def start(self, run_at: datetime) -> datetime | None:
        """The earliest evaluation time that counts for a run at ``run_at`` (None: no bound)."""
        window = None
        if self.window_days is not None:
            try:
                window = run_at - timedelta(days=self.window_days)
            except OverflowError:  # the window reaches back before year 1: no bound
                window = None
        if self.since is None or window is None:
            return self.since or window
        return max(self.since, window)


@dataclass(frozen=True)
class LeaderboardFilters:
    """The default rules and the per-leaderboard overrides."""

    default: FilterConfig = field(default_factory=FilterConfig)
    overrides: tuple[tuple[str, FilterConfig], ...] = ()

    def for_leaderboard(self, slug: str) -> FilterConfig:
        return dict(self.overrides).get(slug, self.default)


_FIELDS = {f.name for f in fields(FilterConfig)}


def _config_error(path: str, message: str) -> ConfigurationError:
    return ConfigurationError(f"LEADERBOARD_FILTERS: {path + ': ' if path else ''}{message}")


def _apply(base: FilterConfig, raw: Any, path: str) -> FilterConfig:
    """``base`` with the fields of ``raw`` (a JSON object) applied; names the first bad field."""
    if not isinstance(raw, dict):
        raise _config_error(path, "expected a JSON object")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise _config_error(path, f"unknown field(s) {', '.join(unknown)}")
    changes: dict[str, Any] = {}
    for name, value in raw.items():
        at = f"{path}.{name}" if path else name
        if name in ("require_biomedical", "include_inactive_models"):
            if not isinstance(value, bool):
                raise _config_error(at, "expected true or false")
        elif name == "min_confidence":
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1
            ):
                raise _config_error(at, "expected null or a number in [0, 1]")
        elif name == "category_statuses":
            if not (
                isinstance(value, list)
                and 0 < len(value) <= MAX_STATUSES
                and all(isinstance(s, str) and 0 < len(s) <= 20 for s in value)
            ):
                raise _config_error(
                    at, f"expected a list of 1 to {MAX_STATUSES} status names (1-20 characters)"
                )
            value = tuple(dict.fromkeys(value))
        elif name == "category_source":
            if value not in CATEGORY_SOURCES:
                raise _config_error(at, f"expected one of {', '.join(CATEGORY_SOURCES)}")
        elif name == "window_days":
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not 1 <= value <= MAX_WINDOW_DAYS
            ):
                raise _config_error(
                    at,
                    f"expected null or an integer from 1 to {MAX_WINDOW_DAYS}, got {value!r:.40}",
                )
        elif name == "since" and value is not None:
            try:
                value = parse_timestamp(value, at)
            except InvalidInput as exc:
                raise _config_error("", str(exc)) from None
        changes[name] = value
    return replace(base, **changes)


def parse_filters(raw_json: str | None) -> LeaderboardFilters:
    """Parse LEADERBOARD_FILTERS (None or empty: upstream's rules); errors name the bad field."""
    if not raw_json:
        return LeaderboardFilters()
    try:
        raw = json.loads(raw_json)
    except json.JSONDecodeError as exc:
        raise _config_error("", f"not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(raw, dict):
        raise _config_error("", "expected a JSON object")
    per_board = raw.get("leaderboards", {})
    if not isinstance(per_board, dict):
        raise _config_error("leaderboards", "expected an object of slug -> fields")
    default = _apply(FilterConfig(), {k: v for k, v in raw.items() if k != "leaderboards"}, "")
    for slug in sorted(per_board):
        if not SLUG_RE.fullmatch(slug):
            raise _config_error(f"leaderboards.{slug[:60]}", "not a leaderboard slug (a-z, 0-9, -)")
    overrides = tuple(
        (str(slug), _apply(default, body, f"leaderboards.{slug}"))
        for slug, body in sorted(per_board.items())
    )
    return LeaderboardFilters(default=default, overrides=overrides)


def check_overrides(filters: LeaderboardFilters, slugs: list[str]) -> None:
    """Refuse an override for a slug that no leaderboard has (a typo would be ignored silently)."""
    known = set(slugs)
    for slug, _ in filters.overrides:
        if slug not in known:
            raise _config_error(f"leaderboards.{slug}", "no leaderboard has this slug")


def is_category(slug: str) -> bool:
    return slug != OVERALL_SLUG


def votes_query(
    slug: str, config: FilterConfig, run_at: datetime
) -> tuple[sql.Composed, dict[str, Any]]:
    """The statement selecting one leaderboard's votes, and its parameters.

    Columns, in this order and with these types (the fetch stage reads them as fixed-width binary
    COPY rows): evaluation id (text), model1 and model2 ids (uuid), outcome as int2 (index into
    OUTCOME_CODES), evaluation time (timestamptz). Rows come in (evaluation time, id) order so
    that the same votes always give the same file.
    """
    params: dict[str, Any] = {"until": run_at, "outcomes": list(OUTCOME_CODES)}
    joins: list[sql.Composable] = []
    where: list[sql.Composable] = [
        sql.SQL("e.created_at <= %(until)s"),
        sql.SQL("e.outcome = ANY(%(outcomes)s)"),
    ]
    if config.require_biomedical or config.min_confidence is not None:
        joins.append(sql.SQL("JOIN api.battle_validation v ON v.id = b.effective_validation_id"))
    if config.require_biomedical:
        where.append(sql.SQL("v.is_biomedical"))
    if config.min_confidence is not None:
        where.append(sql.SQL("v.confidence >= %(min_confidence)s"))
        params["min_confidence"] = config.min_confidence
    if not config.include_inactive_models:
        joins.append(
            sql.SQL(
                "JOIN api.model m1 ON m1.id = b.model1_id JOIN api.model m2 ON m2.id = b.model2_id"
            )
        )
        where.append(sql.SQL("m1.active AND m2.active"))
    start = config.start(run_at)
    if start is not None:
        where.append(sql.SQL("e.created_at >= %(since)s"))
        params["since"] = start
    if is_category(slug):
        link = (
            sql.SQL("c.id = b.effective_categorization_id")
            if config.category_source == "effective"
            else sql.SQL("c.battle_id = b.id")
        )
        where.append(
            sql.SQL(
                "EXISTS (SELECT 1 FROM api.battle_categorization c"
                " JOIN api.battle_categorization_category cc ON cc.categorization_id = c.id"
                " WHERE {link} AND c.status = ANY(%(statuses)s) AND cc.category = %(category)s)"
            ).format(link=link)
        )
        params["statuses"] = list(config.category_statuses)
        params["category"] = slug
    statement = sql.SQL(
        "SELECT e.id::text, b.model1_id, b.model2_id,"
        " (CASE e.outcome WHEN 'model1' THEN 0 WHEN 'model2' THEN 1 ELSE 2 END)::int2,"
        " e.created_at"
        " FROM api.battle_evaluation e"
        " JOIN api.battle b ON b.id = e.battle_id"
        " {joins} WHERE {where} ORDER BY e.created_at, e.id"
    ).format(joins=sql.SQL(" ").join(joins), where=sql.SQL(" AND ").join(where))
    return statement, params


MODELS_QUERY = sql.SQL("SELECT id::text, slug, name, active FROM api.model ORDER BY id")
"""Every model (the catalogue the exported model ids are dictionary-encoded against)."""
