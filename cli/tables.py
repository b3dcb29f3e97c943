"""What ``leaderboard snapshots`` and a local run print: snapshots and their entries as text.

Pure formatting over ``common.snapshots`` rows, so the text can be checked without a terminal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC

from common import standing
from common.movements import rank_change
from common.snapshots import EntryRow, SnapshotInfo


def _created(info: SnapshotInfo) -> str:
    return f"{info.created_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}"


def snapshot_table(infos: Sequence[SnapshotInfo]) -> str:
    """Snapshots in the order given: id, identifier, leaderboard, visibility, created, entries."""
    if not infos:
        return "no snapshots"
    header = (
        f"{'id':<36}  {'identifier':<28}  {'leaderboard':<27}  {'visibility':<10}  "
        f"{'created (UTC)':<19}  {'entries':>7}  description"
    )
    lines = [header, "-" * len(header)]
    for info in infos:
        lines.append(
            f"{info.id:<36}  {info.snapshot_identifier:<28}  {info.leaderboard_slug:<27}  "
            f"{info.visibility:<10}  {_created(info):<19}  {info.entry_count:>7}  "
            f"{info.description or ''}"
        )
    return "\n".join(lines)


def snapshot_heading(info: SnapshotInfo) -> str:
    """One snapshot in two lines: what and when, then its id and description."""
    return (
        f"{info.leaderboard_slug} {info.snapshot_identifier} ({info.visibility}), "
        f"created {_created(info)} UTC, {info.entry_count} entries\n"
        f"  id {info.id}" + (f"  {info.description}" if info.description else "")
    )


def placement_lines(
    info: SnapshotInfo, placed: standing.Placement, baseline: SnapshotInfo | None
) -> str:
    """Where a snapshot stands against what BixArena shows (with the command that publishes a
    private one), and what its moves are measured against."""
    lines = [f"  {standing.describe(placed)}"]
    if placed.standing == "private":
        lines.append(f"  publish with: {standing.publish_command(info.id)}")
    if baseline is None:
        lines.append("  no public snapshot before it: no moves")
    else:
        shown = " (what BixArena shows)" if baseline.snapshot_identifier == placed.shown else ""
        lines.append(
            f"  moves against {baseline.snapshot_identifier}, the public snapshot before it{shown}"
        )
    return "\n".join(lines)


def entries_table(rows: Sequence[EntryRow], previous_ranks: Mapping[str, int] | None = None) -> str:
    """A snapshot's entries: rank, model, score, 95% CI, votes, and with ``previous_ranks``
    (model id -> rank in the previous public snapshot) how each model moved."""
    header = f"{'rank':>4}  {'model':<32} {'score':>9}  {'95% CI':<21} {'votes':>7}"
    if previous_ranks is not None:
        header += "  move"
    lines = [header, "-" * len(header)]
    for row in rows:
        ci = f"{row.bootstrap_q025:.1f} .. {row.bootstrap_q975:.1f}"
        line = (
            f"{row.rank:>4}  {(row.model_name or row.model_slug)[:32]:<32}"
            f" {row.bt_score:>9.1f}  {ci:<21} "
            f"{row.vote_count:>7}"
        )
        if previous_ranks is not None:
            line += f"  {rank_change(row.rank, previous_ranks.get(row.model_id))}"
        lines.append(line)
    return "\n".join(lines)


def style_control_table(rows: Sequence[EntryRow], plain_ranks: Mapping[str, int]) -> str:
    """A style-controlled snapshot's entries with each model's plain rank (``plain_ranks``:
    model id -> rank in the plain snapshot of the same run) and its shift: ↑ rises under style
    control, ↓ drops."""
    header = (
        f"{'rank':>4}  {'model':<32} {'score':>9}  {'95% CI':<21} {'votes':>7}  {'plain':>5}  shift"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        ci = f"{row.bootstrap_q025:.1f} .. {row.bootstrap_q975:.1f}"
        plain = plain_ranks.get(row.model_id)
        shift = "-" if plain is None else rank_change(row.rank, plain)
        lines.append(
            f"{row.rank:>4}  {(row.model_name or row.model_slug)[:32]:<32}"
            f" {row.bt_score:>9.1f}  {ci:<21} {row.vote_count:>7}  "
            f"{'-' if plain is None else plain:>5}  {shift}"
        )
    return "\n".join(lines)
