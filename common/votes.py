"""Reading battle votes from Parquet into the integer codes the ranking engine takes.

Thin I/O: one ``read_votes`` for a file (path or binary file object) and ``votes_from_table`` for an
Arrow table already in memory; ``read_votes_with_style`` also reads the answers' style counts
(``STYLE_COLUMNS``, written by the fetch stage and the simulator) for style control. Model
columns are read as dictionaries straight from Parquet's dictionary pages (no string per row is materialized), dictionaries are unified across row groups
and across the two model columns, and outcomes are mapped through their (three-entry) dictionary,
so the cost is a few vectorized passes over integer arrays. The pipeline's fetch stage writes
``model1_id``, ``model2_id``, ``outcome``; the CLI reads ``model_a``, ``model_b``, ``outcome``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import pyarrow as pa

from common.answer_style import STYLE_COLUMNS
from common.errors import InvalidInput
from common.ranking import OUTCOMES, Votes

if TYPE_CHECKING:
    from common.ranking.style import StyleFeatures

__all__ = [
    "OUTCOMES",
    "STYLE_COLUMNS",
    "Votes",
    "VotesWithStyle",
    "has_style_columns",
    "read_votes",
    "read_votes_with_style",
    "votes_from_table",
]


Source = str | os.PathLike[str] | BinaryIO


def _read(source: Source, columns: list[str]) -> pa.Table:
    import pyarrow.parquet as pq

    name = os.fspath(source) if isinstance(source, str | os.PathLike) else "input"
    try:
        present = pq.ParquetFile(source).schema_arrow.names
        missing = [c for c in columns if c not in present]
        if missing:
            raise InvalidInput(f"{name}: missing column(s) {', '.join(missing)}")
        twice = [c for c in columns if present.count(c) > 1]
        if twice:
            raise InvalidInput(f"{name}: column(s) {', '.join(twice)} appear more than once")
        if not isinstance(source, str | os.PathLike):
            source.seek(0)
        # Dictionary pages come back as dictionaries: no Python string per row.
        return pq.ParquetFile(source, read_dictionary=columns[:3]).read(columns=columns)
    except FileNotFoundError:
        raise InvalidInput(f"{name}: no such file") from None
    except IsADirectoryError:
        raise InvalidInput(f"{name}: is a directory, not a Parquet file") from None
    except (pa.ArrowException, OSError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidInput(f"{name}: not a readable Parquet file ({first_line})") from None


@dataclass(frozen=True)
class VotesWithStyle:
    """Every vote (for the plain ranking), which of them have both answers' style counts, and
    those counts (one row per vote with style, in vote order) for the style-controlled fit."""

    votes: Votes
    has_style: np.ndarray
    """Boolean per vote of ``votes``."""
    features: StyleFeatures
    """Rows: the votes where ``has_style``; columns ``STYLE_FEATURES``."""

    @property
    def left_out(self) -> int:
        """Votes without style counts (a missing answer): out of the style-controlled fit."""
        return int(self.votes.n_votes - self.has_style.sum())

    def styled_votes(self) -> Votes:
        """The votes with style counts, models renumbered to those that appear in them (the
        ``votes`` argument of ``rank_with_style`` next to ``features``)."""
        keep = self.has_style
        a, b = self.votes.model_a[keep], self.votes.model_b[keep]
        used = np.zeros(len(self.votes.models), dtype=bool)
        used[a] = True
        used[b] = True
        renumber = (np.cumsum(used, dtype=np.int32) - 1).astype(np.int32)
        models = tuple(m for m, u in zip(self.votes.models, used, strict=True) if u)
        return Votes(
            models=models,
            model_a=renumber[a],
            model_b=renumber[b],
            outcome=self.votes.outcome[keep],
        )


def read_votes_with_style(
    source: Source,
    *,
    model_a: str = "model_a",
    model_b: str = "model_b",
    outcome: str = "outcome",
) -> VotesWithStyle:
    """``read_votes`` plus the 8 style columns; a vote has style when all 8 are set (the fetch
    stage writes all or none). Bad files, missing columns or negative counts raise
    ``InvalidInput``."""
    from common.ranking.style import STYLE_FEATURES, StyleFeatures

    table = _read(source, [model_a, model_b, outcome, *STYLE_COLUMNS])
    votes = votes_from_table(table, model_a=model_a, model_b=model_b, outcome=outcome)
    counts = np.zeros((table.num_rows, len(STYLE_COLUMNS)), dtype=np.int64)
    has = np.ones(table.num_rows, dtype=bool)
    for j, column in enumerate(STYLE_COLUMNS):
        values = table.column(column)
        if not pa.types.is_integer(values.type):
            raise InvalidInput(f"votes: column {column} must hold integers, not {values.type}")
        # A column with nulls comes out as floats with NaN for them (exact: the counts are
        # int32); not is_valid/fill_null, which would load pyarrow.compute into the rank stage.
        raw = np.asarray(values.to_numpy())
        if raw.dtype.kind == "f":
            valid = ~np.isnan(raw)
            has &= valid
            raw = np.where(valid, raw, 0.0)
        counts[:, j] = raw.astype(np.int64)
    if (counts < 0).any():
        raise InvalidInput("votes: a style column has a negative count")
    half = len(STYLE_FEATURES)
    features = StyleFeatures(a=counts[has, :half], b=counts[has, half:], names=STYLE_FEATURES)
    return VotesWithStyle(votes=votes, has_style=has, features=features)


def has_style_columns(source: Source) -> bool:
    """Whether a votes file has any of the style columns (a file from before style control has
    none; ``read_votes_with_style`` then refuses it, naming them)."""
    import pyarrow.parquet as pq

    try:
        present = set(pq.ParquetFile(source).schema_arrow.names)
    except (pa.ArrowException, OSError):
        return False  # read_votes names what is wrong with the file
    finally:
        if not isinstance(source, str | os.PathLike):
            source.seek(0)
    return bool(present & set(STYLE_COLUMNS))


def read_votes(
    source: Source,
    *,
    model_a: str = "model_a",
    model_b: str = "model_b",
    outcome: str = "outcome",
) -> Votes:
    """Read the three vote columns of a Parquet file; bad files raise ``InvalidInput``."""
    table = _read(source, [model_a, model_b, outcome])
    return votes_from_table(table, model_a=model_a, model_b=model_b, outcome=outcome)


def votes_from_table(
    table: pa.Table,
    *,
    model_a: str = "model_a",
    model_b: str = "model_b",
    outcome: str = "outcome",
) -> Votes:
    """Encode an Arrow table's vote columns (strings or dictionaries of strings)."""
    for column in (model_a, model_b, outcome):
        if column not in table.column_names:
            raise InvalidInput(f"votes: missing column {column}")
        if table.column(column).null_count:
            raise InvalidInput(f"votes: column {column} has empty (null) values")
    a = _as_dictionary(table.column(model_a), model_a)
    b = _as_dictionary(table.column(model_b), model_b)
    # One dictionary for both model columns, so a code means the same model on either side.
    both = pa.chunked_array(a.chunks + b.chunks, type=a.type).unify_dictionaries()
    names = both.chunk(0).dictionary if both.num_chunks else pa.array([], pa.string())
    codes = _indices(both)
    n = table.num_rows
    used = np.zeros(len(names), dtype=bool)
    used[codes] = True
    # Parquet dictionaries may hold values no row uses: renumber to the models that voted.
    renumber = np.cumsum(used, dtype=np.int32) - 1
    codes = renumber[codes]
    models = tuple(str(x) for x in np.asarray(names.to_pylist(), dtype=object)[used])
    return Votes(
        models=models,
        model_a=codes[:n],
        model_b=codes[n:],
        outcome=_outcome_codes(table.column(outcome), outcome),
    )


