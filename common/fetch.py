"""The fetch stage's work: stream each leaderboard's votes out of PostgreSQL into Parquet in S3.

Votes leave the server through ``COPY (query) TO STDOUT (FORMAT binary)``. The query
(``common.filters.votes_query``) returns fixed-width rows -- the evaluation id as 36 characters of
text, the two model ids as 16-byte uuids, the outcome as int2 and the timestamp -- so each batch of
rows is one NumPy structured view of the bytes and becomes Arrow columns without a Python object
per row (model ids are dictionary-encoded against the model catalogue with a hash lookup in
Arrow). Batches are written as Parquet row groups as they arrive, so memory holds one batch and
the compressed file, never the rows as Python values.

Data problems are outcomes, not failures. Bad rows -- a battle of a model against itself, a vote
naming a model that is not in ``api.model`` -- are left out of the export and counted per
leaderboard and reason (``LeftOut``). A leaderboard row our contract cannot carry (its slug or
its name) and a leaderboard too sparse to rank are skipped with the reason (``Skipped``). A
``LEADERBOARD_FILTERS`` override for a slug no leaderboard has is a configuration fault.

Files per leaderboard, under the run's artifacts prefix:
``{prefix}{slug}/votes.parquet`` (evaluation_id, model1_id, model2_id, outcome, evaluated_at;
model ids and outcome dictionary-encoded) and ``{prefix}{slug}/models.parquet`` (id, slug, name,
active of the models in those votes). Everything is read in one REPEATABLE READ, read-only
transaction, in a fixed order, so the same run writes the same bytes again.
"""

from __future__ import annotations

import selectors
import uuid
from collections.abc import Generator, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import pq as libpq
from psycopg import sql

from common import storage
from common.contracts import SLUG_RE, LeaderboardBatch, LeftOut, Skipped
from common.errors import LeaderboardNotFound
from common.filters import (
    MODELS_QUERY,
    OUTCOME_CODES,
    LeaderboardFilters,
    check_overrides,
    votes_query,
)
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
        ("model1", "V16"),
        ("m2_len", ">i4"),
        ("model2", "V16"),
        ("outcome_len", ">i4"),
        ("outcome", ">i2"),
        ("at_len", ">i4"),
        ("evaluated_at", ">i8"),
    ]
)
_EXPECTED = {"fields": 5, "id_len": 36, "m1_len": 16, "m2_len": 16, "outcome_len": 2, "at_len": 8}
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
DICTIONARY_COLUMNS = ["model1_id", "model2_id", "outcome"]
"""Only these are worth Parquet dictionary pages (the evaluation ids are all distinct)."""
VOTES_OBJECT = "votes.parquet"
MODELS_OBJECT = "models.parquet"
NAME_LIMIT = 200
"""The longest leaderboard name the stage contracts carry (``LeaderboardBatch.name``)."""

SELF_BATTLE = "a model faces itself"
MISSING_MODEL = "names a model not in api.model"
LEFT_OUT_REASONS: tuple[str, ...] = (SELF_BATTLE, MISSING_MODEL)
"""Why fetch leaves a vote out, in the order results list them. The schema has no CHECK against
a self-battle; a model row vanishes under its votes only when something loaded them with the
foreign key's checks off (its ON DELETE CASCADE removes them otherwise). Outcomes other than
model1, model2 and tie cannot exist (a CHECK), and the query keeps to those three anyway."""


class CopyFormatError(RuntimeError):
    """The server's COPY stream is not what ``votes_query`` promises (a bug, not bad data)."""


@dataclass(frozen=True)
class Leaderboard:
    id: str
    slug: str
    name: str


@dataclass(frozen=True)
class ExportedVotes:
    parquet: pa.Buffer
    vote_count: int
    model_votes: np.ndarray
    """Per catalogue row: the evaluations the model took part in."""
    left_out: dict[str, int]
    """Votes left out of the file, by reason (every reason of LEFT_OUT_REASONS, counts >= 0)."""

    @property
    def models_used(self) -> np.ndarray:
        """Boolean mask over the catalogue's rows: the models in at least one vote."""
        return self.model_votes > 0

    @property
    def model_count(self) -> int:
        return int(self.models_used.sum())

    def models_with(self, min_evals: int) -> int:
        return int((self.model_votes >= max(min_evals, 1)).sum())


