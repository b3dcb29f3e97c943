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

``plan_fetch`` turns the selected leaderboards and their filters into one shared pass
(``FetchPlan``); ``votes_query`` and ``answers_query`` compose its SQL with ``psycopg.sql``, every
value (slugs, statuses, dates) a bound parameter, never text pasted into the statement; and
``FetchPlan.member`` applies each leaderboard's own filters to the pass's rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
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


BITS_PER_MASK = 63
"""Category leaderboards per int8 mask column (bit 63 would make the shift overflow)."""


@dataclass(frozen=True)
class CategoryGroup:
    """Category leaderboards that share their categorization rule: one int8 mask column of the
    shared query, bit i set when the battle counts for ``slugs[i]``."""

    source: CategorySource
    statuses: tuple[str, ...]
    slugs: tuple[str, ...]


@dataclass(frozen=True)
class FetchPlan:
    """What one pass over the votes must carry so that every selected leaderboard can decide
    which of its rows are its own (``FetchPlan.member``).

    Per vote the shared query returns the evaluation, the validation's verdict and confidence,
    and one category mask per ``CategoryGroup``. The filters every leaderboard shares are applied
    in the query (a biomedical validation when every leaderboard requires it, the latest start
    of a window when every leaderboard has one, ...); the rest is decided per leaderboard on
    those columns. Every ``FilterConfig`` field is expressible so: no leaderboard needs a query
    of its own.
    """

    boards: tuple[tuple[str, FilterConfig], ...]
    groups: tuple[CategoryGroup, ...]
    run_at: datetime

    @property
    def configs(self) -> list[FilterConfig]:
        return [config for _, config in self.boards]

    def place(self, slug: str) -> tuple[int, int]:
        """The mask column and bit of a category leaderboard."""
        for g, group in enumerate(self.groups):
            if slug in group.slugs:
                return g, group.slugs.index(slug)
        raise KeyError(slug)

    def member(self, slug: str, rows: SharedRows) -> np.ndarray:
        """Which rows count for ``slug`` under its filters (before bad rows are left out)."""
        config = dict(self.boards)[slug]
        keep = np.ones(len(rows.evaluated_at_us), dtype=bool)
        if config.require_biomedical:
            keep &= rows.validation == VALIDATION_BIOMEDICAL
        if config.min_confidence is not None:
            # PostgreSQL compares numeric with a float parameter as float8, as here.
            keep &= (rows.validation != VALIDATION_NONE) & (
                rows.confidence_milli / 1000.0 >= config.min_confidence
            )
        start = config.start(self.run_at)
        if start is not None:
            keep &= rows.evaluated_at_us >= _micros(start)
        if not config.include_inactive_models:
            active = np.append(rows.active, False)  # code -1 (not in api.model): not active
            keep &= active[rows.model1] & active[rows.model2]
        if is_category(slug):
            g, bit = self.place(slug)
            keep &= (rows.masks[:, g] & np.int64(1 << bit)) != 0
        return keep


VALIDATION_NONE, VALIDATION_OTHER, VALIDATION_BIOMEDICAL = -1, 0, 1
"""The shared query's validation column: no effective validation, not biomedical, biomedical."""


@dataclass(frozen=True)
class SharedRows:
    """The columns of the shared pass that decide membership (one entry per vote)."""

    validation: np.ndarray
    confidence_milli: np.ndarray
    """The effective validation's confidence x 1000 (DECIMAL(4,3): exact), 0 when none."""
    evaluated_at_us: np.ndarray
    model1: np.ndarray
    model2: np.ndarray
    """Catalogue rows of the models (-1: not in api.model)."""
    active: np.ndarray
    """Per catalogue row: the model is active."""
    masks: np.ndarray
    """Shape (votes, groups), int64: the category masks."""


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def plan_fetch(slugs: list[str], filters: LeaderboardFilters, run_at: datetime) -> FetchPlan:
    """The shared pass for these leaderboards (in this order) under ``filters``."""
    boards = tuple((slug, filters.for_leaderboard(slug)) for slug in slugs)
    rules: dict[tuple[CategorySource, tuple[str, ...]], list[str]] = {}
    for slug, config in boards:
        if is_category(slug):
            rules.setdefault((config.category_source, config.category_statuses), []).append(slug)
    groups = tuple(
        CategoryGroup(source=source, statuses=statuses, slugs=tuple(members[i : i + BITS_PER_MASK]))
        for (source, statuses), members in rules.items()
        for i in range(0, len(members), BITS_PER_MASK)
    )
    return FetchPlan(boards=boards, groups=groups, run_at=run_at)


