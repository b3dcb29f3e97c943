"""How a new snapshot moved against the previous public one: a pure summary for the notification.

Small by design (the top entries with their previous ranks, and the names of the models that
entered or left), because it travels through the state machine to the notify stage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from common.contracts import SummaryEntry

TOP_N = 10


@dataclass(frozen=True)
class RankedModel:
    model_id: str
    name: str
    rank: int
    bt_score: float
    bootstrap_q025: float
    bootstrap_q975: float
    vote_count: int


@dataclass(frozen=True)
class Movements:
    top: list[SummaryEntry]
    new_models: list[str]
    """Names of the models ranked now and not in the previous snapshot, by current rank."""
    dropped_models: list[str]
    """Names of the models in the previous snapshot and not ranked now, by previous rank."""


def movements(
    current: Sequence[RankedModel],
    previous: Sequence[RankedModel] | None,
    top_n: int = TOP_N,
) -> Movements:
    """Compare ``current`` with ``previous`` (None: there is no previous public snapshot, so
    nothing is new or dropped and no previous rank is known)."""
    ordered = sorted(current, key=lambda m: (m.rank, -m.bt_score, m.name, m.model_id))
    before: Mapping[str, RankedModel] = {m.model_id: m for m in previous or ()}
    top = [
        SummaryEntry(
            model=m.name,
            rank=m.rank,
            bt_score=m.bt_score,
            bootstrap_q025=m.bootstrap_q025,
            bootstrap_q975=m.bootstrap_q975,
            vote_count=m.vote_count,
            previous_rank=before[m.model_id].rank if m.model_id in before else None,
        )
        for m in ordered[:top_n]
    ]
    if previous is None:
        return Movements(top=top, new_models=[], dropped_models=[])
    now = {m.model_id for m in current}
    gone = sorted(
        (m for m in previous if m.model_id not in now), key=lambda m: (m.rank, m.name, m.model_id)
    )
    return Movements(
        top=top,
        new_models=[m.name for m in ordered if m.model_id not in before],
        dropped_models=[m.name for m in gone],
    )


def rank_change(rank: int, previous_rank: int | None) -> str:
    """A rank change as people read it: ↑2, ↓1, = (unchanged) or new."""
    if previous_rank is None:
        return "new"
    change = previous_rank - rank
    return f"↑{change}" if change > 0 else f"↓{-change}" if change < 0 else "="
