"""Payload contracts between the starters, the stages and the state machine.

Every payload crossing a boundary (execution input, a stage's event and result, the admin API body)
is a JSON object described here as a TypedDict, with a pure ``parse_*`` function that validates it
and names the bad field in an ``InvalidInput`` error. Stage results stay small: S3 URIs, counts
and ids, never rows.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal, NotRequired, TypedDict

from common.errors import InvalidInput

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$")
BOOTSTRAP_MIN, BOOTSTRAP_MAX, BOOTSTRAP_DEFAULT = 10, 10_000, 1000
MAX_LEADERBOARDS = 100
SNAPSHOT_FORMAT = "snapshot_%Y-%m-%d_%H-%M-%S"

Trigger = Literal["scheduled", "manual"]


class RunRequest(TypedDict):
    """The execution input, with defaults filled in (what the scheduler or an admin sends)."""

    leaderboards: list[str] | Literal["all"]
    bootstrap: int
    trigger: Trigger
    requested_by: str | None
    correlation_id: str | None
    run_at: str | None
    publish: bool
    seed: int


_REQUEST_KEYS = frozenset(RunRequest.__annotations__)


class RunContext(TypedDict):
    """What every stage after fetch knows about the run; derived once, by fetch."""

    run_id: str
    execution_id: str
    execution_name: str
    correlation_id: str
    trigger: Trigger
    requested_by: str | None
    run_at: str
    snapshot_identifier: str
    bootstrap: int
    seed: int
    publish: bool
    artifacts_prefix: str


class LeaderboardBatch(TypedDict):
    """One leaderboard's votes, written by fetch."""

    slug: str
    leaderboard_id: str
    name: str
    votes_uri: str
    models_uri: str
    vote_count: int
    model_count: int


class Skipped(TypedDict):
    slug: str
    reason: str


class FetchEvent(TypedDict):
    request: dict[str, Any]
    execution_id: str
    execution_name: str


class FetchResult(TypedDict):
    run: RunContext
    leaderboards: list[LeaderboardBatch]
    skipped: list[Skipped]


class RankEvent(TypedDict):
    run: RunContext
    leaderboard: LeaderboardBatch


class RankResult(TypedDict):
    run: RunContext
    leaderboard: LeaderboardBatch
    entries_uri: str
    ranked_count: int
    unranked_count: int


class SummaryEntry(TypedDict):
    model: str
    rank: int
    bt_score: float
    bootstrap_q025: float
    bootstrap_q975: float
    vote_count: int
    previous_rank: int | None


class PublishResult(TypedDict):
    slug: str
    snapshot_id: str
    snapshot_identifier: str
    visibility: Literal["public", "private"]
    entry_count: int
    vote_count: int
    created: bool
    previous_snapshot_identifier: str | None
    top: list[SummaryEntry]
    new_models: list[str]
    dropped_models: list[str]


class NotifyEvent(TypedDict):
    mode: Literal["success"]
    run: RunContext
    results: list[PublishResult]
    skipped: list[Skipped]
    started_at: NotRequired[str]


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise InvalidInput(message)


def parse_leaderboards(value: Any, field: str = "leaderboards") -> list[str] | Literal["all"]:
    """Validate a leaderboard selection: "all", a list of slugs, or a comma-separated string."""
    if value == "all":
        return "all"
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    _require(isinstance(value, list), f"{field}: expected a list of slugs or 'all'")
    _require(len(value) > 0, f"{field}: must name at least one leaderboard")
    _require(len(value) <= MAX_LEADERBOARDS, f"{field}: at most {MAX_LEADERBOARDS} leaderboards")
    slugs: list[str] = []
    for item in value:
        _require(
            isinstance(item, str) and bool(SLUG_RE.match(item)),
            f"{field}: {str(item)[:60]!r} is not a valid leaderboard slug",
        )
        if item not in slugs:
            slugs.append(item)
    return slugs