# --- pure parts -----------------------------------------------------------------------------------
def copy_row_batches(
    chunks: Iterable[bytes | memoryview], rows_per_batch: int
) -> Iterator[np.ndarray]:
    """Cut a binary COPY stream of votes_query rows into structured arrays of whole rows."""
    buffer = bytearray()
    header: int | None = None
    batch_bytes = rows_per_batch * COPY_ROW.itemsize
    for chunk in chunks:
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
            yield _checked(np.frombuffer(buffer[:batch_bytes], dtype=COPY_ROW))
            del buffer[:batch_bytes]
    if header != 0 or bytes(buffer[-2:]) != _TRAILER:
        raise CopyFormatError("COPY stream ended without its trailer")
    rest = len(buffer) - len(_TRAILER)
    if rest % COPY_ROW.itemsize:
        raise CopyFormatError("COPY stream ended inside a row")
    if rest:
        yield _checked(np.frombuffer(buffer[:rest], dtype=COPY_ROW))


def _checked(rows: np.ndarray) -> np.ndarray:
    for name, value in _EXPECTED.items():
        if not bool((rows[name] == value).all()):
            raise CopyFormatError(f"COPY row field {name!r} is not {value}: the query changed")
    return rows


@dataclass(frozen=True)
class Catalogue:
    """The model table (id, slug, name, active by id) and its ids as 16-byte uuids."""

    table: pa.Table
    keys: pa.FixedSizeBinaryArray

    @classmethod
    def from_table(cls, table: pa.Table) -> Catalogue:
        raw = b"".join(uuid.UUID(i).bytes for i in table.column("id").to_pylist())
        keys = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(16), table.num_rows, [None, pa.py_buffer(raw)]
        )
        return cls(table=table, keys=keys)

    def codes(self, ids: np.ndarray) -> np.ndarray:
        """Catalogue row of each 16-byte model id, -1 for an id the catalogue lacks (a hash
        lookup in Arrow, no Python loop)."""
        values = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(16), len(ids), [None, pa.py_buffer(np.ascontiguousarray(ids))]
        )
        found = pc.index_in(values, value_set=self.keys).fill_null(-1)
        return np.asarray(found.to_numpy(zero_copy_only=False), dtype=np.int32)


def votes_batch(
    rows: np.ndarray, catalogue: Catalogue
) -> tuple[pa.RecordBatch, np.ndarray, dict[str, int]]:
    """Arrow columns from structured COPY rows without the bad ones, the catalogue rows of the
    models they name, and how many rows were left out by reason."""
    model1, model2 = catalogue.codes(rows["model1"]), catalogue.codes(rows["model2"])
    missing = (model1 < 0) | (model2 < 0)
    itself = (model1 == model2) & ~missing
    left_out = {SELF_BATTLE: int(itself.sum()), MISSING_MODEL: int(missing.sum())}
    if left_out[SELF_BATTLE] or left_out[MISSING_MODEL]:
        keep = ~(missing | itself)
        rows, model1, model2 = rows[keep], model1[keep], model2[keep]
    n = len(rows)
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    evaluation_id = pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(rows["id"]))
    )
    model_ids = catalogue.table.column("id").combine_chunks()
    outcome = pa.DictionaryArray.from_arrays(
        pa.array(rows["outcome"].astype(np.int8)), pa.array(OUTCOME_CODES)
    )
    batch = pa.RecordBatch.from_arrays(
        [
            evaluation_id,
            pa.DictionaryArray.from_arrays(pa.array(model1), model_ids),
            pa.DictionaryArray.from_arrays(pa.array(model2), model_ids),
            outcome,
            pa.array(
                rows["evaluated_at"].astype(np.int64) + PG_EPOCH_US,
                type=pa.timestamp("us", tz="UTC"),
            ),
        ],
        schema=VOTES_SCHEMA,
    )
    return batch, np.concatenate([model1, model2]), left_out


def sparse_reason(
    vote_count: int,
    model_count: int,
    min_battles: int,
    min_models: int,
    *,
    models_over_min_evals: int | None = None,
    min_evals: int = 0,
) -> str | None:
    """Why a leaderboard is too sparse to rank, or None when it is not.

    Beyond upstream's gate (battles, models), a leaderboard where no model reaches ``min_evals``
    evaluations is skipped too: every entry would be dropped after the fit, and an empty
    snapshot must neither be published nor fail the whole run.
    """
    if vote_count < min_battles:
        return f"fewer than {min_battles} battles ({vote_count})"
    if model_count < min_models:
        return f"fewer than {min_models} models ({model_count})"
    if models_over_min_evals == 0:
        return f"no model with {min_evals} evaluations"
    return None


