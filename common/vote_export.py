"""The fetch stage's work: stream each leaderboard's votes out of PostgreSQL into Parquet in S3.

Votes leave the server through ``COPY (query) TO STDOUT (FORMAT binary)``. The query
(``common.filters.votes_query``) returns fixed-width rows -- the evaluation id as 36 characters of
text, the two models as int4 indices into the model catalogue, the outcome as int2 and the
timestamp -- so each batch of rows is one NumPy structured view of the bytes and becomes Arrow
columns without a Python object per row. Batches are written as Parquet row groups as they arrive,
so memory holds one batch and the compressed file, never the rows as Python values.

Files per leaderboard, under the run's artifacts prefix:
``{prefix}{slug}/votes.parquet`` (evaluation_id, model1_id, model2_id, outcome, evaluated_at;
model ids and outcome dictionary-encoded) and ``{prefix}{slug}/models.parquet`` (id, slug, name,
active of the models in those votes). Everything is read in one REPEATABLE READ, read-only
transaction, in a fixed order, so the same run writes the same bytes again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

from common import storage
from common.contracts import LeaderboardBatch, Skipped
from common.errors import LeaderboardNotFound
from common.filters import MODELS_QUERY, OUTCOME_CODES, LeaderboardFilters, votes_query
from common.storage import S3Uri

COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_HEADER_FIXED = len(COPY_SIGNATURE) + 8  # signature, flags (int32), extension length (int32)
_TRAILER = b"\xff\xff"
PG_EPOCH_US = 946_684_800_000_000
"""2000-01-01T00:00:00Z in microseconds since 1970: binary timestamptz counts from there."""

# One binary COPY row of votes_query: field count, then (length, value) per field, big-endian.
COPY_ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("id_len", ">i4"),
        ("id", "S36"),
        ("m1_len", ">i4"),
        ("model1", ">i4"),
        ("m2_len", ">i4"),
        ("model2", ">i4"),
        ("outcome_len", ">i4"),
        ("outcome", ">i2"),
        ("at_len", ">i4"),
        ("evaluated_at", ">i8"),
    ]
)
_EXPECTED = {"fields": 5, "id_len": 36, "m1_len": 4, "m2_len": 4, "outcome_len": 2, "at_len": 8}
ROWS_PER_GROUP = 1 << 18

MODEL_ID = pa.dictionary(pa.int32(), pa.string())
VOTES_SCHEMA = pa.schema(
    [
        ("evaluation_id", pa.string()),
        ("model1_id", MODEL_ID),
        ("model2_id", MODEL_ID),
        ("outcome", pa.dictionary(pa.int8(), pa.string())),
        ("evaluated_at", pa.timestamp("us", tz="UTC")),
    ]
)
MODELS_SCHEMA = pa.schema(
    [("id", pa.string()), ("slug", pa.string()), ("name", pa.string()), ("active", pa.bool_())]
)
VOTES_OBJECT = "votes.parquet"
MODELS_OBJECT = "models.parquet"


class CopyFormatError(RuntimeError):
    """The server's COPY stream does not have the layout ``votes_query`` promises (a bug)."""


@dataclass(frozen=True)
class Leaderboard:
    id: str
    slug: str
    name: str


@dataclass(frozen=True)
class ExportedVotes:
    parquet: bytes
    vote_count: int
    models_used: np.ndarray
    """Boolean mask over the catalogue's rows: the models in at least one vote."""

    @property
    def model_count(self) -> int:
        return int(self.models_used.sum())


# --- pure parts -----------------------------------------------------------------------------------
def copy_row_batches(
    chunks: Iterable[bytes | memoryview], rows_per_batch: int
) -> Iterator[np.ndarray]:
    """Cut a binary COPY stream of votes_query rows into structured arrays of whole rows."""
    buffer = bytearray()
    stream = iter(chunks)
    header: int | None = None
    batch_bytes = rows_per_batch * COPY_ROW.itemsize
    for chunk in stream:
        buffer += chunk
        if header is None:
            if len(buffer) < _HEADER_FIXED:
                continue
            if bytes(buffer[: len(COPY_SIGNATURE)]) != COPY_SIGNATURE:
                raise CopyFormatError("COPY stream does not start with the binary signature")
            header = _HEADER_FIXED + int.from_bytes(
                buffer[_HEADER_FIXED - 4 : _HEADER_FIXED], "big"
            )
        if len(buffer) < header:
            continue
        if header:
            del buffer[:header]
            header = 0
        while len(buffer) >= batch_bytes:
            yield _checked(np.frombuffer(bytes(buffer[:batch_bytes]), dtype=COPY_ROW))
            del buffer[:batch_bytes]
    if header != 0 or bytes(buffer[-2:]) != _TRAILER:
        raise CopyFormatError("COPY stream ended without its trailer")
    rest = len(buffer) - len(_TRAILER)
    if rest % COPY_ROW.itemsize:
        raise CopyFormatError("COPY stream ended inside a row")
    if rest:
        yield _checked(np.frombuffer(bytes(buffer[:rest]), dtype=COPY_ROW))


def _checked(rows: np.ndarray) -> np.ndarray:
    for name, value in _EXPECTED.items():
        if not bool((rows[name] == value).all()):
            raise CopyFormatError(f"COPY row field {name!r} is not {value}: the query changed")
    return rows


