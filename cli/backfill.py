"""``leaderboard backfill``: the plan, what each execution did, and the summary (pure).

A backfill is one pipeline execution per past instant, each with that instant as its ``run_at``,
so each counts only the votes cast up to then and writes the snapshot a scheduled run at that
moment would have written (the snapshot identifier derives from ``run_at``). The instants fall at
the schedule's time of day (from the stack's ``scheduleExpression`` and ``scheduleTimeZone`` in
cdk.json's context, or ``--at``), every ``--every`` from ``--from`` to ``--to``.

Each instant's execution has a deterministic name, ``backfill-<instant>-<selection key>``
(``-2``, ``-3``, ... for later attempts), so a rerun finds what an earlier one started or
finished, and Step Functions itself refuses to start the same attempt twice. The drivers
(``cli.backfill_aws``, ``cli.backfill_local``) decide what to run; this module says which
instants, under which names, reads an execution's outcome from its history, and tells whether
an instant is already done (the one database read: which snapshots exist for an instant).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from cli.arguments import UsageError
from common.contracts import (
    RunRequest,
    Skipped,
    is_skipped,
    parse_run_request,
    snapshot_identifier,
)
from common.stepfunctions.executions import Selection
from common.stepfunctions.failures import failure_point, summarize_cause
from common.stepfunctions.history import details, end_status, leaderboard_of, loads

MAX_INSTANTS = 1000
MIN_EVERY = timedelta(hours=1)
NAME_PREFIX = "backfill"
_EVERY_RE = re.compile(r"(\d+)([hdw])")
_AT_RE = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
_CRON_RE = re.compile(r"cron\((\S+) (\S+) \S+ \S+ \S+(?: \S+)?\)")
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}

Result = Literal["published", "exists", "failed", "running", "interrupted", "not run"]
_WORDS: dict[str, str] = {
    "published": "published",
    "exists": "already there",
    "failed": "failed",
    "running": "still running",
    "interrupted": "interrupted",
    "not run": "not run",
}


# --- the schedule's time of day -------------------------------------------------------------------
@dataclass(frozen=True)
class TimeOfDay:
    """When in the day the instants fall, and where that came from (said at the start)."""

    at: time
    zone: str
    source: str


def schedule_time(expression: str, zone: str, source: str) -> TimeOfDay:
    """The time of day of a daily ``cron(M H ...)`` schedule; other schedules need --at."""
    found = _CRON_RE.fullmatch(expression.strip())
    if found is None or not (found[1].isdecimal() and found[2].isdecimal()):
        raise UsageError(
            f"the schedule {expression} ({source}) has no single time of day: give --at HH:MM"
        )
    minute, hour = int(found[1]), int(found[2])
    if minute > 59 or hour > 23:
        raise UsageError(f"the schedule {expression} ({source}) is not a valid cron expression")
    return TimeOfDay(time(hour, minute), zone, f"{expression} in {zone}, {source}")


def deployed_schedule(cdk_json: Path) -> TimeOfDay:
    """The schedule the stack deploys with, from cdk.json's context (the stack's defaults else)."""
    from infra.config import InvalidContext, parse_context

    try:
        context = json.loads(cdk_json.read_text()).get("context", {}) if cdk_json.is_file() else {}
        config = parse_context(context)
    except (ValueError, InvalidContext) as exc:
        raise UsageError(f"{cdk_json}: {exc}; give --at HH:MM") from None
    source = "cdk.json's context" if "scheduleExpression" in context else "the stack's default"
    return schedule_time(config.schedule_expression, config.schedule_time_zone, source)


def parse_at(text: str) -> TimeOfDay:
    found = _AT_RE.fullmatch(text.strip())
    if found is None:
        raise UsageError(f"--at: {text[:20]!r} is not a time of day HH:MM (UTC)")
    return TimeOfDay(time(int(found[1]), int(found[2])), "UTC", "--at")


# --- the instants -----------------------------------------------------------------------------------
def parse_date(text: str, flag: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{flag}: {text[:40]!r} is not a date YYYY-MM-DD") from None


def parse_every(text: str) -> timedelta:
    found = _EVERY_RE.fullmatch(text.strip().lower())
    if found is None or int(found[1]) == 0:
        raise UsageError(f"--every: {text[:20]!r} is not an interval such as 1d, 12h or 1w")
    every = int(found[1]) * _UNITS[found[2]]
    if every < MIN_EVERY:
        raise UsageError("--every: at least 1h")
    return every


def instants(
    first: date, last: date, at: TimeOfDay, every: timedelta, now: datetime
) -> list[datetime]:
    """The instants (UTC) from ``first`` to ``last`` (days in the schedule's zone, inclusive):
    whole-day intervals keep the wall-clock time of day across DST changes."""
    if last < first:
        raise UsageError(f"--to {last} is before --from {first}")
    zone = ZoneInfo(at.zone)
    found: list[datetime] = []
    if every % timedelta(days=1) == timedelta(0):
        day = first
        while day <= last and len(found) <= MAX_INSTANTS:
            found.append(datetime.combine(day, at.at, zone).astimezone(UTC))
            day += every
    else:
        moment = datetime.combine(first, at.at, zone).astimezone(UTC)
        end = datetime.combine(last + timedelta(days=1), time(), zone).astimezone(UTC)
        while moment < end and len(found) <= MAX_INSTANTS:
            found.append(moment)
            moment += every
    if len(found) > MAX_INSTANTS:
        raise UsageError(
            f"--from/--to/--every: more than {MAX_INSTANTS} instants; backfill a shorter range "
            "at a time or use a longer --every"
        )
    future = [moment for moment in found if moment > now]
    if future:
        past = [moment for moment in found if moment <= now]
        latest = f"; the last past one is {when(past[-1])}" if past else ""
        raise UsageError(
            f"--to: the instant {when(future[0])} has not come yet (its votes are not all cast)"
            + latest
        )
    return found


def when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def run_at(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


# --- names and requests -------------------------------------------------------------------------------
def selection_key(selection: Selection) -> str:
    """8 hex digits naming the leaderboards asked for (order and duplicates do not matter)."""
    canonical = "all" if selection == "all" else ",".join(sorted(set(selection)))
    return hashlib.sha256(canonical.encode()).hexdigest()[:8]


def name_prefix(moment: datetime) -> str:
    """What the names of every backfill execution at ``moment`` start with."""
    return f"{NAME_PREFIX}-{moment.astimezone(UTC):%Y%m%dT%H%M%SZ}-"


def execution_name(moment: datetime, selection: Selection, attempt: int = 1) -> str:
    """``backfill-20260101T060000Z-1a2b3c4d`` for the first attempt, ``...-2`` for the second."""
    name = f"{name_prefix(moment)}{selection_key(selection)}"
    return name if attempt == 1 else f"{name}-{attempt}"


def attempt_of(name: str, moment: datetime, selection: Selection) -> int | None:
    """Which attempt at ``moment`` an execution named ``name`` is (None: not one of ours)."""
    first = execution_name(moment, selection)
    if name == first:
        return 1
    suffix = name.removeprefix(first + "-")
    return int(suffix) if suffix != name and suffix.isdecimal() and int(suffix) > 1 else None


def request(
    moment: datetime,
    selection: Selection,
    bootstrap: int,
    *,
    publish: bool,
    requested_by: str,
    name: str,
) -> RunRequest:
    """The execution input of one instant (the pipeline's contract; correlation id = the name)."""
    return parse_run_request(
        {
            "leaderboards": selection,
            "bootstrap": bootstrap,
            "trigger": "manual",
            "requested_by": requested_by,
            "correlation_id": name,
            "run_at": run_at(moment),
            "publish": publish,
        }
    )


def covers(request: RunRequest | None, moment: datetime, selection: Selection) -> bool:
    """Whether an execution with this input made the snapshots an instant asks for."""
    if request is None or request["run_at"] is None:
        return False
    same_time = snapshot_identifier(
        datetime.fromisoformat(request["run_at"].replace("Z", "+00:00"))
    ) == snapshot_identifier(moment)
    asked = request["leaderboards"]
    return same_time and (asked == "all" or (selection != "all" and set(selection) <= set(asked)))


# --- what an execution did ------------------------------------------------------------------------------
@dataclass
class Outcome:
    """One instant in the summary: what was published, found already there, skipped, failed."""

    moment: datetime
    result: Result
    execution: str | None = None
    published: list[str] = field(default_factory=list)
    """Leaderboards whose snapshot this backfill wrote."""
    existing: list[str] = field(default_factory=list)
    """Leaderboards whose snapshot was already there (not written again)."""
    skipped: list[Skipped] = field(default_factory=list)
    """Leaderboards fetch skipped (not enough votes yet at that instant)."""
    failed: list[str] = field(default_factory=list)
    note: str = ""
    seconds: float | None = None


def execution_outcome(
    moment: datetime,
    name: str,
    history: Sequence[dict[str, Any]],
    requested: Selection,
    *,
    status: str | None = None,
) -> Outcome:
    """What an execution did, from its history: the fetch result names the leaderboards it
    worked on (and those it skipped), each publish result says whether it wrote the snapshot or
    passes on a skip (nobody could be ranked, the leaderboard or a model vanished)."""
    fetched: list[str] | None = None
    skipped: list[Skipped] = []
    late: list[Skipped] = []
    published: dict[str, bool] = {}
    for event in history:
        if not event["type"].endswith("StateExited"):
            continue
        output = loads(details(event).get("output"))
        if not isinstance(output, dict):
            continue
        if {"run", "leaderboards", "skipped"} <= set(output) and "results" not in output:
            fetched = [str(b.get("slug")) for b in output["leaderboards"] if isinstance(b, dict)]
            skipped = [
                Skipped(slug=str(s.get("slug")), reason=str(s.get("reason")))
                for s in output["skipped"]
                if isinstance(s, dict)
            ]
        elif {"snapshot_identifier", "created", "slug"} <= set(output):
            published[str(output["slug"])] = bool(output["created"])
        elif "slug" in output and is_skipped(output):  # publish passing on a data problem
            late.append(Skipped(slug=str(output["slug"]), reason=str(output["reason"])))
    status = status or end_status(history) or "RUNNING"
    outcome = Outcome(
        moment=moment,
        result="published" if status == "SUCCEEDED" else "failed",
        execution=name,
        published=[slug for slug, created in published.items() if created],
        existing=[slug for slug, created in published.items() if not created],
        skipped=skipped + late,
    )
    done = set(published) | {s["slug"] for s in late}
    if fetched is None:
        outcome.failed = list(requested) if requested != "all" else ["all"]
    else:
        outcome.failed = [slug for slug in fetched if slug not in done]
    if status == "SUCCEEDED":
        if not outcome.published:
            outcome.result = "exists"
        return outcome
    point = failure_point(history)
    where = point.state or "?"
    board = leaderboard_of(point.state_input)
    cause = summarize_cause(point.cause, 160)
    error = point.error or status
    said = cause if cause and cause.startswith(error) else f"{error}: {cause}" if cause else error
    outcome.note = f"{status} at {where}{f' [{board}]' if board else ''}: {said}"
    return outcome


def published_slugs(outcome: Outcome) -> list[str]:
    """The leaderboards whose snapshot exists after the execution (written now or before)."""
    return [*outcome.published, *outcome.existing]


# --- what is already done -----------------------------------------------------------------------------
def snapshots_at(url: str, moment: datetime) -> tuple[set[str], list[str]]:
    """(the leaderboards with a snapshot for ``moment``, every leaderboard) in the database."""
    from common import db

    with db.connect(url, read_only=True) as conn:
        found = conn.execute(
            "SELECT l.slug FROM api.leaderboard_snapshot s"
            " JOIN api.leaderboard l ON l.id = s.leaderboard_id WHERE s.snapshot_identifier = %s",
            (snapshot_identifier(moment),),
        ).fetchall()
        boards = conn.execute("SELECT slug FROM api.leaderboard ORDER BY slug").fetchall()
    return {str(row[0]) for row in found}, [str(row[0]) for row in boards]


def already_done(
    moment: datetime,
    selection: Selection,
    database: tuple[set[str], list[str]] | None,
    earlier: Outcome | None,
) -> Outcome | None:
    """The outcome of an instant that needs no run, or None when it must run.

    Done when the database (if one is at hand) holds a snapshot of every leaderboard asked for
    at that instant, or when an earlier execution for it succeeded and every snapshot it wrote or
    found is still there (leaderboards it skipped for their data would be skipped again)."""
    if database is not None:
        present, every = database
        wanted = every if selection == "all" else list(selection)
        if set(wanted) <= present:
            return Outcome(
                moment, "exists", existing=sorted(wanted), note="already in the database"
            )
    if earlier is not None and earlier.result in ("published", "exists"):
        kept = published_slugs(earlier)
        if database is None or set(kept) <= database[0]:
            return Outcome(
                moment,
                "exists",
                execution=earlier.execution,
                existing=sorted(kept),
                skipped=earlier.skipped,
                note="done by this earlier execution",
            )
    return None


# --- the summary -----------------------------------------------------------------------------------
def outcome_line(outcome: Outcome) -> str:
    """One finished instant, as the progress prints it."""
    parts = [f"{when(outcome.moment)}  {outcome.result:<11}"]
    counts = []
    if outcome.published:
        counts.append(f"{len(outcome.published)} written")
    if outcome.existing:
        counts.append(f"{len(outcome.existing)} already there")
    if outcome.skipped:
        counts.append(f"{len(outcome.skipped)} skipped for their data")
    if outcome.failed:
        counts.append(f"{'all' if outcome.failed == ['all'] else len(outcome.failed)} failed")
    if counts:
        parts.append(", ".join(counts))
    if outcome.seconds is not None:
        parts.append(f"{outcome.seconds:.1f} s")
    if outcome.note:
        parts.append(outcome.note)
    if outcome.execution:
        parts.append(outcome.execution)
    return "  ".join(parts)


def summary(outcomes: Iterable[Outcome]) -> list[str]:
    """The table at the end: one row per instant, then the totals in words."""
    rows = sorted(outcomes, key=lambda o: o.moment)
    header = (
        f"{'instant (UTC)':<16}  {'result':<11}  {'published':>9}  {'skipped':>7}  "
        f"{'failed':>6}  execution / note"
    )
    lines = [header, "-" * len(header)]
    for o in rows:
        skipped = len(o.existing) + len(o.skipped)
        failed = "all" if o.failed == ["all"] else str(len(o.failed))
        note = "  ".join(part for part in (o.execution or "", o.note) if part)
        lines.append(
            f"{o.moment.astimezone(UTC):%Y-%m-%d %H:%M}  {o.result:<11}  {len(o.published):>9}  "
            f"{skipped:>7}  {failed:>6}  {note}"
        )
    by_result: dict[str, int] = {}
    for o in rows:
        by_result[o.result] = by_result.get(o.result, 0) + 1
    reasons = sorted({f"{s['slug']}: {s['reason']}" for o in rows for s in o.skipped})
    lines.append("")
    lines.append(
        f"{len(rows)} instant(s): "
        + ", ".join(f"{count} {_WORDS[result]}" for result, count in by_result.items())
        + f"; {sum(len(o.published) for o in rows)} snapshot(s) written"
    )
    if reasons:
        shown = "; ".join(reasons[:5]) + (
            f"; ... ({len(reasons) - 5} more)" if len(reasons) > 5 else ""
        )
        lines.append(f"skipped for their data: {shown}")
    return lines


def succeeded(outcomes: Iterable[Outcome]) -> bool:
    return all(o.result in ("published", "exists") for o in outcomes)


class BackfillInterrupted(Exception):
    """Ctrl-C, or an error that stopped the backfill (``failed``): what each instant came to so
    far (the summary still prints)."""

    def __init__(self, outcomes: list[Outcome], note: str, *, failed: bool = False) -> None:
        super().__init__(note)
        self.outcomes = outcomes
        self.note = note
        self.failed = failed