def unusable_reason(board: Leaderboard) -> str | None:
    """Why a leaderboard row cannot travel through the stage contracts, or None when it can."""
    if not SLUG_RE.fullmatch(board.slug):
        return "slug is not one our contract carries (a-z, 0-9 and '-', at most 100 characters)"
    if not board.name:
        return "name is empty"
    if len(board.name) > NAME_LIMIT:
        return f"name is longer than {NAME_LIMIT} characters"
    return None


def left_out_counts(slug: str, counts: dict[str, int]) -> list[LeftOut]:
    return [
        LeftOut(slug=slug, reason=reason, count=counts[reason])
        for reason in LEFT_OUT_REASONS
        if counts.get(reason)
    ]


# --- database -------------------------------------------------------------------------------------
def all_leaderboards(conn: psycopg.Connection) -> list[Leaderboard]:
    """Every leaderboard row, by slug."""
    rows = conn.execute("SELECT id::text, slug, name FROM api.leaderboard ORDER BY slug").fetchall()
    return [Leaderboard(id=i, slug=slug, name=name) for i, slug, name in rows]


def resolve_leaderboards(
    rows: list[Leaderboard], selection: list[str] | Literal["all"]
) -> tuple[list[Leaderboard], list[Skipped]]:
    """The requested leaderboards in request order ("all": every one, by slug), and the rows our
    contract cannot carry, skipped with the reason (requested by name or not: the row, not the
    request, is at fault). A requested slug no row has is refused."""
    known = {board.slug: board for board in rows}
    if selection == "all":
        chosen = list(known.values())
    else:
        missing = [slug for slug in selection if slug not in known]
        if missing:
            raise LeaderboardNotFound(f"leaderboards: unknown leaderboard(s) {', '.join(missing)}")
        chosen = [known[slug] for slug in selection]
    usable: list[Leaderboard] = []
    skipped: list[Skipped] = []
    for board in chosen:
        reason = unusable_reason(board)
        if reason is None:
            usable.append(board)
        else:
            skipped.append(Skipped(slug=board.slug[:100], reason=reason))
    return usable, skipped


def model_catalogue(conn: psycopg.Connection) -> Catalogue:
    """Every model (id, slug, name, active), ordered by id."""
    rows = conn.execute(MODELS_QUERY).fetchall()
    return Catalogue.from_table(
        pa.Table.from_arrays(
            [pa.array([row[i] for row in rows], type=f.type) for i, f in enumerate(MODELS_SCHEMA)],
            schema=MODELS_SCHEMA,
        )
    )


def copy_out(
    conn: psycopg.Connection, statement: sql.Composable, params: dict[str, Any]
) -> Generator[memoryview, None, None]:
    """Run ``COPY (statement) TO STDOUT (FORMAT binary)`` in the connection's open transaction
    and yield the server's messages.

    It talks to libpq through ``conn.pgconn`` (psycopg's documented low-level escape hatch):
    psycopg's ``Copy.read()`` goes once through its wait loop per row, which at a million rows
    costs more than the parsing and the Parquet writing together. Here libpq is polled without
    blocking and the wait for more data is a selector, so the GIL is free while the server works
    (a blocking libpq call would hold it). Values are bound client-side
    (``ClientCursor.mogrify``), as psycopg does for COPY anyway.
    """
    if conn.info.transaction_status != libpq.TransactionStatus.INTRANS:
        raise CopyFormatError("copy_out must run inside the export's open transaction")
    query = psycopg.ClientCursor(conn).mogrify(
        sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(statement), params
    )
    pgconn = conn.pgconn
    with selectors.DefaultSelector() as selector:
        selector.register(pgconn.socket, selectors.EVENT_READ)
        pgconn.send_query(query.encode())
        started = _next_result(pgconn, selector)
        if started is None or started.status != libpq.ExecStatus.COPY_OUT:
            _drain_results(pgconn, selector)
            if started is None:
                raise psycopg.OperationalError(pgconn.get_error_message())
            raise psycopg.errors.error_from_result(started)
        finished = False
        try:
            while True:
                nbytes, data = pgconn.get_copy_data(1)
                if nbytes > 0:
                    yield data
                elif nbytes == 0:
                    selector.select()
                    pgconn.consume_input()
                elif nbytes == -1:
                    break
                else:
                    raise psycopg.OperationalError(pgconn.get_error_message())
            finished = True
            _drain_results(pgconn, selector, check=True)
        finally:
            if not finished and pgconn.status == libpq.ConnStatus.OK:
                _abandon(conn, selector)