def votes_batch(rows: np.ndarray, model_ids: pa.Array) -> pa.RecordBatch:
    """Arrow columns from structured COPY rows; ``model_ids`` is the catalogue's id column."""
    n = len(rows)
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    evaluation_id = pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(rows["id"]))
    )
    outcome = pa.DictionaryArray.from_arrays(
        pa.array(rows["outcome"].astype(np.int8)), pa.array(OUTCOME_CODES)
    )
    return pa.RecordBatch.from_arrays(
        [
            evaluation_id,
            pa.DictionaryArray.from_arrays(pa.array(rows["model1"].astype(np.int32)), model_ids),
            pa.DictionaryArray.from_arrays(pa.array(rows["model2"].astype(np.int32)), model_ids),
            outcome,
            pa.array(
                rows["evaluated_at"].astype(np.int64) + PG_EPOCH_US,
                type=pa.timestamp("us", tz="UTC"),
            ),
        ],
        schema=VOTES_SCHEMA,
    )


def sparse_reason(
    vote_count: int, model_count: int, min_battles: int, min_models: int
) -> str | None:
    """Why a leaderboard is too sparse to rank, or None when it is not."""
    if vote_count < min_battles:
        return f"fewer than {min_battles} battles ({vote_count})"
    if model_count < min_models:
        return f"fewer than {min_models} models ({model_count})"
    return None


# --- database -------------------------------------------------------------------------------------
def resolve_leaderboards(
    conn: psycopg.Connection, selection: list[str] | Literal["all"]
) -> list[Leaderboard]:
    """The requested leaderboards in request order ("all": every one, by slug)."""
    rows = conn.execute("SELECT id::text, slug, name FROM api.leaderboard ORDER BY slug").fetchall()
    known = {slug: Leaderboard(id=i, slug=slug, name=name) for i, slug, name in rows}
    if selection == "all":
        return list(known.values())
    missing = [slug for slug in selection if slug not in known]
    if missing:
        raise LeaderboardNotFound(f"leaderboards: unknown leaderboard(s) {', '.join(missing)}")
    return [known[slug] for slug in selection]


def model_catalogue(conn: psycopg.Connection) -> pa.Table:
    """Every model (id, slug, name, active), in the order votes_query's indices refer to."""
    rows = conn.execute(MODELS_QUERY).fetchall()
    return pa.Table.from_arrays(
        [pa.array([row[i] for row in rows], type=f.type) for i, f in enumerate(MODELS_SCHEMA)],
        schema=MODELS_SCHEMA,
    )


def export_votes(
    conn: psycopg.Connection,
    slug: str,
    filters: LeaderboardFilters,
    run_at: datetime,
    catalogue: pa.Table,
) -> ExportedVotes:
    """Stream one leaderboard's votes into Parquet bytes (one row group per batch)."""
    statement, params = votes_query(slug, filters.for_leaderboard(slug), run_at)
    model_ids = catalogue.column("id").combine_chunks()
    used = np.zeros(len(model_ids), dtype=bool)
    count = 0
    sink = pa.BufferOutputStream()
    with (
        pq.ParquetWriter(sink, VOTES_SCHEMA, compression=storage.PARQUET_COMPRESSION) as writer,
        conn.cursor() as cur,
        cur.copy(
            psycopg.sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(statement), params
        ) as copy,
    ):
        for rows in copy_row_batches(copy, ROWS_PER_GROUP):
            writer.write_batch(votes_batch(rows, model_ids))
            used[rows["model1"].astype(np.intp)] = True
            used[rows["model2"].astype(np.intp)] = True
            count += len(rows)
    return ExportedVotes(parquet=bytes(sink.getvalue()), vote_count=count, models_used=used)


def open_snapshot(conn: psycopg.Connection) -> None:
    """Make the connection's next transaction one consistent, read-only view of the database."""
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True


def fetch_leaderboards(
    conn: psycopg.Connection,
    selection: list[str] | Literal["all"],
    filters: LeaderboardFilters,
    run_at: datetime,
    prefix: S3Uri,
    *,
    min_battles: int,
    min_models: int,
) -> tuple[list[LeaderboardBatch], list[Skipped]]:
    """Export every selected leaderboard's votes and models under ``prefix``; skip sparse ones."""
    open_snapshot(conn)
    batches: list[LeaderboardBatch] = []
    skipped: list[Skipped] = []
    with conn.transaction():
        boards = resolve_leaderboards(conn, selection)
        catalogue = model_catalogue(conn)
        for board in boards:
            exported = export_votes(conn, board.slug, filters, run_at, catalogue)
            reason = sparse_reason(
                exported.vote_count, exported.model_count, min_battles, min_models
            )
            if reason is not None:
                skipped.append(Skipped(slug=board.slug, reason=reason))
                continue
            votes_uri = prefix.child(board.slug, VOTES_OBJECT)
            models_uri = prefix.child(board.slug, MODELS_OBJECT)
            storage.put_bytes(votes_uri, exported.parquet, "application/vnd.apache.parquet")
            storage.put_parquet(models_uri, catalogue.filter(pa.array(exported.models_used)))
            batches.append(
                LeaderboardBatch(
                    slug=board.slug,
                    leaderboard_id=board.id,
                    name=board.name,
                    votes_uri=str(votes_uri),
                    models_uri=str(models_uri),
                    vote_count=exported.vote_count,
                    model_count=exported.model_count,
                )
            )
    return batches, skipped
