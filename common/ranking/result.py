"""What a ranking returns: one line per model, ranked or with the reason it is not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from common.scores import round6

CIMethod = Literal["bootstrap", "sandwich"]


@dataclass(frozen=True)
class ModelRanking:
    """One model's line. ``rank is None`` exactly when ``reason`` says why it is not ranked; the
    scores are None only when the model could not be fitted (a min_evals drop keeps them)."""

    model: str
    bt_score: float | None
    bootstrap_q025: float | None
    bootstrap_q975: float | None
    rank: int | None
    vote_count: int
    reason: str | None = None


@dataclass(frozen=True)
class Ranking:
    """A leaderboard: ranked entries by rank, then the unranked ones by name."""

    entries: tuple[ModelRanking, ...]
    n_votes: int
    ci_method: CIMethod
    bootstrap: int
    """Replicates drawn (0 with the sandwich CI)."""
    seed: int
    separable_replicates: int
    """Replicates without an MLE, fitted with the RIDGE prior (see the module docstring)."""

    @property
    def ranked(self) -> tuple[ModelRanking, ...]:
        return tuple(e for e in self.entries if e.rank is not None)

    @property
    def unranked(self) -> tuple[ModelRanking, ...]:
        return tuple(e for e in self.entries if e.rank is None)

    def to_records(self) -> list[dict[str, Any]]:
        """JSON-ready objects; numbers rounded to DECIMAL(10,6); ``reason`` only when unranked."""
        records: list[dict[str, Any]] = []
        for e in self.entries:
            record: dict[str, Any] = {
                "model": e.model,
                "bt_score": _optional6(e.bt_score),
                "bootstrap_q025": _optional6(e.bootstrap_q025),
                "bootstrap_q975": _optional6(e.bootstrap_q975),
                "rank": e.rank,
                "vote_count": e.vote_count,
            }
            if e.reason is not None:
                record["reason"] = e.reason
            records.append(record)
        return records

    def to_table(self) -> str:
        """A fixed-width text table for people; unranked models last, with their reason."""
        ci = "95% CI" if self.ci_method == "sandwich" else f"95% CI ({self.bootstrap} bootstrap)"
        lines = [f"{'rank':>4}  {'model':<32} {'score':>9}  {ci:<24} {'votes':>8}  note"]
        for e in self.entries:
            rank = "-" if e.rank is None else str(e.rank)
            score = "-" if e.bt_score is None else f"{e.bt_score:9.2f}"
            interval = (
                "-"
                if e.bootstrap_q025 is None or e.bootstrap_q975 is None
                else f"[{e.bootstrap_q025:.2f}, {e.bootstrap_q975:.2f}]"
            )
            lines.append(
                f"{rank:>4}  {e.model:<32} {score:>9}  {interval:<24} {e.vote_count:>8}  "
                f"{e.reason or ''}".rstrip()
            )
        lines.append(
            f"{len(self.ranked)} ranked, {len(self.unranked)} not ranked, {self.n_votes} votes"
        )
        return "\n".join(lines)


def _optional6(value: float | None) -> float | None:
    return None if value is None else round6(value)
