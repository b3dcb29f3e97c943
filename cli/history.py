"""``leaderboard history``: each model's score, 95% CI and rank across a leaderboard's snapshots.

Read from BixArena's tables the way its API reads them: the leaderboard's *public* snapshots
ordered by ``created_at`` (the time up to which each snapshot's votes count, since publish writes
``created_at = run_at``), and their entries. The rows become one series per model; the models
shown are the ones named, or the top N of the newest snapshot. Formatting (table, JSON, CSV) is
pure; the chart is ``cli.history_plot``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import psycopg

from cli.arguments import UsageError
from common.movements import rank_change
from common.snapshots import OLDEST_FIRST, EntryRow

DEFAULT_TOP = 10
CSV_COLUMNS = (
    "leaderboard", "snapshot_id", "snapshot_identifier", "created_at", "model_id", "model_slug",
    "model_name", "rank", "bt_score", "bootstrap_q025", "bootstrap_q975", "vote_count",
)  # fmt: skip


@dataclass(frozen=True)
class Snapshot:
    id: str
    identifier: str
    created_at: datetime


@dataclass(frozen=True)
class Point:
    """One model in one snapshot."""

    snapshot: Snapshot
    rank: int
    bt_score: Decimal
    bootstrap_q025: Decimal
    bootstrap_q975: Decimal
    vote_count: int


@dataclass(frozen=True)
class Series:
    """A model's points, oldest snapshot first; a snapshot that did not rank it has no point."""

    model_id: str
    model_slug: str
    model_name: str
    points: tuple[Point, ...]

    def at(self, snapshot: Snapshot) -> Point | None:
        return next((p for p in self.points if p.snapshot.id == snapshot.id), None)


@dataclass(frozen=True)
class History:
    leaderboard: str
    snapshots: tuple[Snapshot, ...]
    """The public snapshots, oldest first."""
    series: tuple[Series, ...]
    """The models shown, by their rank in the newest snapshot (then those it did not rank)."""
    selection: str
    """How the models were chosen, in words."""


