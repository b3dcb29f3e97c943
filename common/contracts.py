"""Payload contracts between the starters, the stages and the state machine.

Every payload crossing a boundary (execution input, a stage's event and result, the admin API body)
is a JSON object described here as a TypedDict, with a pure ``parse_*`` function that validates it
and names the bad field in an ``InvalidInput`` error. Stage results stay small: S3 URIs, counts
and ids, never rows.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal, NotRequired, TypedDict, final

from common.errors import InvalidInput

SLUG_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?")
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


# The stage results that share a place (RankResult or RankSkipped, PublishResult or Skipped) are
# final TypedDicts: then ``"skipped" in outcome`` tells them apart for mypy too.
@final
class Skipped(TypedDict):
    """A leaderboard that ends the run unpublished, and the data problem that says why: fetch
    decides it from vote and model counts and from the leaderboard row, rank when nobody can be
    ranked. A normal outcome, never a failure."""

    slug: str
    reason: str


class LeftOut(TypedDict):
    """Votes fetch left out of one leaderboard's export, per reason (a bad row, see
    ``common.fetch.LEFT_OUT_REASONS``); only counts above zero are reported."""

    slug: str
    reason: str
    count: int


class FetchResult(TypedDict):
    run: RunContext
    leaderboards: list[LeaderboardBatch]
    skipped: list[Skipped]
    left_out: list[LeftOut]


class StyleEffect(TypedDict):
    """One style feature's effect in Elo per SD of its normalized difference, with its 95%
    interval; all None when the feature is out of the fit."""

    feature: str
    elo: float | None
    elo_q025: float | None
    elo_q975: float | None


class StyleShift(TypedDict):
    """A model whose rank differs under style control (plain rank -> style-controlled rank)."""

    model: str
    plain_rank: int
    style_rank: int


class StyleSummary(TypedDict):
    """One leaderboard's style-controlled ranking as the rank stage reports it: where its entries
    are (None when there is no ranking, ``reason`` says why), the effects and the biggest rank
    shifts only (``common.style_rank.SHIFTS_REPORTED``), and the votes counted."""

    entries_uri: str | None
    reason: str | None
    ranked_count: int
    votes_used: int
    votes_left_out: int
    """Votes the style-controlled fit left out: without style counts, or touching an unranked model."""
    votes_without_style: int
    effects: list[StyleEffect]
    shifts: list[StyleShift]


class StyleBoard(TypedDict):
    """The publish stage's work on a mapped style-controlled leaderboard: its snapshot, or why
    none was written (``skipped``)."""

    slug: str
    snapshot_id: str | None
    created: bool
    skipped: str | None


class RankEvent(TypedDict):
    run: RunContext
    leaderboard: LeaderboardBatch


@final
class RankResult(TypedDict):
    run: RunContext
    leaderboard: LeaderboardBatch
    entries_uri: str
    ranked_count: int
    """At least 1: a leaderboard where nobody could be ranked ends as ``RankSkipped``."""
    unranked_count: int
    style: NotRequired[StyleSummary]
    """The style-controlled ranking of the same votes (missing from results of older runs)."""


@final
class RankSkipped(TypedDict):
    """The rank stage's other result: nobody could be ranked, so the leaderboard is skipped
    (``skipped.slug`` is the leaderboard's slug). Publish passes it on without writing."""

    run: RunContext
    leaderboard: LeaderboardBatch
    skipped: Skipped


class SummaryEntry(TypedDict):
    model: str
    rank: int
    bt_score: float
    bootstrap_q025: float
    bootstrap_q975: float
    vote_count: int
    previous_rank: int | None


@final
class PublishResult(TypedDict):
    """One leaderboard's snapshot as publish left it, read back from the database."""

    slug: str
    snapshot_id: str
    snapshot_identifier: str
    visibility: Literal["public", "private"]
    entry_count: int
    vote_count: int
    created: bool
    previous_snapshot_identifier: str | None
    """The public snapshot immediately before this one in data order (``created_at`` = the
    time its votes count up to): what ``top``'s previous ranks and the new and dropped models are
    measured against. None: there is none."""
    shown_snapshot_identifier: str | None
    """What BixArena shows for the leaderboard once this snapshot is written: the newest public
    snapshot in data order (this one, when it went live). None: no snapshot is public."""
    superseded: bool
    """A public snapshot with newer votes exists: a public snapshot is history (BixArena did
    not change), a private one would only join the history if published."""
    top: list[SummaryEntry]
    new_models: list[str]
    dropped_models: list[str]
    style: NotRequired[StyleSummary]
    """The rank stage's style-controlled ranking, passed on for the notification."""
    style_board: NotRequired[StyleBoard]
    """The mapped style-controlled leaderboard; missing when the leaderboard is not mapped."""


_PLACEMENT_KEYS = ("shown_snapshot_identifier", "superseded")
"""PublishResult keys a result from before they existed lacks (a redriven old execution)."""


class NotifyEvent(TypedDict):
    """The notify stage's success-mode event, validated. On the wire ``results`` is the Map's
    output, one ``PublishResult`` or ``Skipped`` per leaderboard; parsed, ``results`` holds the
    published ones and ``skipped`` fetch's skips followed by the Map's. ``left_out`` may be
    missing on the wire (a definition from before it existed): it is then empty."""

    mode: Literal["success"]
    run: RunContext
    results: list[PublishResult]
    skipped: list[Skipped]
    left_out: list[LeftOut]
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
            isinstance(item, str) and bool(SLUG_RE.fullmatch(item)),
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
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"{field}: {value[:40]!r} is out of range in UTC") from None


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