def _as_dictionary(column: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    value_type = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    if not (pa.types.is_string(value_type) or pa.types.is_large_string(value_type)):
        raise InvalidInput(f"votes: column {name} must hold strings, not {value_type}")
    if not pa.types.is_dictionary(column.type):
        column = column.dictionary_encode()
    elif column.type != pa.dictionary(pa.int32(), value_type):
        column = column.cast(pa.dictionary(pa.int32(), value_type))
    if pa.types.is_large_string(value_type):
        column = column.cast(pa.dictionary(pa.int32(), pa.string()))
    return column.unify_dictionaries()


def _indices(column: pa.ChunkedArray) -> np.ndarray:
    if column.num_chunks == 0:
        return np.zeros(0, dtype=np.int32)
    return np.concatenate(
        [chunk.indices.to_numpy(zero_copy_only=False) for chunk in column.chunks]
    ).astype(np.int32, copy=False)


def _outcome_codes(column: pa.ChunkedArray, name: str) -> np.ndarray:
    encoded = _as_dictionary(column, name)
    if encoded.num_chunks == 0:
        return np.zeros(0, dtype=np.int8)
    labels = encoded.chunk(0).dictionary.to_pylist()
    indices = _indices(encoded)
    used = np.zeros(len(labels), dtype=bool)
    used[indices] = True
    unknown = [label for label, u in zip(labels, used, strict=True) if u and label not in OUTCOMES]
    if unknown:
        raise InvalidInput(
            f"votes: unknown outcome {unknown[0]!r} in column {name}, expected one of "
            f"{', '.join(OUTCOMES)}"
        )
    lookup = np.array([OUTCOMES.index(x) if x in OUTCOMES else -1 for x in labels], dtype=np.int8)
    return lookup[indices]
