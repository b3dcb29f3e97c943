"""Rows out of PostgreSQL through ``COPY (query) TO STDOUT``: the client loop, the binary format.

``copy_out`` runs the statement in the caller's open transaction and yields the stream in chunks
of whole rows; ``copy_row_batches`` cuts a binary stream of fixed-width rows into NumPy structured
arrays (one view of the bytes a batch, no Python object a row), checking each row's field count
and lengths against what the query promises; ``CopyText`` reads a text or CSV stream as a file.
Why a loop of our own rather than psycopg's ``Copy``: see ``copy_out``.
"""

from __future__ import annotations

import gc
import io
import selectors
from collections.abc import Generator, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import psycopg
from psycopg import pq as libpq
from psycopg import sql

COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
COPY_HEADER_BYTES = len(COPY_SIGNATURE) + 8
"""The fixed part of a binary COPY header: signature, flags (int32), extension length (int32)."""
COPY_TRAILER = b"\xff\xff"
PG_EPOCH_US = 946_684_800_000_000
"""2000-01-01T00:00:00Z in microseconds since 1970: binary timestamptz counts from there."""


class CopyFormatError(RuntimeError):
    """The server's COPY stream is not what its query promises (a bug, not bad data)."""


GATHER_BYTES = 1 << 16
"""Filling a batch costs a few numpy calls a piece: pieces of at least this size make that
nothing, even for a stream of one row a chunk (~100 bytes)."""


def copy_row_batches(
    chunks: Iterable[bytes | memoryview],
    rows_per_batch: int,
    row: tuple[np.dtype, dict[str, int]],
) -> Iterator[np.ndarray]:
    """Cut a binary COPY stream of fixed-width rows into structured arrays of whole rows; ``row``
    is the rows' dtype and the values its header fields must have (``common.fetch.copy_row``).

    Each chunk is copied once, into the batch it belongs to: a batch is an array of its own,
    filled as the chunks come, so the stream is never also held as a list of chunks or joined
    (only chunks smaller than GATHER_BYTES are joined first)."""
    dtype, expected = row
    header = bytearray()
    header_size: int | None = None
    batch = np.empty(rows_per_batch * dtype.itemsize, dtype=np.uint8)
    filled = 0
    for data in _gathered(chunks, GATHER_BYTES):
        while data and (header_size is None or len(header) < header_size):
            taken = (COPY_HEADER_BYTES if header_size is None else header_size) - len(header)
            header += data[:taken]
            data = data[taken:]
            if header_size is None and len(header) == COPY_HEADER_BYTES:
                if bytes(header[: len(COPY_SIGNATURE)]) != COPY_SIGNATURE:
                    raise CopyFormatError("COPY stream does not start with the binary signature")
                header_size = COPY_HEADER_BYTES + int.from_bytes(
                    header[COPY_HEADER_BYTES - 4 :], "big"
                )
        while data:
            taken = min(len(data), len(batch) - filled)
            batch[filled : filled + taken] = np.frombuffer(data[:taken], dtype=np.uint8)
            filled += taken
            data = data[taken:]
            if filled == len(batch):
                yield checked_rows(batch.view(dtype), expected)
                batch = np.empty_like(batch)
                filled = 0
    if header_size is None or len(header) < header_size or filled < len(COPY_TRAILER):
        raise CopyFormatError("COPY stream ended without its trailer")
    if bytes(batch[filled - len(COPY_TRAILER) : filled]) != COPY_TRAILER:
        raise CopyFormatError("COPY stream ended without its trailer")
    rest = filled - len(COPY_TRAILER)
    if rest % dtype.itemsize:
        raise CopyFormatError("COPY stream ended inside a row")
    if rest:
        yield checked_rows(batch[:rest].view(dtype), expected)


def _gathered(chunks: Iterable[bytes | memoryview], least: int) -> Iterator[memoryview]:
    """The chunks, those smaller than ``least`` bytes joined with the ones after them."""
    pending: list[bytes | memoryview] = []
    size = 0
    for chunk in chunks:
        pending.append(chunk)
        size += len(chunk)
        if size >= least:
            yield memoryview(pending[0] if len(pending) == 1 else b"".join(pending))
            pending.clear()
            size = 0
    if pending:
        yield memoryview(b"".join(pending))