def _number(raw: dict[str, Any], key: str, where: str) -> float:
    value = raw[key]
    _require_number(value, f"{where}.{key}")
    return float(value) if isinstance(value, float) else int(value)


def _optional_count(raw: dict[str, Any], key: str, where: str) -> int | None:
    return None if raw[key] is None else _count(raw, key, where)


def _strings(raw: dict[str, Any], key: str, where: str) -> list[str]:
    value = raw[key]
    _require_strings(value, f"{where}.{key}")
    return [str(v) for v in value]


def _list(raw: dict[str, Any], key: str, where: str) -> list[Any]:
    value = raw[key]
    _require(isinstance(value, list), f"{where}.{key}: expected a list")
    return list(value)


def parse_summary_entry(raw: Any, where: str) -> SummaryEntry:
    entry = require_keys(raw, where, tuple(SummaryEntry.__annotations__))
    return SummaryEntry(
        model=_string(entry, "model", where, 300),
        rank=_count(entry, "rank", where),
        bt_score=_number(entry, "bt_score", where),
        bootstrap_q025=_number(entry, "bootstrap_q025", where),
        bootstrap_q975=_number(entry, "bootstrap_q975", where),
        vote_count=_count(entry, "vote_count", where),
        previous_rank=_optional_count(entry, "previous_rank", where),
    )


def _optional_identifier(raw: dict[str, Any], key: str, where: str) -> str | None:
    value = raw[key]
    _require(value is None or isinstance(value, str), f"{where}.{key}: expected a string or null")
    return None if value is None else str(value)


_STYLE_KEYS = ("style", "style_board")