def parse_bootstrap(value: Any, field: str = "bootstrap") -> int:
    _require(
        isinstance(value, int) and not isinstance(value, bool),
        f"{field}: expected an integer, got {type(value).__name__}",
    )
    _require(
        BOOTSTRAP_MIN <= value <= BOOTSTRAP_MAX,
        f"{field}: must be between {BOOTSTRAP_MIN} and {BOOTSTRAP_MAX}, got {value}",
    )
    return int(value)


def parse_timestamp(value: Any, field: str) -> datetime:
    """An ISO 8601 instant with a time zone (Scheduler's ``<aws.scheduler.scheduled-time>``)."""
    _require(isinstance(value, str), f"{field}: expected an ISO 8601 timestamp")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{field}: {value[:40]!r} is not an ISO 8601 timestamp") from None
    _require(parsed.tzinfo is not None, f"{field}: timestamp must carry a time zone")
    return parsed.astimezone(UTC)


def _optional_str(raw: dict[str, Any], key: str, limit: int = 200) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    _require(
        isinstance(value, str) and 0 < len(value) <= limit,
        f"{key}: expected a string of 1..{limit} characters",
    )
    return str(value)


def parse_run_request(raw: Any) -> RunRequest:
    """Validate an execution input and fill in defaults; unknown keys are refused."""
    _require(isinstance(raw, dict), "input: expected a JSON object")
    unknown = sorted(set(raw) - _REQUEST_KEYS)
    _require(not unknown, f"input: unknown field(s) {', '.join(map(str, unknown))}")
    trigger = raw.get("trigger", "scheduled")
    _require(trigger in ("scheduled", "manual"), "trigger: expected 'scheduled' or 'manual'")
    publish = raw.get("publish", True)
    _require(isinstance(publish, bool), "publish: expected true or false")
    seed = raw.get("seed", 0)
    _require(
        isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**32,
        "seed: expected an integer in [0, 2^32)",
    )
    run_at = raw.get("run_at")
    if run_at is not None:
        parse_timestamp(run_at, "run_at")
    return RunRequest(
        leaderboards=parse_leaderboards(raw.get("leaderboards", "all")),
        bootstrap=parse_bootstrap(raw.get("bootstrap", BOOTSTRAP_DEFAULT)),
        trigger=trigger,
        requested_by=_optional_str(raw, "requested_by"),
        correlation_id=_optional_str(raw, "correlation_id", 100),
        run_at=run_at,
        publish=publish,
        seed=int(seed),
    )


def snapshot_identifier(run_at: datetime) -> str:
    """BixArena's identifier format, from the run's start time in UTC."""
    return run_at.astimezone(UTC).strftime(SNAPSHOT_FORMAT)


def run_id(run_at: datetime, execution_name: str) -> str:
    """A key-safe id that a retry or a redrive of the same execution derives again identically."""
    safe_name = re.sub(r"[^A-Za-z0-9_-]", "-", execution_name)[:80]
    return f"{run_at.astimezone(UTC):%Y%m%dT%H%M%SZ}-{safe_name}"


def snapshot_description(vote_count: int, model_count: int) -> str:
    return f"Leaderboard snapshot with {vote_count} evaluations and {model_count} ranked models"