def checked_rows(rows: np.ndarray, expected: dict[str, int]) -> np.ndarray:
    """``rows`` when every row's header fields have the ``expected`` values, else CopyFormatError."""
    for name, value in expected.items():
        if not bool((rows[name] == value).all()):
            raise CopyFormatError(f"COPY row field {name!r} is not {value}: the query changed")
    return rows


COPY_CHUNK_BYTES = 1 << 16


def copy_out(
    conn: psycopg.Connection,
    statement: sql.Composable,
    params: dict[str, Any],
    *,
    copy_format: Literal["binary", "csv"] = "binary",
    chunk_bytes: int = COPY_CHUNK_BYTES,
) -> Generator[bytes, None, None]:
    """Run ``COPY (statement) TO STDOUT (FORMAT binary)`` (or csv) in the connection's open
    transaction and yield the stream in chunks of about ``chunk_bytes`` (rows are not split
    along chunk boundaries: the consumer parses the stream, not the chunks).

    It talks to libpq through ``conn.pgconn`` (psycopg's documented low-level escape hatch):
    psycopg's ``Copy.read()`` goes once through its wait loop per row, which at a million rows
    costs more than the parsing and the Parquet writing together. The server sends each row as
    a message of its own, so the loop that takes them is the client's hottest: it only gathers
    them, and a chunk is joined once (yielding each row cost ~1 us more per row, 5 s at 5M).
    libpq is polled without blocking and the wait for more data is a selector, so the GIL is free
    while the server works (a blocking libpq call would hold it); the cyclic garbage collector
    is paused while it gathers a chunk (``_gather``). Values are bound client-side
    (``ClientCursor.mogrify``), as psycopg does for COPY anyway.
    """
    if conn.info.transaction_status != libpq.TransactionStatus.INTRANS:
        raise CopyFormatError("copy_out must run inside an open transaction")
    query = psycopg.ClientCursor(conn).mogrify(
        sql.SQL("COPY ({}) TO STDOUT (FORMAT {})").format(statement, sql.SQL(copy_format)),
        params,
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
            ended = False
            while not ended:
                chunk, ended = _gather(pgconn, selector, chunk_bytes)
                if chunk:
                    yield chunk
            finished = True
            _drain_results(pgconn, selector, check=True)
        finally:
            if not finished and pgconn.status == libpq.ConnStatus.OK:
                _abandon(conn, selector)


def _gather(pgconn: Any, selector: selectors.BaseSelector, chunk_bytes: int) -> tuple[bytes, bool]:
    """About ``chunk_bytes`` of a COPY stream, whole rows, and whether the stream ended.

    Each row costs a tuple and a memoryview, which Python's cyclic collector counts: at 1M rows
    it ran ~2,800 times (15 of them over every object of the process), 20% of the loop. The loop
    makes no reference cycles, so the collector is paused while it runs, and only then: the
    consumer of the chunks runs with the collector as the caller set it. The rows are joined and
    let go before it resumes: still alive then, a chunk's ~700 memoryviews were what its first
    young-generation pass went over, 14% of a 1M-vote COPY's time."""
    get_copy_data = pgconn.get_copy_data
    rows: list[memoryview] = []
    size = 0
    ended = False
    with _collector_paused():
        while size < chunk_bytes:
            nbytes, data = get_copy_data(1)
            if nbytes > 0:
                rows.append(data)
                size += nbytes
            elif nbytes == 0:
                selector.select()
                pgconn.consume_input()
            elif nbytes == -1:
                ended = True
                break
            else:
                raise psycopg.OperationalError(pgconn.get_error_message())
        chunk = b"".join(rows)
        rows.clear()
    return chunk, ended


@contextmanager
def _collector_paused() -> Iterator[None]:
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


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


class CopyText(io.RawIOBase):
    """A text COPY stream (``copy_out``'s chunks) as a readable file, for Arrow's CSV reader."""

    def __init__(self, messages: Iterator[bytes]) -> None:
        self._messages = messages
        self._rest = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._rest:
            message = next(self._messages, None)
            if message is None:
                return 0
            self._rest = memoryview(message)
        n = min(len(buffer), len(self._rest))
        buffer[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n
