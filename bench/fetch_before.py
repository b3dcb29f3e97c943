"""The fetch stage's export as it was before the shared pass, kept only as the benchmarks'
baseline: one query per leaderboard, each sorted by the server on (evaluation time, id), streamed
as binary COPY into Parquet (no style columns). Written from ``common/fetch.py`` and
``common/filters.py`` at commit 5b7381f. As then, COPY rows reach the parser one message at a
time (``chunk_bytes=1``) into the reader of then (``row_batches``: every chunk appended to one
buffer, each batch sliced off it), and the object goes to S3 with botocore's default checksum
handling (aws-chunked, trailing CRC32)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import closing
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql

from common import storage
from common.copy_stream import (
    COPY_HEADER_BYTES,
    COPY_SIGNATURE,
    COPY_TRAILER,
    PG_EPOCH_US,
    CopyFormatError,
    checked_rows,
    copy_out,
)
from common.fetch import Catalogue, all_leaderboards, model_catalogue, open_snapshot
from common.filters import OUTCOME_CODES, FilterConfig, LeaderboardFilters, is_category
from common.storage import S3Uri

ROW = (
    np.dtype(
        [
            ("fields", ">i2"), ("id_len", ">i4"), ("id", "S36"), ("m1_len", ">i4"),
            ("model1", "V16"), ("m2_len", ">i4"), ("model2", "V16"), ("outcome_len", ">i4"),
            ("outcome", ">i2"), ("at_len", ">i4"), ("evaluated_at", ">i8"),
        ]
    ),
    {"fields": 5, "id_len": 36, "m1_len": 16, "m2_len": 16, "outcome_len": 2, "at_len": 8},
)  # fmt: skip


def row_batches(chunks: Iterable[bytes], rows_per_batch: int) -> Iterator[np.ndarray]:
    """Structured arrays of ROW cut out of a binary COPY stream, as the stage did then (a baseline
    must not gain from what the shared reader, ``common.copy_stream``, learned since)."""
    dtype, expected = ROW
    buffer = bytearray()
    header: int | None = None
    batch_bytes = rows_per_batch * dtype.itemsize
    for chunk in chunks:
        buffer += chunk
        if header is None:
            if len(buffer) < COPY_HEADER_BYTES:
                continue
            if bytes(buffer[: len(COPY_SIGNATURE)]) != COPY_SIGNATURE:
                raise CopyFormatError("COPY stream does not start with the binary signature")
            header = COPY_HEADER_BYTES + int.from_bytes(
                buffer[COPY_HEADER_BYTES - 4 : COPY_HEADER_BYTES], "big"
            )
        if len(buffer) < header:
            continue
        if header:
            del buffer[:header]
            header = 0
        while len(buffer) >= batch_bytes:
            yield checked_rows(np.frombuffer(buffer[:batch_bytes], dtype=dtype), expected)
            del buffer[:batch_bytes]
    if header != 0 or bytes(buffer[-len(COPY_TRAILER) :]) != COPY_TRAILER:
        raise CopyFormatError("COPY stream ended without its trailer")
    rest = len(buffer) - len(COPY_TRAILER)
    if rest % dtype.itemsize:
        raise CopyFormatError("COPY stream ended inside a row")
    if rest:
        yield checked_rows(np.frombuffer(buffer[:rest], dtype=dtype), expected)


MODEL_ID = pa.dictionary(pa.int32(), pa.string())
SCHEMA = pa.schema(
    [
        ("evaluation_id", pa.string()),
        ("model1_id", MODEL_ID),
        ("model2_id", MODEL_ID),
        ("outcome", pa.dictionary(pa.int8(), pa.string())),
        ("evaluated_at", pa.timestamp("us", tz="UTC")),
    ]
)


def votes_query(
    slug: str, config: FilterConfig, run_at: datetime
) -> tuple[sql.Composed, dict[str, Any]]:
    params: dict[str, Any] = {"until": run_at, "outcomes": list(OUTCOME_CODES)}
    joins: list[sql.Composable] = []
    where: list[sql.Composable] = [
        sql.SQL("e.created_at <= %(until)s"),
        sql.SQL("e.outcome = ANY(%(outcomes)s)"),
    ]
    if config.require_biomedical or config.min_confidence is not None:
        joins.append(sql.SQL("JOIN api.battle_validation v ON v.id = b.effective_validation_id"))
    if config.require_biomedical:
        where.append(sql.SQL("v.is_biomedical"))
    if config.min_confidence is not None:
        where.append(sql.SQL("v.confidence >= %(min_confidence)s"))
        params["min_confidence"] = config.min_confidence
    if not config.include_inactive_models:
        joins.append(
            sql.SQL(
                "JOIN api.model m1 ON m1.id = b.model1_id JOIN api.model m2 ON m2.id = b.model2_id"
            )
        )
        where.append(sql.SQL("m1.active AND m2.active"))
    start = config.start(run_at)
    if start is not None:
        where.append(sql.SQL("e.created_at >= %(since)s"))
        params["since"] = start
    if is_category(slug):
        link = (
            sql.SQL("c.id = b.effective_categorization_id")
            if config.category_source == "effective"
            else sql.SQL("c.battle_id = b.id")
        )
        where.append(
            sql.SQL(
                "EXISTS (SELECT 1 FROM api.battle_categorization c"
                " JOIN api.battle_categorization_category cc ON cc.categorization_id = c.id"
                " WHERE {link} AND c.status = ANY(%(statuses)s) AND cc.category = %(category)s)"
            ).format(link=link)
        )
        params["statuses"] = list(config.category_statuses)
        params["category"] = slug
    statement = sql.SQL(
        "SELECT e.id::text, b.model1_id, b.model2_id,"
        " (CASE e.outcome WHEN 'model1' THEN 0 WHEN 'model2' THEN 1 ELSE 2 END)::int2,"
        " e.created_at"
        " FROM api.battle_evaluation e"
        " JOIN api.battle b ON b.id = e.battle_id"
        " {joins} WHERE {where} ORDER BY e.created_at, e.id"
    ).format(joins=sql.SQL(" ").join(joins), where=sql.SQL(" AND ").join(where))
    return statement, params


def _batch(rows: np.ndarray, catalogue: Catalogue) -> pa.RecordBatch:
    model1, model2 = catalogue.codes(rows["model1"]), catalogue.codes(rows["model2"])
    keep = (model1 >= 0) & (model2 >= 0) & (model1 != model2)
    rows, model1, model2 = rows[keep], model1[keep], model2[keep]
    n = len(rows)
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    model_ids = catalogue.table.column("id").combine_chunks()
    return pa.RecordBatch.from_arrays(
        [
            pa.StringArray.from_buffers(
                n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(rows["id"]))
            ),
            pa.DictionaryArray.from_arrays(pa.array(model1), model_ids),
            pa.DictionaryArray.from_arrays(pa.array(model2), model_ids),
            pa.DictionaryArray.from_arrays(
                pa.array(rows["outcome"].astype(np.int8)), pa.array(OUTCOME_CODES)
            ),
            pa.array(
                rows["evaluated_at"].astype(np.int64) + PG_EPOCH_US,
                type=pa.timestamp("us", tz="UTC"),
            ),
        ],
        schema=SCHEMA,
    )


def export_all(
    conn: psycopg.Connection, slugs: list[str] | None, run_at: datetime, prefix: S3Uri
) -> dict[str, int]:
    """Each leaderboard's votes (all when ``slugs`` is None) by its own sorted query, written
    to ``prefix`` as the stage did; returns the vote count per leaderboard."""
    filters = LeaderboardFilters()
    open_snapshot(conn)
    counts: dict[str, int] = {}
    with conn.transaction():
        boards = [b.slug for b in all_leaderboards(conn)] if slugs is None else slugs
        catalogue = model_catalogue(conn)
        for slug in boards:
            statement, params = votes_query(slug, filters.for_leaderboard(slug), run_at)
            sink = pa.BufferOutputStream()
            count = 0
            with (
                pq.ParquetWriter(
                    sink, SCHEMA, compression=storage.PARQUET_COMPRESSION,
                    use_dictionary=["model1_id", "model2_id", "outcome"],
                ) as writer,
                closing(copy_out(conn, statement, params, chunk_bytes=1)) as messages,
            ):  # fmt: skip
                for rows in row_batches(messages, 1 << 18):
                    batch = _batch(rows, catalogue)
                    writer.write_batch(batch)
                    count += batch.num_rows
            uri = prefix.child(slug, "votes.parquet")
            storage.s3_client().put_object(
                Bucket=uri.bucket, Key=uri.key, Body=pa.BufferReader(sink.getvalue()),
                ContentType="application/octet-stream",
            )  # fmt: skip
            counts[slug] = count
    return counts