def _shared_from(plan: FetchPlan, params: dict[str, Any]) -> sql.Composed:
    """FROM and WHERE of the shared pass: evaluations up to the run's start with a known outcome,
    their battle, validation and category masks, under the filters every leaderboard shares."""
    configs = plan.configs
    params.update(until=plan.run_at, outcomes=list(OUTCOME_CODES))
    joins: list[sql.Composable] = []
    where: list[sql.Composable] = [
        sql.SQL("e.created_at <= %(until)s"),
        sql.SQL("e.outcome = ANY(%(outcomes)s)"),
    ]
    needs_validation = any(c.require_biomedical or c.min_confidence is not None for c in configs)
    all_biomedical = bool(configs) and all(c.require_biomedical for c in configs)
    all_confidence = bool(configs) and all(c.min_confidence is not None for c in configs)
    if all_biomedical or all_confidence:
        joins.append(sql.SQL("JOIN api.battle_validation v ON v.id = b.effective_validation_id"))
    elif needs_validation:
        joins.append(
            sql.SQL("LEFT JOIN api.battle_validation v ON v.id = b.effective_validation_id")
        )
    if all_biomedical:
        where.append(sql.SQL("v.is_biomedical"))
    if all_confidence:
        where.append(sql.SQL("v.confidence >= %(min_confidence)s"))
        params["min_confidence"] = min(c.min_confidence or 0.0 for c in configs)
    starts = [c.start(plan.run_at) for c in configs]
    if starts and all(start is not None for start in starts):
        where.append(sql.SQL("e.created_at >= %(since)s"))
        params["since"] = min(start for start in starts if start is not None)
    if plan.groups and all(is_category(slug) for slug, _ in plan.boards):
        where.append(
            sql.SQL("({})").format(
                sql.SQL(" OR ").join(
                    sql.SQL("k{}.mask IS NOT NULL").format(sql.Literal(g))
                    for g in range(len(plan.groups))
                )
            )
        )
    for g, group in enumerate(plan.groups):
        key = "c.id" if group.source == "effective" else "c.battle_id"
        on = "b.effective_categorization_id" if group.source == "effective" else "b.id"
        params[f"categories_{g}"] = list(group.slugs)
        params[f"statuses_{g}"] = list(group.statuses)
        joins.append(
            sql.SQL(
                "LEFT JOIN (SELECT {key} AS id, bit_or(1::int8 <<"
                " (array_position({categories}::text[], cc.category::text) - 1)) AS mask"
                " FROM api.battle_categorization c"
                " JOIN api.battle_categorization_category cc ON cc.categorization_id = c.id"
                " WHERE c.status = ANY({statuses}) AND cc.category = ANY({categories})"
                " GROUP BY 1) {alias} ON {alias}.id = {on}"
            ).format(
                key=sql.SQL(key),
                categories=sql.Placeholder(f"categories_{g}"),
                statuses=sql.Placeholder(f"statuses_{g}"),
                alias=sql.Identifier(f"k{g}"),
                on=sql.SQL(on),
            )
        )
    return sql.SQL(
        "FROM api.battle_evaluation e JOIN api.battle b ON b.id = e.battle_id {joins} WHERE {where}"
    ).format(joins=sql.SQL(" ").join(joins), where=sql.SQL(" AND ").join(where))


def votes_query(plan: FetchPlan) -> tuple[sql.Composed, dict[str, Any]]:
    """The one statement selecting the votes of every leaderboard of ``plan``, and its parameters.

    Columns, in this order and with these types (the fetch stage reads them as fixed-width binary
    COPY rows, so none is NULL): evaluation id, model1 and model2 ids (uuid), outcome as int2
    (index into OUTCOME_CODES), evaluation time (timestamptz), the validation as int2
    (VALIDATION_*), its confidence x 1000 as int2 (0 when none), then one int8 category mask per
    group. No ORDER BY: the fetch stage sorts what it writes.
    """
    params: dict[str, Any] = {}
    needs_validation = any(
        c.require_biomedical or c.min_confidence is not None for c in plan.configs
    )
    validation = (
        sql.SQL(
            "(CASE WHEN v.id IS NULL THEN -1 WHEN v.is_biomedical THEN 1 ELSE 0 END)::int2,"
            " COALESCE(v.confidence * 1000, 0)::int2"
        )
        if needs_validation
        else sql.SQL("(-1)::int2, 0::int2")
    )
    masks = [
        sql.SQL(", COALESCE({}.mask, 0)").format(sql.Identifier(f"k{g}"))
        for g in range(len(plan.groups))
    ]
    statement = sql.SQL(
        "SELECT e.id, b.model1_id, b.model2_id,"
        " (CASE e.outcome WHEN 'model1' THEN 0 WHEN 'model2' THEN 1 ELSE 2 END)::int2,"
        " e.created_at, {validation}{masks} {source}"
    ).format(validation=validation, masks=sql.Composed(masks), source=_shared_from(plan, params))
    return statement, params


def answers_query(plan: FetchPlan) -> tuple[sql.Composed, dict[str, Any]]:
    """The rounds of the votes of ``votes_query(plan)``: evaluation id (text) and the texts of
    model1's and model2's answers (NULL when the model gave none), one row per round."""
    params: dict[str, Any] = {}
    # The rounds join outside the shared filters: those apply to the vote, not to its rounds.
    return (
        sql.SQL(
            "SELECT s.id, m1.content, m2.content FROM ({inner}) s"
            " JOIN api.battle_round r ON r.battle_id = s.battle_id"
            " LEFT JOIN api.message m1 ON m1.id = r.model1_message_id"
            " LEFT JOIN api.message m2 ON m2.id = r.model2_message_id"
        ).format(
            inner=sql.SQL("SELECT e.id, e.battle_id {source}").format(
                source=_shared_from(plan, params)
            )
        ),
        params,
    )


MODELS_QUERY = sql.SQL("SELECT id::text, slug, name, active FROM api.model ORDER BY id")
"""Every model (the catalogue the exported model ids are dictionary-encoded against)."""