def _next_result(pgconn: Any, selector: selectors.BaseSelector) -> Any:
    """PQgetResult without blocking in C: wait on the socket until a result is complete."""
    while pgconn.is_busy():
        selector.select()
        pgconn.consume_input()
    return pgconn.get_result()


def _drain_results(pgconn: Any, selector: selectors.BaseSelector, check: bool = False) -> None:
    while (result := _next_result(pgconn, selector)) is not None:
        if check and result.status != libpq.ExecStatus.COMMAND_OK:
            raise psycopg.errors.error_from_result(result)


def _abandon(conn: psycopg.Connection, selector: selectors.BaseSelector) -> None:
    """Stop a COPY left half-read (an error downstream) and leave the connection idle; the
    transaction is then failed and the caller's exception is the one that propagates."""
    pgconn = conn.pgconn
    try:
        conn.cancel_safe()
        while (nbytes := pgconn.get_copy_data(1)[0]) >= 0:
            if nbytes == 0:
                selector.select()
                pgconn.consume_input()
        _drain_results(pgconn, selector)
    except psycopg.Error:
        pass


def export_votes(
    conn: psycopg.Connection,
    slug: str,
    filters: LeaderboardFilters,
    run_at: datetime,
    catalogue: Catalogue,
) -> ExportedVotes:
    """Stream one leaderboard's votes into Parquet bytes (one row group per batch); runs inside
    the transaction that read ``catalogue``."""
    import pyarrow.parquet as pq

    statement, params = votes_query(slug, filters.for_leaderboard(slug), run_at)
    model_votes = np.zeros(catalogue.table.num_rows, dtype=np.int64)
    left_out = dict.fromkeys(LEFT_OUT_REASONS, 0)
    count = 0
    sink = pa.BufferOutputStream()
    with (
        pq.ParquetWriter(
            sink,
            VOTES_SCHEMA,
            compression=storage.PARQUET_COMPRESSION,
            use_dictionary=DICTIONARY_COLUMNS,
        ) as writer,
        closing(copy_out(conn, statement, params)) as messages,
    ):
        for rows in copy_row_batches(messages, ROWS_PER_GROUP):
            batch, models, dropped = votes_batch(rows, catalogue)
            writer.write_batch(batch)
            model_votes += np.bincount(models, minlength=len(model_votes))
            count += batch.num_rows
            for reason, n in dropped.items():
                left_out[reason] += n
    return ExportedVotes(
        parquet=sink.getvalue(), vote_count=count, model_votes=model_votes, left_out=left_out
    )


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
    min_evals: int = 0,
) -> tuple[list[LeaderboardBatch], list[Skipped], list[LeftOut]]:
    """Export every selected leaderboard's votes and models under ``prefix``; skip the rows our
    contract cannot carry and the sparse leaderboards, leave out and count the bad votes."""
    open_snapshot(conn)
    batches: list[LeaderboardBatch] = []
    left_out: list[LeftOut] = []
    with conn.transaction():
        rows = all_leaderboards(conn)
        check_overrides(filters, [board.slug for board in rows])
        boards, skipped = resolve_leaderboards(rows, selection)
        catalogue = model_catalogue(conn)
        for board in boards:
            exported = export_votes(conn, board.slug, filters, run_at, catalogue)
            left_out += left_out_counts(board.slug, exported.left_out)
            reason = sparse_reason(
                exported.vote_count, exported.model_count, min_battles, min_models,
                models_over_min_evals=exported.models_with(min_evals), min_evals=min_evals,
            )  # fmt: skip
            if reason is not None:
                skipped.append(Skipped(slug=board.slug, reason=reason))
                continue
            votes_uri = prefix.child(board.slug, VOTES_OBJECT)
            models_uri = prefix.child(board.slug, MODELS_OBJECT)
            storage.put_bytes(votes_uri, exported.parquet, "application/vnd.apache.parquet")
            storage.put_parquet(models_uri, catalogue.table.filter(pa.array(exported.models_used)))
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
    return batches, skipped, left_out
