"""End to end with style control: the deployed definition, run locally over a real PostgreSQL,
with `overall` mapped to a style-controlled row of its own (the local stack's context,
``local.style_boards``).

What users see is checked against what it should be, worked out here: the style-controlled
snapshot's entries are the engine's ``rank_with_style`` on the run's votes.parquet read back with
pyarrow (the votes whose 8 style counts are all there); the Slack line's shifts are the plain and
style-controlled snapshots' ranks compared by hand; an unmapped leaderboard reports only; the same
execution run again writes nothing new.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from cli.report import published_results
from common.ranking import StyleFeatures, Votes, rank_with_style
from common.scores import as_decimal
from common.votes import STYLE_COLUMNS, has_style_columns
from local.style_boards import LOCAL_STYLE_CONTROL, create_rows
from tests.e2e_fixtures import (
    BOOTSTRAP,
    EntryView,
    deployed_settings,
    e2e_arena,
    e2e_db,
    e2e_template,
    execute,
    pipeline,
    slack_sections,
    snapshots_in,
)

__all__ = ["e2e_arena", "e2e_db", "e2e_template"]

TARGET = LOCAL_STYLE_CONTROL["overall"]


def _run_file(state_dir: Path, slug: str, name: str) -> Path:
    (found,) = (state_dir / "s3").glob(f"*/runs/*/{slug}/{name}")
    return found


def expected_style_entries(votes_file: Path, min_evals: int) -> list[EntryView]:
    """The style-controlled entries of a run's votes file, worked out independently."""
    rows = pq.ParquetFile(votes_file).read().to_pydict()
    keep = [
        k for k in range(len(rows["outcome"])) if all(rows[c][k] is not None for c in STYLE_COLUMNS)
    ]
    assert 0 < len(keep) < len(rows["outcome"]), "the arena should miss a few answers"
    votes = Votes.from_labels(
        [rows["model1_id"][k] for k in keep],
        [rows["model2_id"][k] for k in keep],
        [rows["outcome"][k] for k in keep],
    )
    counts = np.array([[rows[c][k] for c in STYLE_COLUMNS] for k in keep], dtype=np.int64)
    ranking = rank_with_style(
        votes, StyleFeatures(counts[:, :4], counts[:, 4:]), bootstrap=BOOTSTRAP, seed=0,
        min_evals=min_evals,
    ).ranking  # fmt: skip
    return sorted(
        (
            EntryView(
                e.model,
                "",
                e.rank,
                as_decimal(e.bt_score),
                as_decimal(e.bootstrap_q025),
                as_decimal(e.bootstrap_q975),
                e.vote_count,
            )
            for e in ranking.entries
            if e.rank is not None
            and e.bt_score is not None
            and e.bootstrap_q025 is not None
            and e.bootstrap_q975 is not None
        ),
        key=lambda e: (e.rank, e.model_id),
    )


def test_a_run_publishes_the_style_controlled_overall_beside_the_plain_one(
    e2e_template: dict[str, Any], e2e_db: str, tmp_path: Path
) -> None:
    assert create_rows(e2e_db) == [TARGET]
    with pipeline(e2e_template, e2e_db, tmp_path) as running:
        record = execute(running, "e2e-style-1")
        assert running.slack is not None
        (message,) = running.slack.received
    assert record.status == "SUCCEEDED", record.error

    found = snapshots_in(e2e_db)
    results = {r["slug"]: r for r in published_results(record.history)[0]}
    line = next(x for x in slack_sections(message)["overall"].splitlines() if "Style control" in x)
    assert has_style_columns(_run_file(tmp_path, "overall", "votes.parquet"))
    (plain,) = found["overall"]
    (styled,) = found[TARGET]
    assert (styled.identifier, styled.visibility) == (plain.identifier, "public")
    min_evals = deployed_settings(e2e_template).min_evals
    expected = expected_style_entries(_run_file(tmp_path, "overall", "votes.parquet"), min_evals)
    assert [(e.model_id, e.rank, e.bt_score, e.bootstrap_q025, e.bootstrap_q975, e.vote_count)
            for e in styled.entries] == [
        (e.model_id, e.rank, e.bt_score, e.bootstrap_q025, e.bootstrap_q975, e.vote_count)
        for e in expected
    ]  # fmt: skip

    overall = results["overall"]
    assert overall["style_board"]["slug"] == TARGET
    assert overall["style_board"]["created"] is True
    document = json.loads(_run_file(tmp_path, "overall", "style-entries.json").read_bytes())
    assert overall["style"]["votes_used"] == document["vote_count"] == styled_votes(styled)
    assert all(
        "style_board" not in r and "style" in r for s, r in results.items() if s != "overall"
    )

    # The Slack line: the length effect, the biggest shifts (by hand from the two snapshots).
    length = overall["style"]["effects"][0]
    assert line.startswith(f"Style control: length {length['elo']:+.1f} Elo per SD")
    assert length["elo"] > 0, "the simulated voters prefer longer answers"
    before = {e.model: e.rank for e in plain.entries}
    moves = sorted(
        ((before[e.model] - e.rank, e.rank, e.model, before[e.model]) for e in styled.entries
         if e.model in before and before[e.model] != e.rank),
        key=lambda m: (-abs(m[0]), m[1]),
    )  # fmt: skip
    shown = re.findall(r"\*(SimModel \d{3})\* (\d+) → (\d+)", line)
    assert shown == [(model, str(was), str(now)) for _, now, model, was in moves[:3]]
    assert line.endswith(f"published as `{TARGET}`")
    assert "reported only" in slack_sections(message)["genetics"]

    # The same run again (a retry of the whole execution) writes nothing new.
    with pipeline(e2e_template, e2e_db, tmp_path) as running:
        again = execute(running, "e2e-style-1")
    assert again.status == "SUCCEEDED", again.error
    assert snapshots_in(e2e_db) == found
    rerun = {r["slug"]: r for r in published_results(again.history)[0]}["overall"]
    assert rerun["style_board"] == {**overall["style_board"], "created": False}


def styled_votes(snapshot: Any) -> int:
    """The votes of a style-controlled snapshot, from its description."""
    match = re.match(r"Leaderboard snapshot with (\d+) evaluations", snapshot.description)
    assert match is not None
    return int(match[1])