def parse_publish_result(raw: Any, where: str = "result") -> PublishResult:
    """Validate one leaderboard's publish result (what the Map hands to notify). A result written
    before ``shown_snapshot_identifier`` and ``superseded`` existed (an old execution, redriven)
    is read as publish then wrote it: a public snapshot was the one shown."""
    required = tuple(
        k for k in PublishResult.__annotations__ if k not in (*_PLACEMENT_KEYS, *_STYLE_KEYS)
    )
    result = require_keys(raw, where, required)
    identifier = _string(result, "snapshot_identifier", where, 200)
    visibility = result["visibility"]
    _require(visibility in ("public", "private"), f"{where}.visibility: expected public or private")
    _require(isinstance(result["created"], bool), f"{where}.created: expected true or false")
    if all(key in result for key in _PLACEMENT_KEYS):
        shown = _optional_identifier(result, "shown_snapshot_identifier", where)
        _require(
            isinstance(result["superseded"], bool), f"{where}.superseded: expected true or false"
        )
        superseded = bool(result["superseded"])
    else:
        shown, superseded = (identifier if visibility == "public" else None), False
    if visibility == "public":  # the one shown, or superseded by the one shown
        consistent = shown is not None and (shown == identifier) != superseded
    else:  # never shown; superseded only by a public one
        consistent = shown != identifier and (shown is not None or not superseded)
    _require(
        consistent,
        f"{where}.shown_snapshot_identifier: {str(shown)[:60]!r} contradicts visibility"
        f" {visibility} with superseded {str(superseded).lower()}",
    )
    parsed = PublishResult(
        slug=_matching(result, "slug", where, SLUG_RE, "a leaderboard slug (a-z, 0-9, -)"),
        snapshot_id=_string(result, "snapshot_id", where, 100),
        snapshot_identifier=identifier,
        visibility="public" if visibility == "public" else "private",
        entry_count=_count(result, "entry_count", where),
        vote_count=_count(result, "vote_count", where),
        created=bool(result["created"]),
        previous_snapshot_identifier=_optional_identifier(
            result, "previous_snapshot_identifier", where
        ),
        shown_snapshot_identifier=shown,
        superseded=superseded,
        top=[
            parse_summary_entry(entry, f"{where}.top[{j}]")
            for j, entry in enumerate(_list(result, "top", where))
        ],
        new_models=_strings(result, "new_models", where),
        dropped_models=_strings(result, "dropped_models", where),
    )
    if result.get("style") is not None:
        parsed["style"] = parse_style_summary(result["style"], f"{where}.style")
    if result.get("style_board") is not None:
        parsed["style_board"] = parse_style_board(result["style_board"], f"{where}.style_board")
    return parsed


def _slug_as_stored(raw: dict[str, Any], where: str) -> str:
    """A leaderboard's slug as its row holds it: a skip may name one our contract cannot carry
    (even an empty one), which is exactly why it was skipped."""
    value = raw["slug"]
    _require(isinstance(value, str) and len(value) <= 100, f"{where}.slug: expected a string")
    return str(value)


def parse_skipped(raw: Any, where: str) -> Skipped:
    skipped = _exact_keys(raw, where, ("slug", "reason"))
    return Skipped(slug=_slug_as_stored(skipped, where), reason=_string(skipped, "reason", where))


def parse_left_out(raw: Any, where: str) -> LeftOut:
    left_out = _exact_keys(raw, where, ("slug", "reason", "count"))
    count = _count(left_out, "count", where)
    _require(count > 0, f"{where}.count: expected a positive integer")
    return LeftOut(
        slug=_matching(left_out, "slug", where, SLUG_RE, "a leaderboard slug (a-z, 0-9, -)"),
        reason=_string(left_out, "reason", where, 200),
        count=count,
    )


def is_skipped(raw: Any) -> bool:
    """Whether one of the Map's results is a skip rather than a PublishResult."""
    return isinstance(raw, dict) and "reason" in raw and "snapshot_id" not in raw


