"""Reading votes from Parquet: layouts, dictionaries, and every way a file can be wrong."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.errors import InvalidInput
from common.ranking import OUTCOMES
from common.votes import read_votes, votes_from_table

ROWS = {
    "model_a": ["gpt", "claude", "gemini", "gpt", "llama"],
    "model_b": ["claude", "gemini", "gpt", "llama", "claude"],
    "outcome": ["model1", "tie", "model2", "model1", "model2"],
}


def decode(votes) -> list[tuple[str, str, str]]:
    names = np.array(votes.models)
    return list(
        zip(
            names[votes.model_a].tolist(),
            names[votes.model_b].tolist(),
            [OUTCOMES[o] for o in votes.outcome],
            strict=True,
        )
    )


def expected(rows: dict[str, list[str]]) -> list[tuple[str, str, str]]:
    return list(zip(rows["model_a"], rows["model_b"], rows["outcome"], strict=True))


def test_plain_string_columns(tmp_path: Path) -> None:
    path = tmp_path / "v.parquet"
    pq.write_table(pa.table(ROWS), path, use_dictionary=False)
    votes = read_votes(path)
    assert decode(votes) == expected(ROWS)
    assert sorted(votes.models) == ["claude", "gemini", "gpt", "llama"]
    assert votes.model_a.dtype == np.int32


def test_fetch_layout_with_row_groups_of_different_dictionaries(tmp_path: Path) -> None:
    ids = ["u1", "u2", "u3", "u4", "unused"]
    tables = []
    for a, b, o in [([0, 1], [1, 2], [0, 2]), ([3, 2, 0], [0, 3, 1], [1, 1, 2])]:
        # Each row group carries its own dictionary order.
        order = np.random.default_rng(len(a)).permutation(len(ids))
        dictionary = pa.array([ids[i] for i in order])
        where = np.argsort(order)
        tables.append(
            pa.table(
                {
                    "model1_id": pa.DictionaryArray.from_arrays(pa.array(where[a]), dictionary),
                    "model2_id": pa.DictionaryArray.from_arrays(pa.array(where[b]), dictionary),
                    "outcome": pa.DictionaryArray.from_arrays(
                        pa.array(np.array(o, dtype=np.int32)), pa.array(list(OUTCOMES))
                    ),
                    "evaluation_id": pa.array(np.arange(len(a))),
                }
            )
        )
    path = tmp_path / "fetch.parquet"
    with pq.ParquetWriter(path, tables[0].schema) as writer:
        for table in tables:
            writer.write_table(table)
    votes = read_votes(path, model_a="model1_id", model_b="model2_id")
    assert decode(votes) == [
        ("u1", "u2", "model1"),
        ("u2", "u3", "tie"),
        ("u4", "u1", "model2"),
        ("u3", "u4", "model2"),
        ("u1", "u2", "tie"),
    ]
    assert "unused" not in votes.models


def test_file_object_and_in_memory_table() -> None:
    buffer = io.BytesIO()
    pq.write_table(pa.table(ROWS), buffer)
    buffer.seek(0)
    assert decode(read_votes(buffer)) == expected(ROWS)
    large = pa.table({k: pa.array(v, pa.large_string()) for k, v in ROWS.items()})
    assert decode(votes_from_table(large)) == expected(ROWS)


def test_empty_file_gives_no_votes(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    pq.write_table(pa.table({k: pa.array([], pa.string()) for k in ROWS}), path)
    votes = read_votes(path)
    assert votes.n_votes == 0 and votes.models == ()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (pa.table({"model_a": ["a"], "model_b": ["b"]}), "missing column"),
        (pa.table({**ROWS, "outcome": ["model1", "draw", "tie", "tie", "tie"]}), "'draw'"),
        (pa.table({**ROWS, "model_a": ["a", None, "c", "d", "e"]}), "null"),
        (pa.table({**ROWS, "model_a": [1, 2, 3, 4, 5]}), "strings"),
        (
            pa.table([*pa.table(ROWS).columns, pa.array(list("abcde"))], [*ROWS, "model_a"]),
            r"column\(s\) model_a appear more than once",
        ),
    ],
)
def test_bad_tables(tmp_path: Path, table: pa.Table, message: str) -> None:
    path = tmp_path / "bad.parquet"
    pq.write_table(table, path)
    with pytest.raises(InvalidInput, match=message):
        read_votes(path)


def test_not_a_parquet_file_and_missing_file(tmp_path: Path) -> None:
    text = tmp_path / "votes.csv"
    text.write_text("model_a,model_b,outcome\na,b,tie\n")
    with pytest.raises(InvalidInput, match="not a readable Parquet file"):
        read_votes(text)
    with pytest.raises(InvalidInput, match="no such file"):
        read_votes(tmp_path / "nope.parquet")
    with pytest.raises(InvalidInput, match="directory"):
        read_votes(tmp_path)


def test_votes_with_style_mask_the_votes_that_miss_an_answer(tmp_path: Path) -> None:
    from common.answer_style import STYLE_COLUMNS
    from common.votes import read_votes_with_style

    rows = [("a", "b", "model1"), ("b", "c", "tie"), ("c", "a", "model2"), ("d", "a", "model1")]
    style = [[10, 1, 2, 0, 20, 0, 0, 3], None, [5, 0, 0, 0, 5, 0, 1, 0], [1, 1, 1, 1, 2, 2, 2, 2]]
    table = pa.table(
        {
            "model_a": [r[0] for r in rows],
            "model_b": [r[1] for r in rows],
            "outcome": [r[2] for r in rows],
            **{
                name: pa.array([s[j] if s else None for s in style], pa.int32())
                for j, name in enumerate(STYLE_COLUMNS)
            },
        }
    )
    path = tmp_path / "styled.parquet"
    pq.write_table(table, path)
    read = read_votes_with_style(path)
    assert read.votes.n_votes == 4 and read.has_style.tolist() == [True, False, True, True]
    assert read.left_out == 1
    assert read.features.a.tolist() == [[10, 1, 2, 0], [5, 0, 0, 0], [1, 1, 1, 1]]
    assert read.features.b.tolist() == [[20, 0, 0, 3], [5, 0, 1, 0], [2, 2, 2, 2]]
    styled = read.styled_votes()
    names = styled.models
    assert [(names[a], names[b]) for a, b in zip(styled.model_a, styled.model_b, strict=True)] == [
        ("a", "b"), ("c", "a"), ("d", "a"),
    ]  # fmt: skip
    assert styled.outcome.tolist() == [0, 1, 0]
    pq.write_table(table.drop_columns(["model2_bold"]), path)
    with pytest.raises(InvalidInput, match=r"missing column.*model2_bold"):
        read_votes_with_style(path)
    negative = table.set_column(3, STYLE_COLUMNS[0], pa.array([-1, None, 1, 1], pa.int32()))
    pq.write_table(negative, path)
    with pytest.raises(InvalidInput, match="negative"):
        read_votes_with_style(path)


def test_style_columns_are_detected_without_reading_the_votes(tmp_path: Path) -> None:
    from common.answer_style import STYLE_COLUMNS
    from common.votes import has_style_columns, read_votes_with_style

    path = tmp_path / "plain.parquet"
    pq.write_table(pa.table(ROWS), path)
    assert not has_style_columns(path)
    assert not has_style_columns(tmp_path / "absent.parquet")
    styled = pa.table(ROWS)
    for column in STYLE_COLUMNS:
        styled = styled.append_column(column, pa.array([3, None, 0, 1, 2], pa.int32()))
    buffer = io.BytesIO()
    pq.write_table(styled, buffer)
    buffer.seek(0)
    assert has_style_columns(buffer)
    read = read_votes_with_style(buffer)  # the check leaves a file object at its start
    assert read.has_style.tolist() == [True, False, True, True, True]
    assert read.left_out == 1
