"""The rank stage's style-controlled ranking of a leaderboard, and its artifact.

When a leaderboard's votes carry the answers' style counts, ``rank_style`` ranks the votes that
have them with ``common.ranking.rank_with_style`` (the run's bootstrap and seed, the plain
ranking's min_evals) and writes ``{prefix}{slug}/style-entries.json`` next to entries.json: an
entries document as the publish stage reads it (``common.rank.parse_entries``), plus the style
coefficients, the votes the fit used and left out, and every model's plain and style-controlled
rank. Canonical JSON with rounded numbers, so a rerun writes the same bytes. The numerics are
imported by the functions that use them: the publish stage, which reads the document back
(``read_style_entries``), loads neither numpy nor pyarrow.

The state machine carries only a ``StyleSummary``: where the document is, each feature's effect in
Elo per SD, the SHIFTS_REPORTED biggest rank shifts and the vote counts. A leaderboard without a
style-controlled ranking says why in ``reason``: votes from before style control (no style
columns: ranked plain only), no vote with both answers, features that separate the outcomes (no
maximum-likelihood estimate, only on tiny data), or nobody ranked. None of these fails the run or
the plain leaderboard.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypedDict

from common import storage
from common.contracts import RankEvent, StyleEffect, StyleShift, StyleSummary
from common.errors import ArtifactCorrupt, NotEnoughData
from common.rank import (
    EntriesDocument,
    RankInputs,
    build_entries,
    nothing_ranked_reason,
    parse_entries,
)
from common.scores import round6
from common.storage import S3Uri, parse_s3_uri

if TYPE_CHECKING:
    from common.ranking import Ranking, StyleRanking

STYLE_ENTRIES_OBJECT = "style-entries.json"
SHIFTS_REPORTED = 3
"""Rank shifts a summary carries (the biggest, either way; Slack shows them): the state machine
holds every leaderboard's summary at once (its 256 KB limit). The document holds them all."""
NO_STYLE_COLUMNS = "the votes carry no style counts (a votes file from before style control)"
NO_STYLED_VOTES = "no vote has both answers' style counts"


class ShiftRecord(TypedDict):
    model_id: str
    plain_rank: int | None
    style_rank: int | None


class StyleEntriesDocument(EntriesDocument):
    """The entries of the style-controlled ranking (``vote_count``: the votes it used) and
    what it learned about style."""

    control: Literal["style"]
    style: list[dict[str, Any]]
    """One record per feature: ``StyleRanking.to_records()["style"]``."""
    votes_used: int
    votes_left_out: int
    votes_without_style: int
    shifts: list[ShiftRecord]


def style_entries_uri(prefix: str, slug: str) -> S3Uri:
    return parse_s3_uri(prefix, "run.artifacts_prefix").child(slug, STYLE_ENTRIES_OBJECT)


def _no_ranking(reason: str, votes: int, without: int) -> StyleSummary:
    return StyleSummary(
        entries_uri=None,
        reason=reason,
        ranked_count=0,
        votes_used=0,
        votes_left_out=votes,
        votes_without_style=without,
        effects=[],
        shifts=[],
    )


def rank_style(
    event: RankEvent, inputs: RankInputs, plain: Ranking, *, min_evals: int,
    threads: int | None = None,
) -> StyleSummary:  # fmt: skip
    """Rank the leaderboard's votes with style held equal (the bootstrap on ``threads`` threads,
    None: one per CPU), write the document, summarize it against ``plain`` (the same votes'
    plain ranking); see the module docstring."""
    from common.ranking import rank_with_style
    from common.ranking.shifts import biggest_shifts, rank_shifts

    run, board = event["run"], event["leaderboard"]
    votes = inputs.votes
    if inputs.style is None:
        return _no_ranking(NO_STYLE_COLUMNS, votes.n_votes, votes.n_votes)
    without = inputs.style.left_out
    styled_votes = inputs.style.styled_votes()
    if styled_votes.n_votes == 0:
        return _no_ranking(NO_STYLED_VOTES, votes.n_votes, without)
    try:
        styled = rank_with_style(
            styled_votes, inputs.style.features, bootstrap=run["bootstrap"], seed=run["seed"],
            min_evals=min_evals, workers=threads,
        )  # fmt: skip
    except NotEnoughData as exc:
        return _no_ranking(str(exc), votes.n_votes, without)
    document = style_document(
        styled, plain, inputs,
        leaderboard=board["slug"], snapshot_identifier=run["snapshot_identifier"],
        min_evals=min_evals, votes_without_style=without,
    )  # fmt: skip
    target = style_entries_uri(run["artifacts_prefix"], board["slug"])
    storage.put_json(target, document)
    names = dict(
        zip(
            inputs.models.column("id").to_pylist(),
            inputs.models.column("name").to_pylist(),
            strict=True,
        )
    )
    return StyleSummary(
        entries_uri=str(target),
        reason=nothing_ranked_reason(styled.ranking, min_evals=min_evals),
        ranked_count=len(document["entries"]),
        votes_used=styled.votes_used,
        votes_left_out=document["votes_left_out"],
        votes_without_style=without,
        effects=[
            StyleEffect(
                feature=c.feature,
                elo=_rounded(c.elo),
                elo_q025=_rounded(c.elo_q025),
                elo_q975=_rounded(c.elo_q975),
            )
            for c in styled.coefficients
        ],
        shifts=[
            StyleShift(
                model=names.get(s.model) or s.model,
                plain_rank=s.plain_rank or 0,
                style_rank=s.style_rank or 0,
            )
            for s in biggest_shifts(rank_shifts(plain, styled.ranking), SHIFTS_REPORTED)
        ],
    )


def style_document(
    styled: StyleRanking,
    plain: Ranking,
    inputs: RankInputs,
    *,
    leaderboard: str,
    snapshot_identifier: str,
    min_evals: int,
    votes_without_style: int,
) -> StyleEntriesDocument:
    """The style-controlled entries document (pure)."""
    from common.ranking.shifts import rank_shifts

    entries: EntriesDocument = build_entries(
        styled.ranking,
        inputs.models,
        leaderboard=leaderboard,
        snapshot_identifier=snapshot_identifier,
        min_evals=min_evals,
    )
    return StyleEntriesDocument(
        **entries,
        control="style",
        style=styled.to_records()["style"],
        votes_used=styled.votes_used,
        votes_left_out=styled.votes_left_out + votes_without_style,
        votes_without_style=votes_without_style,
        shifts=[
            ShiftRecord(model_id=s.model, plain_rank=s.plain_rank, style_rank=s.style_rank)
            for s in rank_shifts(plain, styled.ranking)
        ],
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round6(value)


# --- reading it back (publish) --------------------------------------------------------------------
def read_style_entries(
    summary: StyleSummary, *, leaderboard: str, snapshot_identifier: str
) -> EntriesDocument | None:
    """The style-controlled entries a summary points to, validated as ``parse_entries`` does and
    checked to be the style-controlled document; None when the summary has no ranking."""
    if summary["reason"] is not None or summary["entries_uri"] is None:
        return None
    uri = parse_s3_uri(summary["entries_uri"], "style.entries_uri")
    raw = storage.get_json(uri)
    if not isinstance(raw, dict) or raw.get("control") != "style":
        raise ArtifactCorrupt(f"{uri}: not a style-controlled entries document")
    return parse_entries(raw, uri, leaderboard=leaderboard, snapshot_identifier=snapshot_identifier)