def parse_notify_event(raw: Any) -> NotifyEvent:
    """Validate the notify stage's success-mode event; name the first bad field."""
    event = require_keys(raw, "event", ("mode", "run", "results", "skipped"))
    _require(event["mode"] == "success", "mode: expected 'success'")
    outcomes = list(enumerate(_list(event, "results", "event")))
    parsed = NotifyEvent(
        mode="success",
        run=parse_run_context(event["run"]),
        results=[
            parse_publish_result(result, f"results[{i}]")
            for i, result in outcomes
            if not is_skipped(result)
        ],
        skipped=[
            parse_skipped(item, f"skipped[{i}]")
            for i, item in enumerate(_list(event, "skipped", "event"))
        ]
        + [parse_skipped(item, f"results[{i}]") for i, item in outcomes if is_skipped(item)],
        left_out=[
            parse_left_out(item, f"left_out[{i}]")
            for i, item in enumerate(_list(event, "left_out", "event"))
        ]
        if event.get("left_out") is not None
        else [],
    )
    if event.get("started_at") is not None:
        parse_timestamp(event["started_at"], "started_at")
        parsed["started_at"] = str(event["started_at"])
    return parsed


# --- stage events of fetch, rank and publish ----------------------------------------------------
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_RUN_ID_RE = re.compile(r"\d{8}T\d{6}Z-[A-Za-z0-9_-]{1,80}")
_SNAPSHOT_RE = re.compile(r"snapshot_\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}")
_S3_URI_RE = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/\S+")


class FetchInput(TypedDict):
    """A validated FetchEvent: the run request with defaults filled in, and the execution."""

    request: RunRequest
    execution_id: str
    execution_name: str


