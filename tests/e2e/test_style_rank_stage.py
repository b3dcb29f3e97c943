"""The rank stage's style-controlled ranking: style-entries.json next to entries.json, byte-identical
on a rerun, its summary in the RankResult; votes without style columns rank plain only and say
so; votes with a missing answer are left out of the style fit and counted.

The votes are our own: fetch runs on the seeded arena (run context, models), then each test puts
a votes.parquet with the 8 style columns in its place, drawn by ``bench.style.style_arena`` over
the fetched models (strong models answer tersely, voters prefer the longer answer, so the
style-controlled ranks differ from the plain ones). What the documents should hold is worked out
here from that file: the engine on the votes read back with pyarrow, the shifts from the two
documents' ranks.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from common.errors import ArtifactCorrupt
from common.ranking import StyleFeatures, Votes, rank_votes, rank_with_style
from common.style_rank import NO_STYLE_COLUMNS, SHIFTS_REPORTED
from common.votes import STYLE_COLUMNS
from stages.fetch.handler import handler as fetch
from stages.rank.handler import handler as rank_stage
from tests.stage_fixtures import BOOTSTRAP, fetch_event, object_bytes, object_keys, payload
from tests.style_fixtures import put_votes, styled_votes, votes_before_style_control


@pytest.fixture
def fetched(stage_env: str, lambda_context: Any) -> dict[str, Any]:
    return payload(fetch(fetch_event(leaderboards=["overall"]), lambda_context))


def _event(fetched: dict[str, Any]) -> dict[str, Any]:
    return payload({"run": fetched["run"], "leaderboard": fetched["leaderboards"][0]})


def engine(table: pa.Table, bootstrap: int = BOOTSTRAP) -> dict[str, Any]:
    """The plain and the style-controlled ranking of the file, read back independently."""
    rows = table.to_pydict()
    votes = Votes.from_labels(rows["model1_id"], rows["model2_id"], rows["outcome"])
    has = np.array([all(rows[c][k] is not None for c in STYLE_COLUMNS) for k in range(len(table))])
    keep = np.flatnonzero(has)
    styled = Votes.from_labels(
        [rows["model1_id"][k] for k in keep],
        [rows["model2_id"][k] for k in keep],
        [rows["outcome"][k] for k in keep],
    )
    counts = np.array([[rows[c][k] for c in STYLE_COLUMNS] for k in keep], dtype=np.int64)
    return {
        "plain": rank_votes(votes, bootstrap=bootstrap, seed=0),
        "style": rank_with_style(
            styled, StyleFeatures(counts[:, :4], counts[:, 4:]), bootstrap=bootstrap, seed=0
        ),
        "missing": int((~has).sum()),
    }


def test_style_entries_are_written_next_to_the_entries_and_summarized(
    fetched: dict[str, Any], stage_aws: Any, lambda_context: Any, stage_logs: Any
) -> None:
    event = _event(fetched)
    table = styled_votes(stage_aws, event, missing_every=10)
    result = rank_stage(event, lambda_context)
    assert "entries_uri" in result
    style = result["style"]
    prefix = fetched["run"]["artifacts_prefix"]
    assert style["entries_uri"] == f"{prefix}overall/style-entries.json"
    assert style["reason"] is None
    document = json.loads(object_bytes(stage_aws, style["entries_uri"]))
    plain_document = json.loads(object_bytes(stage_aws, result["entries_uri"]))
    expected = engine(table)

    assert document["control"] == "style"
    assert (document["leaderboard"], document["snapshot_identifier"]) == (
        "overall",
        fetched["run"]["snapshot_identifier"],
    )
    assert (document["bootstrap"], document["seed"]) == (BOOTSTRAP, 0)
    assert expected["missing"] == 800 == style["votes_without_style"]
    assert document["vote_count"] == 8000 - 800 == style["votes_used"]
    assert document["votes_left_out"] == style["votes_left_out"] == 800
    ranked = [e for e in expected["style"].ranking.entries if e.rank is not None]
    assert [
        (e["model_id"], e["rank"], e["bt_score"], e["vote_count"]) for e in document["entries"]
    ] == [(e.model, e.rank, round(e.bt_score or 0, 6), e.vote_count) for e in ranked]
    assert style["ranked_count"] == len(document["entries"]) == len(ranked)
    for record, coefficient in zip(document["style"], expected["style"].coefficients, strict=True):
        assert record["feature"] == coefficient.feature
        assert record["estimate"] == round(coefficient.estimate or 0, 6)
    assert [e["feature"] for e in style["effects"]] == ["length", "headers", "lists", "bold"]
    length: dict[str, Any] = dict(style["effects"][0])
    assert length["elo"] == round(expected["style"].coefficients[0].elo or 0, 6)
    assert length["elo_q025"] < length["elo"] < length["elo_q975"]
    assert length["elo"] > 50  # voters prefer the longer answer (1.5 log-odds per unit)

    # Shifts, by hand from the two documents: plain rank minus style-controlled rank.
    plain_rank = {e["model_id"]: e["rank"] for e in plain_document["entries"]}
    style_rank = {e["model_id"]: e["rank"] for e in document["entries"]}
    assert {s["model_id"]: (s["plain_rank"], s["style_rank"]) for s in document["shifts"]} == {
        m: (plain_rank.get(m), style_rank.get(m)) for m in plain_rank | style_rank
    }
    names = {e["model_id"]: e["model_name"] for e in plain_document["entries"]}
    moved = sorted(
        ((plain_rank[m] - style_rank[m], m) for m in plain_rank if m in style_rank),
        key=lambda x: (-abs(x[0]), style_rank[x[1]]),
    )
    moved = [(shift, m) for shift, m in moved if shift][:SHIFTS_REPORTED]
    assert moved, "the simulated verbosity should move some ranks"
    assert style["shifts"] == [
        {"model": names[m], "plain_rank": plain_rank[m], "style_rank": style_rank[m]}
        for _, m in moved
    ]
    logged = next(line for line in stage_logs() if line.get("message") == "leaderboard ranked")
    assert logged["style"]["votes_without_style"] == 800
    assert logged["style"]["elo_per_sd"]["length"] == length["elo"]


def test_a_rerun_writes_byte_identical_style_entries(
    fetched: dict[str, Any], stage_aws: Any, lambda_context: Any
) -> None:
    event = _event(fetched)
    styled_votes(stage_aws, event, missing_every=7)
    first = rank_stage(event, lambda_context)
    assert "style" in first and first["style"]["entries_uri"] is not None
    written = object_bytes(stage_aws, first["style"]["entries_uri"])
    second = rank_stage(payload(event), lambda_context)
    assert second == first
    assert object_bytes(stage_aws, first["style"]["entries_uri"]) == written
    assert len(json.dumps(first["style"])) < 2000  # the state machine carries it


def test_votes_without_style_columns_rank_plain_only_and_say_so(
    fetched: dict[str, Any], stage_aws: Any, lambda_context: Any
) -> None:
    votes_before_style_control(stage_aws, _event(fetched))
    result = rank_stage(_event(fetched), lambda_context)
    assert "entries_uri" in result and result["ranked_count"] > 0
    board = fetched["leaderboards"][0]
    assert result["style"] == {
        "entries_uri": None,
        "reason": NO_STYLE_COLUMNS,
        "ranked_count": 0,
        "votes_used": 0,
        "votes_left_out": board["vote_count"],
        "votes_without_style": board["vote_count"],
        "effects": [],
        "shifts": [],
    }
    assert not any(k.endswith("style-entries.json") for k in object_keys(stage_aws))


def test_style_counts_that_separate_the_outcomes_leave_the_plain_ranking_alone(
    fetched: dict[str, Any], stage_aws: Any, lambda_context: Any
) -> None:
    event = _event(fetched)
    table = styled_votes(stage_aws, event, votes=3000)
    # Every winner wrote the longer answer: no finite style coefficient fits these votes.
    decided = table.filter(pc.not_equal(table["outcome"], "tie"))
    first_won = np.array(decided.column("outcome").to_pylist()) == "model1"
    for column in STYLE_COLUMNS:
        values = np.zeros(len(decided), dtype=np.int32)
        if column.endswith("_tokens"):
            values = np.where(first_won == column.startswith("model1_"), 900, 100)
        decided = decided.set_column(
            decided.column_names.index(column), column, pa.array(values, pa.int32())
        )
    put_votes(stage_aws, event, decided)
    result = rank_stage(event, lambda_context)
    assert "entries_uri" in result and result["ranked_count"] > 0
    assert result["style"]["entries_uri"] is None
    assert "no maximum-likelihood estimate" in (result["style"]["reason"] or "")


def test_a_votes_file_with_some_style_columns_is_corrupt(
    fetched: dict[str, Any], stage_aws: Any, lambda_context: Any
) -> None:
    event = _event(fetched)
    table = styled_votes(stage_aws, event).drop_columns(["model2_bold"])
    put_votes(stage_aws, event, table)
    with pytest.raises(ArtifactCorrupt, match="model2_bold"):
        rank_stage(event, lambda_context)