# --- arguments ------------------------------------------------------------------------------------
def parse_since(text: str) -> datetime:
    """--since: a date (midnight UTC) or an ISO 8601 instant (UTC unless it names a zone)."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--since: {text[:40]!r} is not a date (YYYY-MM-DD) or an instant"
        ) from None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_models(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise UsageError("--models: name at least one model (slug or name)")
    return names


# --- reading --------------------------------------------------------------------------------------
def read(
    conn: psycopg.Connection,
    leaderboard: str,
    *,
    since: datetime | None = None,
    models: Sequence[str] | None = None,
    top: int = DEFAULT_TOP,
) -> History:
    """The history of ``leaderboard``'s public snapshots (from ``since``), for the models named
    (by slug, name or id) or else the top ``top`` of the newest snapshot."""
    found = conn.execute(
        "SELECT s.id::text, s.snapshot_identifier, s.created_at"
        " FROM api.leaderboard_snapshot s JOIN api.leaderboard l ON l.id = s.leaderboard_id"
        " WHERE l.slug = %(slug)s AND s.visibility = 'public'"
        " AND (%(since)s::timestamptz IS NULL OR s.created_at >= %(since)s)"
        f" ORDER BY {OLDEST_FIRST}",
        {"slug": leaderboard, "since": since},
    ).fetchall()
    snapshots = tuple(Snapshot(id=r[0], identifier=r[1], created_at=r[2]) for r in found)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT e.snapshot_id::text, e.model_id::text, m.slug, m.name, e.rank, e.bt_score,"
            " e.bootstrap_q025, e.bootstrap_q975, e.vote_count"
            " FROM api.leaderboard_entry e JOIN api.model m ON m.id = e.model_id"
            " WHERE e.snapshot_id = ANY(%s::uuid[]) ORDER BY e.rank, m.name, e.model_id",
            ([s.id for s in snapshots],),
        )
        rows = [(row[0], EntryRow(*row[1:])) for row in cur.fetchall()]
    return shape(leaderboard, snapshots, rows, models=models, top=top)


def shape(
    leaderboard: str,
    snapshots: Sequence[Snapshot],
    rows: Sequence[tuple[str, EntryRow]],
    *,
    models: Sequence[str] | None,
    top: int,
) -> History:
    """(snapshot id, entry) rows -> one series per chosen model (pure)."""
    by_id = {s.id: s for s in snapshots}
    order = {s.id: i for i, s in enumerate(snapshots)}
    points: dict[str, list[Point]] = {}
    names: dict[str, tuple[str, str]] = {}
    for snapshot_id, row in rows:
        names[row.model_id] = (row.model_slug, row.model_name)
        points.setdefault(row.model_id, []).append(
            Point(
                snapshot=by_id[snapshot_id],
                rank=row.rank,
                bt_score=row.bt_score,
                bootstrap_q025=row.bootstrap_q025,
                bootstrap_q975=row.bootstrap_q975,
                vote_count=row.vote_count,
            )
        )
    newest = snapshots[-1].id if snapshots else None

    def standing(model_id: str) -> tuple[int, int, str]:
        # Ranked in the newest snapshot first, by that rank; then by their own last rank.
        last = max(points[model_id], key=lambda p: order[p.snapshot.id])
        return (0 if last.snapshot.id == newest else 1, last.rank, names[model_id][1])

    ranked = sorted(points, key=standing)
    if models is not None:
        chosen = [_find(name, names) for name in models]
        chosen = sorted(dict.fromkeys(chosen), key=standing)
        selection = f"{len(chosen)} model(s) named"
    else:
        chosen = [m for m in ranked if standing(m)[0] == 0][:top]
        selection = f"the top {len(chosen)} of the newest snapshot"
    series = tuple(
        Series(
            model_id=m,
            model_slug=names[m][0],
            model_name=names[m][1],
            points=tuple(sorted(points[m], key=lambda p: order[p.snapshot.id])),
        )
        for m in chosen
    )
    return History(leaderboard, tuple(snapshots), series, selection)


def _find(name: str, names: dict[str, tuple[str, str]]) -> str:
    wanted = name.casefold()
    for model_id, (slug, full) in names.items():
        if wanted in (model_id, slug.casefold(), full.casefold()):
            return model_id
    known = ", ".join(sorted(full for _, full in names.values())[:8])
    raise UsageError(
        f"--models: no model {name[:60]!r} in these snapshots"
        + (f" (known: {known}{', ...' if len(names) > 8 else ''})" if names else "")
    )


# --- formatting -----------------------------------------------------------------------------------
def _when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}"


def heading(history: History) -> str:
    snapshots = history.snapshots
    if not snapshots:
        return f"{history.leaderboard}: no public snapshot"
    span = (
        _when(snapshots[0].created_at)
        if len(snapshots) == 1
        else f"{_when(snapshots[0].created_at)} .. {_when(snapshots[-1].created_at)}"
    )
    return (
        f"{history.leaderboard}: {len(snapshots)} public snapshot(s), {span} UTC; "
        f"{history.selection}"
    )


def to_table(history: History) -> str:
    """Model by model, each snapshot on its own line with the model's move since the one before."""
    lines = [heading(history)]
    if not history.snapshots:
        return lines[0]
    header = (
        f"{'model':<28}  {'snapshot (UTC)':<19}  {'rank':>4}  {'move':<4}  {'score':>9}  "
        f"{'95% CI':<21} {'votes':>7}"
    )
    lines += [header, "-" * len(header)]
    for series in history.series:
        previous: int | None = None
        for index, snapshot in enumerate(history.snapshots):
            point = series.at(snapshot)
            label = series.model_name[:28] if index == 0 else ""
            if point is None:
                lines.append(f"{label:<28}  {_when(snapshot.created_at):<19}  {'-':>4}  not ranked")
                previous = None
                continue
            move = "" if index == 0 else rank_change(point.rank, previous)
            ci = f"{point.bootstrap_q025:.1f} .. {point.bootstrap_q975:.1f}"
            lines.append(
                f"{label:<28}  {_when(snapshot.created_at):<19}  {point.rank:>4}  {move:<4}  "
                f"{point.bt_score:>9.1f}  {ci:<21} {point.vote_count:>7}"
            )
            previous = point.rank
    return "\n".join(lines)


def _point_record(point: Point) -> dict[str, Any]:
    return {
        "snapshot_id": point.snapshot.id,
        "snapshot_identifier": point.snapshot.identifier,
        "created_at": point.snapshot.created_at.astimezone(UTC).isoformat(),
        "rank": point.rank,
        "bt_score": float(point.bt_score),
        "bootstrap_q025": float(point.bootstrap_q025),
        "bootstrap_q975": float(point.bootstrap_q975),
        "vote_count": point.vote_count,
    }


def to_json(history: History) -> str:
    return json.dumps(
        {
            "leaderboard": history.leaderboard,
            "snapshots": [
                {
                    "id": s.id,
                    "identifier": s.identifier,
                    "created_at": s.created_at.astimezone(UTC).isoformat(),
                }
                for s in history.snapshots
            ],
            "models": [
                {
                    "id": series.model_id,
                    "slug": series.model_slug,
                    "name": series.model_name,
                    "points": [_point_record(p) for p in series.points],
                }
                for series in history.series
            ],
        },
        indent=2,
    )


def to_csv(history: History) -> str:
    """One row per model and snapshot that ranked it (the scores exactly as stored)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for series in history.series:
        for point in series.points:
            writer.writerow(
                (
                    history.leaderboard,
                    point.snapshot.id,
                    point.snapshot.identifier,
                    point.snapshot.created_at.astimezone(UTC).isoformat(),
                    series.model_id,
                    series.model_slug,
                    series.model_name,
                    point.rank,
                    point.bt_score,
                    point.bootstrap_q025,
                    point.bootstrap_q975,
                    point.vote_count,
                )
            )
    return out.getvalue().rstrip("\n")