def _exact_keys(
    raw: Any, name: str, keys: tuple[str, ...], optional: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``require_keys`` that also refuses keys the contract does not know (``optional`` ones
    may be there or not)."""
    event = require_keys(raw, name, keys)
    unknown = sorted(set(event) - set(keys) - set(optional))
    _require(not unknown, f"{name}: unknown field(s) {', '.join(map(str, unknown))}")
    return event


def _string(raw: dict[str, Any], key: str, where: str, limit: int = 2048) -> str:
    value = raw[key]
    _require(
        isinstance(value, str) and 0 < len(value) <= limit,
        f"{where}.{key}: expected a string of 1..{limit} characters",
    )
    return str(value)


def _count(raw: dict[str, Any], key: str, where: str) -> int:
    value = raw[key]
    _require(
        isinstance(value, int) and not isinstance(value, bool) and value >= 0,
        f"{where}.{key}: expected a non-negative integer",
    )
    return int(value)


def _matching(
    raw: dict[str, Any], key: str, where: str, pattern: re.Pattern[str], what: str
) -> str:
    value = raw[key]
    _require(
        isinstance(value, str) and bool(pattern.fullmatch(value)), f"{where}.{key}: expected {what}"
    )
    return str(value)


def parse_fetch_event(raw: Any) -> FetchInput:
    """Validate the fetch stage's event; the request's defaults are filled in."""
    event = _exact_keys(raw, "event", ("request", "execution_id", "execution_name"))
    return FetchInput(
        request=parse_run_request(event["request"]),
        execution_id=_string(event, "execution_id", "event"),
        execution_name=_string(event, "execution_name", "event", 80),
    )


_RUN_KEYS = tuple(RunContext.__annotations__)


def parse_run_context(raw: Any, where: str = "run") -> RunContext:
    """Validate a RunContext as fetch derived it (every key present, nothing else)."""
    run = _exact_keys(raw, where, _RUN_KEYS)
    trigger = run["trigger"]
    _require(
        trigger in ("scheduled", "manual"), f"{where}.trigger: expected 'scheduled' or 'manual'"
    )
    parse_timestamp(run["run_at"], f"{where}.run_at")
    seed = run["seed"]
    _require(
        isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**32,
        f"{where}.seed: expected an integer in [0, 2^32)",
    )
    _require(isinstance(run["publish"], bool), f"{where}.publish: expected true or false")
    prefix = run["artifacts_prefix"]
    _require(
        isinstance(prefix, str) and bool(_S3_URI_RE.fullmatch(prefix)) and prefix.endswith("/"),
        f"{where}.artifacts_prefix: expected an s3://bucket/prefix/ URI ending with /",
    )
    return RunContext(
        run_id=_matching(run, "run_id", where, _RUN_ID_RE, "a run id like 20250101T060000Z-name"),
        execution_id=_string(run, "execution_id", where),
        execution_name=_string(run, "execution_name", where),
        correlation_id=_string(run, "correlation_id", where),
        trigger="manual" if trigger == "manual" else "scheduled",
        requested_by=None
        if run["requested_by"] is None
        else _string(run, "requested_by", where, 200),
        run_at=str(run["run_at"]),
        snapshot_identifier=_matching(
            run, "snapshot_identifier", where, _SNAPSHOT_RE, "snapshot_YYYY-MM-DD_HH-MM-SS"
        ),
        bootstrap=parse_bootstrap(run["bootstrap"], f"{where}.bootstrap"),
        seed=int(seed),
        publish=bool(run["publish"]),
        artifacts_prefix=str(prefix),
    )


_BATCH_KEYS = tuple(LeaderboardBatch.__annotations__)


def parse_leaderboard_batch(raw: Any, where: str = "leaderboard") -> LeaderboardBatch:
    """Validate one leaderboard's fetch output (slug, ids, S3 URIs, counts)."""
    batch = _exact_keys(raw, where, _BATCH_KEYS)
    return LeaderboardBatch(
        slug=_matching(batch, "slug", where, SLUG_RE, "a leaderboard slug (a-z, 0-9, -)"),
        leaderboard_id=_matching(batch, "leaderboard_id", where, _UUID_RE, "a UUID"),
        name=_string(batch, "name", where, 200),
        votes_uri=_matching(batch, "votes_uri", where, _S3_URI_RE, "an s3://bucket/key URI"),
        models_uri=_matching(batch, "models_uri", where, _S3_URI_RE, "an s3://bucket/key URI"),
        vote_count=_count(batch, "vote_count", where),
        model_count=_count(batch, "model_count", where),
    )


def parse_rank_event(raw: Any) -> RankEvent:
    """Validate the rank stage's event: one item of the Map over leaderboards."""
    event = _exact_keys(raw, "event", ("run", "leaderboard"))
    return RankEvent(
        run=parse_run_context(event["run"]),
        leaderboard=parse_leaderboard_batch(event["leaderboard"]),
    )


def parse_rank_result(raw: Any) -> RankResult:
    """Validate a RankResult (a leaderboard with at least one ranked model)."""
    keys = tuple(k for k in RankResult.__annotations__ if k != "style")
    event = _exact_keys(raw, "event", keys, optional=("style",))
    ranked = _count(event, "ranked_count", "event")
    _require(ranked > 0, "event.ranked_count: expected at least 1 (nobody ranked is a skip)")
    result = RankResult(
        run=parse_run_context(event["run"]),
        leaderboard=parse_leaderboard_batch(event["leaderboard"]),
        entries_uri=_matching(event, "entries_uri", "event", _S3_URI_RE, "an s3://bucket/key URI"),
        ranked_count=ranked,
        unranked_count=_count(event, "unranked_count", "event"),
    )
    if event.get("style") is not None:
        result["style"] = parse_style_summary(event["style"], "event.style")
    return result


def parse_rank_skipped(raw: Any) -> RankSkipped:
    """Validate a RankSkipped: the skip names the leaderboard it comes with."""
    event = _exact_keys(raw, "event", tuple(RankSkipped.__annotations__))
    board = parse_leaderboard_batch(event["leaderboard"])
    skipped = parse_skipped(event["skipped"], "event.skipped")
    _require(
        skipped["slug"] == board["slug"],
        f"event.skipped.slug: {skipped['slug'][:60]!r} is not the leaderboard's slug",
    )
    return RankSkipped(run=parse_run_context(event["run"]), leaderboard=board, skipped=skipped)


def parse_publish_event(raw: Any) -> RankResult | RankSkipped:
    """Validate the publish stage's event: either of the rank stage's results."""
    if isinstance(raw, dict) and "skipped" in raw:
        return parse_rank_skipped(raw)
    return parse_rank_result(raw)


# --- style control ----------------------------------------------------------------------------
def _optional_number(raw: dict[str, Any], key: str, where: str) -> float | None:
    return None if raw[key] is None else _number(raw, key, where)


def _style_effect(raw: Any, where: str) -> StyleEffect:
    effect = _exact_keys(raw, where, tuple(StyleEffect.__annotations__))
    return StyleEffect(
        feature=_string(effect, "feature", where, 40),
        elo=_optional_number(effect, "elo", where),
        elo_q025=_optional_number(effect, "elo_q025", where),
        elo_q975=_optional_number(effect, "elo_q975", where),
    )


def _style_shift(raw: Any, where: str) -> StyleShift:
    shift = _exact_keys(raw, where, tuple(StyleShift.__annotations__))
    return StyleShift(
        model=_string(shift, "model", where, 300),
        plain_rank=_count(shift, "plain_rank", where),
        style_rank=_count(shift, "style_rank", where),
    )


def parse_style_summary(raw: Any, where: str) -> StyleSummary:
    """Validate a leaderboard's style-controlled ranking summary (rank -> publish -> notify)."""
    summary = _exact_keys(raw, where, tuple(StyleSummary.__annotations__))
    uri, reason = summary["entries_uri"], summary["reason"]
    _require(
        uri is None or (isinstance(uri, str) and bool(_S3_URI_RE.fullmatch(uri))),
        f"{where}.entries_uri: expected an s3://bucket/key URI or null",
    )
    _require(
        reason is None or (isinstance(reason, str) and 0 < len(reason) <= 500),
        f"{where}.reason: expected a string of 1..500 characters or null",
    )
    effects = [
        _style_effect(item, f"{where}.effects[{i}]")
        for i, item in enumerate(_list(summary, "effects", where))
    ]
    shifts = [
        _style_shift(item, f"{where}.shifts[{i}]")
        for i, item in enumerate(_list(summary, "shifts", where))
    ]
    return StyleSummary(
        entries_uri=None if uri is None else str(uri),
        reason=None if reason is None else str(reason),
        ranked_count=_count(summary, "ranked_count", where),
        votes_used=_count(summary, "votes_used", where),
        votes_left_out=_count(summary, "votes_left_out", where),
        votes_without_style=_count(summary, "votes_without_style", where),
        effects=effects,
        shifts=shifts,
    )


def parse_style_board(raw: Any, where: str) -> StyleBoard:
    """Validate the publish stage's outcome for a mapped style-controlled leaderboard."""
    board = _exact_keys(raw, where, tuple(StyleBoard.__annotations__))
    snapshot_id, skipped = board["snapshot_id"], board["skipped"]
    _require(
        snapshot_id is None or (isinstance(snapshot_id, str) and 0 < len(snapshot_id) <= 100),
        f"{where}.snapshot_id: expected a string or null",
    )
    _require(
        skipped is None or (isinstance(skipped, str) and 0 < len(skipped) <= 500),
        f"{where}.skipped: expected a string of 1..500 characters or null",
    )
    _require(
        (snapshot_id is None) != (skipped is None),
        f"{where}: expected either a snapshot_id or the reason it was skipped",
    )
    _require(isinstance(board["created"], bool), f"{where}.created: expected true or false")
    return StyleBoard(
        slug=_matching(board, "slug", where, SLUG_RE, "a leaderboard slug (a-z, 0-9, -)"),
        snapshot_id=None if snapshot_id is None else str(snapshot_id),
        created=bool(board["created"]),
        skipped=None if skipped is None else str(skipped),
    )


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
category), as upstream's migrations V2 and V9 seed them (mirrored by
``local/sql/V2__reference_leaderboards.sql``)."""
