"""The plain and the style-controlled ranking of the same votes, side by side: rank shifts.

A model's shift is its plain rank minus its style-controlled rank: positive when it rises under
style control (its style held it back), negative when it drops (its long, markdown-heavy answers
helped it). A shift exists only for a model ranked in both, and counts only the models ranked in
both: the style-controlled fit may leave a model out (its votes lack style counts, or too few of
them have any), and everyone below it would otherwise seem to rise a place. Pure: rankings in,
rows and text out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from common.ranking.result import ModelRanking, Ranking
from common.ranking.style import StyleRanking
from common.scores import round6


@dataclass(frozen=True)
class RankShift:
    """One model in both rankings (``None``: the model is not in that ranking at all)."""

    model: str
    plain: ModelRanking | None
    style: ModelRanking | None
    places: tuple[int, int] | None = None
    """Plain and style-controlled place among the models ranked in both (None: not in both)."""

    @property
    def plain_rank(self) -> int | None:
        return None if self.plain is None else self.plain.rank

    @property
    def style_rank(self) -> int | None:
        return None if self.style is None else self.style.rank

    @property
    def shift(self) -> int | None:
        """Plain place minus style-controlled place among the models ranked in both; None
        unless ranked in both. Equal to plain rank minus style rank when both rank the same
        models."""
        if self.places is None:
            return None
        return self.places[0] - self.places[1]


def rank_shifts(plain: Ranking, style: Ranking) -> tuple[RankShift, ...]:
    """Every model of either ranking, by style-controlled rank, then plain rank, then name."""
    by_plain = {e.model: e for e in plain.entries}
    by_style = {e.model: e for e in style.entries}
    ranks = {
        m: (p, q)
        for m, entry in by_plain.items()
        if (p := entry.rank) is not None and m in by_style and (q := by_style[m].rank) is not None
    }
    plain_place = {m: i for i, m in enumerate(sorted(ranks, key=lambda m: ranks[m][0]), 1)}
    style_place = {m: i for i, m in enumerate(sorted(ranks, key=lambda m: ranks[m][1]), 1)}
    rows = [
        RankShift(
            m,
            by_plain.get(m),
            by_style.get(m),
            (plain_place[m], style_place[m]) if m in plain_place else None,
        )
        for m in by_plain | by_style
    ]
    far = 1 << 62
    rows.sort(key=lambda r: (r.style_rank or far, r.plain_rank or far, r.model))
    return tuple(rows)


def biggest_shifts(shifts: Sequence[RankShift], count: int) -> list[RankShift]:
    """The ``count`` largest moves (either way), ties by style-controlled rank, then name."""
    moved = [s for s in shifts if s.shift]
    moved.sort(key=lambda s: (-abs(s.shift or 0), s.style_rank or 0, s.model))
    return moved[:count]


def shift_text(shift: int | None) -> str:
    """↑2 (rises under style control), ↓5 (drops), = (unchanged), - (not ranked in both)."""
    if shift is None:
        return "-"
    return f"↑{shift}" if shift > 0 else f"↓{-shift}" if shift < 0 else "="


def side_by_side(shifts: Sequence[RankShift]) -> str:
    """A fixed-width table: both ranks, the shift, both scores with their 95% intervals and
    the votes of each fit."""
    lines = [
        f"{'plain':>5} {'style':>5} {'shift':>5}  {'model':<32} {'plain score':>11}  "
        f"{'95% CI':<20} {'style score':>11}  {'95% CI':<20} {'votes':>8} {'styled':>8}"
    ]
    for s in shifts:
        lines.append(
            f"{_rank(s.plain_rank):>5} {_rank(s.style_rank):>5} {shift_text(s.shift):>5}  "
            f"{s.model:<32} {_score(s.plain):>11}  {_interval(s.plain):<20} "
            f"{_score(s.style):>11}  {_interval(s.style):<20} "
            f"{(s.plain.vote_count if s.plain else 0):>8} "
            f"{(s.style.vote_count if s.style else 0):>8}"
        )
    return "\n".join(lines)


def comparison_table(plain: Ranking, style: StyleRanking, votes_without_style: int) -> str:
    """What ``leaderboard rank --style-control`` prints: both rankings side by side, then the
    style coefficients (log-odds and Elo per SD, with their intervals) and the votes counted."""
    lines = [side_by_side(rank_shifts(plain, style.ranking)), ""]
    lines.append(f"{'style feature':<16} {'log-odds/SD':>11}  {'95% CI':<18} {'Elo/SD':>8}  95% CI")
    for c in style.coefficients:
        if c.estimate is None or c.elo is None:
            lines.append(f"{c.feature:<16} {'-':>11}  {c.reason or ''}")
            continue
        lines.append(
            f"{c.feature:<16} {c.estimate:11.4f}  {_pair(c.q025, c.q975, 4):<18} "
            f"{c.elo:8.2f}  {_pair(c.elo_q025, c.elo_q975, 2):<18}".rstrip()
        )
    left_out = style.votes_left_out + votes_without_style
    lines.append(
        f"{style.votes_used} votes in the style-controlled fit, {left_out} left out "
        f"({votes_without_style} without style counts, {style.votes_left_out} touching an "
        f"unranked model); the plain fit ranks {plain.n_votes} votes"
    )
    return "\n".join(lines)


def comparison_records(
    plain: Ranking, style: StyleRanking, votes_without_style: int
) -> dict[str, Any]:
    """JSON-ready: both rankings (as their ``to_records``), the shifts and the vote counts."""
    return {
        "plain": plain.to_records(),
        "style_control": style.to_records(),
        "shifts": [
            {
                "model": s.model,
                "plain_rank": s.plain_rank,
                "style_rank": s.style_rank,
                "shift": s.shift,
            }
            for s in rank_shifts(plain, style.ranking)
        ],
        "votes_without_style": votes_without_style,
    }


def _rank(rank: int | None) -> str:
    return "-" if rank is None else str(rank)


def _score(entry: ModelRanking | None) -> str:
    return "-" if entry is None or entry.bt_score is None else f"{entry.bt_score:.2f}"


def _interval(entry: ModelRanking | None) -> str:
    if entry is None:
        return "-"
    return _pair(entry.bootstrap_q025, entry.bootstrap_q975, 2)


def _pair(low: float | None, high: float | None, places: int) -> str:
    if low is None or high is None:
        return "-"
    return f"[{round6(low):.{places}f}, {round6(high):.{places}f}]"
