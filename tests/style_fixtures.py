"""Votes with style counts for the stage tests: fetch's votes.parquet replaced by our own.

``styled_votes`` draws votes over a fetched leaderboard's models with ``bench.style.style_arena``
(strong models answer tersely, voters prefer the longer answer: the style-controlled ranks differ
from the plain ones) and writes them with fetch's columns and the 8 style columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from bench.style import style_arena
from common import storage
from common.votes import STYLE_COLUMNS

OUTCOMES = np.array(["model1", "model2", "tie"])


def styled_votes(
    s3: Any, event: dict[str, Any], *, votes: int = 8000, missing_every: int = 0, seed: int = 5
) -> pa.Table:
    """Replace the leaderboard's votes.parquet with simulated votes carrying style counts (null
    for every ``missing_every``-th vote); returns the table written."""
    models = storage.get_parquet(storage.parse_s3_uri(event["leaderboard"]["models_uri"]))
    ids = np.array(models.column("id").to_pylist())
    arena = style_arena(
        len(ids), votes, seed=seed, length_effect=1.5, markdown_effect=0.0,
        verbosity_by_strength=-0.8,
    )  # fmt: skip
    v = arena.votes  # models model-000, model-001, ...: code i is the i-th fetched model
    missing = (np.arange(votes) % missing_every == 0) if missing_every else np.zeros(votes, bool)
    columns: dict[str, Any] = {
        "model1_id": ids[v.model_a],
        "model2_id": ids[v.model_b],
        "outcome": OUTCOMES[v.outcome],
    }
    for j, column in enumerate(STYLE_COLUMNS):
        side = arena.features.a if column.startswith("model1_") else arena.features.b
        columns[column] = pa.array(side[:, j % 4], pa.int32(), mask=missing)
    table = pa.table(columns)
    put_votes(s3, event, table)
    return table


def votes_before_style_control(s3: Any, event: dict[str, Any]) -> None:
    """Rewrite the leaderboard's fetched votes.parquet without the style columns: a votes file
    written before fetch counted the answers' style (an old run, redriven)."""
    uri = storage.parse_s3_uri(event["leaderboard"]["votes_uri"])
    table = storage.get_parquet(uri)
    assert set(STYLE_COLUMNS) <= set(table.column_names), "fetch wrote no style columns"
    put_votes(s3, event, table.drop_columns(list(STYLE_COLUMNS)))


def put_votes(s3: Any, event: dict[str, Any], table: pa.Table) -> None:
    """Write ``table`` as the leaderboard's votes.parquet."""
    bucket, _, key = event["leaderboard"]["votes_uri"][len("s3://") :].partition("/")
    s3.put_object(Bucket=bucket, Key=key, Body=storage.parquet_bytes(table))