def require_keys(raw: Any, name: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """Check that a stage event is an object holding ``keys``; name the first missing one."""
    _require(isinstance(raw, dict), f"{name}: expected a JSON object")
    for key in keys:
        _require(key in raw, f"{name}.{key}: missing")
    return raw


def _require_number(value: Any, field: str, integer: bool = False) -> None:
    kinds: tuple[type, ...] = (int,) if integer else (int, float)
    _require(
        isinstance(value, kinds) and not isinstance(value, bool),
        f"{field}: expected {'an integer' if integer else 'a number'}",
    )


def _require_strings(value: Any, field: str) -> None:
    _require(
        isinstance(value, list) and all(isinstance(v, str) for v in value),
        f"{field}: expected a list of strings",
    )


# What the notify stage reads (TypedDict.__required_keys__ cannot see NotRequired under
# ``from __future__ import annotations`` on Python 3.11, so the keys are spelled out).
_NOTIFY_RUN_KEYS = (
    "run_id",
    "execution_name",
    "correlation_id",
    "trigger",
    "requested_by",
    "run_at",
    "snapshot_identifier",
)
_NOTIFY_RESULT_KEYS = (
    "slug",
    "visibility",
    "vote_count",
    "entry_count",
    "created",
    "previous_snapshot_identifier",
    "top",
    "new_models",
    "dropped_models",
)
_NOTIFY_ENTRY_KEYS = (
    "model",
    "rank",
    "bt_score",
    "bootstrap_q025",
    "bootstrap_q975",
    "previous_rank",
)


def parse_notify_event(raw: Any) -> NotifyEvent:
    """Validate the notify stage's success-mode event; name the first bad field."""
    event = require_keys(raw, "event", ("mode", "run", "results", "skipped"))
    _require(event["mode"] == "success", "mode: expected 'success'")
    run = require_keys(event["run"], "run", _NOTIFY_RUN_KEYS)
    for key in ("run_id", "execution_name", "correlation_id", "snapshot_identifier"):
        _require(isinstance(run[key], str), f"run.{key}: expected a string")
    parse_timestamp(run["run_at"], "run.run_at")
    if event.get("started_at") is not None:
        parse_timestamp(event["started_at"], "started_at")
    _require(isinstance(event["results"], list), "results: expected a list")
    for i, result in enumerate(event["results"]):
        where = f"results[{i}]"
        require_keys(result, where, _NOTIFY_RESULT_KEYS)
        _require(isinstance(result["slug"], str), f"{where}.slug: expected a string")
        _require_number(result["vote_count"], f"{where}.vote_count", integer=True)
        _require_number(result["entry_count"], f"{where}.entry_count", integer=True)
        _require_strings(result["new_models"], f"{where}.new_models")
        _require_strings(result["dropped_models"], f"{where}.dropped_models")
        _require(isinstance(result["top"], list), f"{where}.top: expected a list")
        for j, entry in enumerate(result["top"]):
            at = f"{where}.top[{j}]"
            require_keys(entry, at, _NOTIFY_ENTRY_KEYS)
            _require(isinstance(entry["model"], str), f"{at}.model: expected a string")
            _require_number(entry["rank"], f"{at}.rank", integer=True)
            for key in ("bt_score", "bootstrap_q025", "bootstrap_q975"):
                _require_number(entry[key], f"{at}.{key}")
            if entry["previous_rank"] is not None:
                _require_number(entry["previous_rank"], f"{at}.previous_rank", integer=True)
    _require(isinstance(event["skipped"], list), "skipped: expected a list")
    for i, skipped in enumerate(event["skipped"]):
        require_keys(skipped, f"skipped[{i}]", ("slug", "reason"))
        _require(
            isinstance(skipped["slug"], str) and isinstance(skipped["reason"], str),
            f"skipped[{i}]: expected slug and reason strings",
        )
    return event  # type: ignore[return-value]


REFERENCE_LEADERBOARDS: tuple[str, ...] = (
    "overall",
    "biochemistry",
    "bioengineering",
    "bioinformatics",
    "cancer-biology",
    "cell-biology",
    "clinical-trials",
    "developmental-biology",
    "epidemiology",
    "evolutionary-biology",
    "genetics",
    "genomics",
    "immunology",
    "microbiology",
    "molecular-biology",
    "neuroscience",
    "pathology",
    "pharmacology-and-toxicology",
    "physiology",
    "synthetic-biology",
    "systems-biology",
)
"""BixArena's reference leaderboards: ``overall`` and one per biomedical category (slug =
category), as seeded by ``sql/V2__reference_leaderboards.sql``."""
