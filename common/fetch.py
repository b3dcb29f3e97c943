"""The fetch stage's work: one pass over the votes feeds every leaderboard's Parquet in S3.

Fetch once. The category leaderboards are splits of the same votes, so one statement
(``common.filters.votes_query`` over a ``FetchPlan``) returns every vote any selected leaderboard
may count, with what each needs to decide membership under its own filters: the effective
validation's verdict and confidence and, per categorization rule in use, a bitmask of the
leaderboards whose category the battle matches. The split is numpy on those columns
(``FetchPlan.member``); every filter field is expressible so, and no leaderboard needs a query
of its own. The statement has no ORDER BY (the rank stage ignores order); scan order is not
stable in general, so the rows are put in order here on (evaluation time, evaluation id) -- a
sort of the times, then the ties by id -- and the same votes always give the same bytes. The
columns stay in the order they came in, each grown a batch at a time (``common.heap``); each
leaderboard's rows are listed in (time, id) order a row group at a time (``in_order``) as its file
is written, so no sorted copy of the pass is ever made.

Votes leave the server through ``COPY (query) TO STDOUT (FORMAT binary)`` as fixed-width rows
(ids as 16-byte uuids, outcome and validation as int2, timestamp, int8 masks): each batch of rows
is one NumPy structured view of the bytes, without a Python object per row; model ids are mapped
to catalogue rows with a hash lookup in Arrow, evaluation ids kept as the 16 bytes they came as.
The statement may run in parallel workers (``PARALLEL_TUPLE_COST``); the client only gathers the
rows the server sends (``common.copy_stream``).

Answer style (issue 14). A second COPY, in CSV, streams the rounds of those votes with both
answers' texts into Arrow's CSV reader; ``common.answer_style.style_counts`` counts tokens (numpy
on the UTF-8 bytes) and markdown (RE2) per answer, and the counts are summed per vote over its
rounds. ``votes.parquet`` carries them in ``STYLE_COLUMNS`` (nullable int32), all null for a vote
whose battle has no round or misses an answer in one. PostgreSQL's ``regexp_count`` computes the
same counts 5x slower (benchmark ``fetch-style/100k``: 79 s against 15 s for 789 MB of answers)
and needs PostgreSQL 15 or later.

Data problems are outcomes, not failures. Bad rows -- a battle of a model against itself, a vote
naming a model that is not in ``api.model`` -- are left out of the export and counted per
leaderboard and reason (``LeftOut``), among the rows the leaderboard's filters select. A
leaderboard row our contract cannot carry (its slug or its name) and a leaderboard too sparse to
rank are skipped with the reason (``Skipped``). A ``LEADERBOARD_FILTERS`` override for a slug no
leaderboard has is a configuration fault.

Files per leaderboard, under the run's artifacts prefix:
``{prefix}{slug}/votes.parquet`` (evaluation_id, model1_id, model2_id, outcome, evaluated_at, then
the 8 style columns; evaluation ids as Parquet's UUID type, model ids and outcome
dictionary-encoded) and ``{prefix}{slug}/models.parquet`` (id, slug, name, active of the models in
those votes). A votes object is written while it is encoded (``storage.streamed``: parts of a
multipart upload), never held whole. Everything is read in one REPEATABLE READ, read-only
transaction, so both passes and the catalogue see one snapshot.
"""

from __future__ import annotations

import collections
import io
import itertools
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Literal, TypeVar

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from common import storage
from common.answer_style import STYLE_COLUMNS, style_counts
from common.contracts import SLUG_RE, LeaderboardBatch, LeftOut, Skipped
from common.copy_stream import PG_EPOCH_US, CopyFormatError, CopyText, copy_out, copy_row_batches
from common.errors import InvalidInput, LeaderboardNotFound
from common.filters import (
    MODELS_QUERY,
    OUTCOME_CODES,
    FetchPlan,
    LeaderboardFilters,
    SharedRows,
    answers_query,
    check_overrides,
    plan_fetch,
    votes_query,
)
from common.heap import GrowingArray, release_freed_memory
from common.storage import S3Uri

if TYPE_CHECKING:
    from _typeshed import SupportsWrite


def copy_row(groups: int) -> tuple[np.dtype, dict[str, int]]:
    """One binary COPY row of ``votes_query`` with ``groups`` category masks (field count, then
    length and value per field, big-endian), and the values its header fields must have."""
    fields = [
        ("fields", ">i2"),
        ("id_len", ">i4"), ("id", "V16"),
        ("m1_len", ">i4"), ("model1", "V16"),
        ("m2_len", ">i4"), ("model2", "V16"),
        ("outcome_len", ">i4"), ("outcome", ">i2"),
        ("at_len", ">i4"), ("evaluated_at", ">i8"),
        ("validation_len", ">i4"), ("validation", ">i2"),
        ("confidence_len", ">i4"), ("confidence", ">i2"),
    ]  # fmt: skip
    expected = {
        "fields": 7 + groups, "id_len": 16, "m1_len": 16, "m2_len": 16, "outcome_len": 2,
        "at_len": 8, "validation_len": 2, "confidence_len": 2,
    }  # fmt: skip
    for g in range(groups):
        fields += [(f"mask{g}_len", ">i4"), (f"mask{g}", ">i8")]
        expected[f"mask{g}_len"] = 8
    return np.dtype(fields), expected


BATCH_ROWS = 1 << 17
"""Rows of the pass handled at a time: a COPY batch (14 MB of rows at one category mask), a chunk
of the work over every row. At 2^18 the COPY phase of fetch/5M peaked 14 MB higher, no faster."""
ROW_GROUP_ROWS = 1 << 16
"""Rows of a votes object's row group. Parquet's writer holds a row group's pages until it is
written whole, and the rows' Arrow batch beside them: writing fetch/5M's votes took 60-70 MB above
the columns at 2^18 rows, 26 MB at 2^17 and 16 MB at 2^16, for a file 0.1% larger."""
T = TypeVar("T")
R = TypeVar("R")

MODEL_ID = pa.dictionary(pa.int32(), pa.string())
VOTES_SCHEMA = pa.schema(
    [
        ("evaluation_id", pa.uuid()),
        ("model1_id", MODEL_ID),
        ("model2_id", MODEL_ID),
        ("outcome", pa.dictionary(pa.int8(), pa.string())),
        ("evaluated_at", pa.timestamp("us", tz="UTC")),
        *((name, pa.int32()) for name in STYLE_COLUMNS),
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


@dataclass(frozen=True)
class Leaderboard:
    id: str
    slug: str
    name: str


@dataclass(frozen=True)
class BoardRows:
    """One leaderboard's rows of the shared pass, those its Parquet object will hold."""

    chosen: np.ndarray
    """Per vote of the shared pass: the file holds it. The file lists them in (time, id) order
    (``in_order``), made a row group at a time: at 5M votes a list of every position would take
    20 MB more at the stage's peak."""
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

    @property
    def code_dtype(self) -> type[np.signedinteger]:
        """The dtype the pass keeps codes in: int16 while it holds every row and -1 (at 5M
        votes, 20 MB less than int32 for the two model columns)."""
        return np.int16 if self.table.num_rows < np.iinfo(np.int16).max else np.int32


def uuid_array(raw: np.ndarray) -> pa.ExtensionArray:
    """16-byte uuids (a ``V16`` or (n, 16) uint8 array) as Arrow's uuid type: Parquet's UUID
    logical type (16 bytes a value) once written."""
    data = np.ascontiguousarray(raw).view(np.uint8).reshape(-1, 16)
    values = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(16), len(data), [None, pa.py_buffer(data)]
    )
    return pa.ExtensionArray.from_storage(pa.uuid(), values)


def uuid_bytes(text: pa.Array) -> np.ndarray:
    """Canonical 36-character uuid texts as an (n, 16) uint8 array."""
    text = text.cast(pa.string())
    offsets = np.frombuffer(
        text.buffers()[1], dtype=np.int32, count=len(text) + 1, offset=4 * text.offset
    )
    if text.null_count or not bool((np.diff(offsets) == 36).all()):
        raise CopyFormatError("an evaluation id is not a 36-character uuid")
    data = np.frombuffer(text.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    chars = data.reshape(-1, 36)[:, _UUID_DIGITS]
    values = _NIBBLE[chars]
    return (values[:, 0::2] << 4) | values[:, 1::2]


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_NIBBLE = np.zeros(256, dtype=np.uint8)
_NIBBLE[_HEX] = np.arange(16, dtype=np.uint8)
_NIBBLE[np.frombuffer(b"ABCDEF", dtype=np.uint8)] = np.arange(10, 16, dtype=np.uint8)
_UUID_DIGITS = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])


@dataclass(frozen=True)
class SharedVotes:
    """Every vote of the shared pass as columns, in the order the server sent them, and that
    order's (evaluation time, evaluation id) order."""

    ids: np.ndarray
    """(votes, 16) uint8: the evaluation ids."""
    model1: np.ndarray
    model2: np.ndarray
    """Catalogue rows of the models (-1: not in api.model), ``Catalogue.code_dtype``."""
    outcome: np.ndarray
    evaluated_at_us: np.ndarray
    validation: np.ndarray
    confidence_milli: np.ndarray
    masks: np.ndarray
    style: np.ndarray
    """(votes, 8) int32 in STYLE_COLUMNS order; meaningful where ``has_style``."""
    has_style: np.ndarray
    order: np.ndarray
    """Positions of the votes by (evaluation time, evaluation id), int32 (``positions_dtype``)."""

    def rows(self, catalogue: Catalogue) -> SharedRows:
        return SharedRows(
            validation=self.validation,
            confidence_milli=self.confidence_milli,
            evaluated_at_us=self.evaluated_at_us,
            model1=self.model1,
            model2=self.model2,
            active=np.asarray(catalogue.table.column("active").to_numpy(zero_copy_only=False)),
            masks=self.masks,
        )


def shared_votes(batches: Iterable[np.ndarray], catalogue: Catalogue, groups: int) -> SharedVotes:
    """The compact columns of structured COPY rows (``copy_row(groups)``) and their order."""
    ids, times = GrowingArray(np.uint8, 16), GrowingArray(np.int64)
    model1, model2 = GrowingArray(catalogue.code_dtype), GrowingArray(catalogue.code_dtype)
    outcome, validation = GrowingArray(np.int8), GrowingArray(np.int8)
    confidence, masks = GrowingArray(np.int16), GrowingArray(np.int64, groups)
    for rows in batches:
        ids.append(np.ascontiguousarray(rows["id"]).view(np.uint8).reshape(-1, 16))
        model1.append(catalogue.codes(rows["model1"]))
        model2.append(catalogue.codes(rows["model2"]))
        outcome.append(rows["outcome"])
        times.append(rows["evaluated_at"].astype(np.int64) + PG_EPOCH_US)
        validation.append(rows["validation"])
        confidence.append(rows["confidence"])
        if groups:
            masks.append(np.stack([rows[f"mask{g}"] for g in range(groups)], axis=1))
        # Before the next batch is filled: the bytes of this one, and what the pools keep of
        # the lookups and casts of it (at fetch/5M up to 60 MB by the end of the pass).
        del rows
        release_freed_memory()
    id_bytes, evaluated_at_us = ids.array(), times.array()
    n = len(id_bytes)
    order = sort_order(evaluated_at_us, id_bytes)
    release_freed_memory()  # the sort's
    return SharedVotes(
        ids=id_bytes,
        model1=model1.array(),
        model2=model2.array(),
        outcome=outcome.array(),
        evaluated_at_us=evaluated_at_us,
        validation=validation.array(),
        confidence_milli=confidence.array(),
        masks=masks.array().reshape(n, groups),
        style=np.zeros((n, len(STYLE_COLUMNS)), dtype=np.int32),
        has_style=np.zeros(n, dtype=bool),
        order=order,
    )


def positions_dtype(n: int) -> type[np.signedinteger]:
    """int32 for the positions of a pass of ``n`` rows where they fit: half of intp's memory."""
    return np.int32 if n <= np.iinfo(np.int32).max else np.int64


def sort_order(times: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The order of (time, id): scan order is not stable, so the same votes must be sorted to give
    the same bytes. The times alone are sorted, then only the rows that share a time with another
    are ordered by (time, id) (an id's bytes compare as its text does: hex digits at fixed
    places), so the first sort need not be stable: introsort needs no buffer of half the rows, as
    a stable sort does (20 MB at 5M votes), and was 2x as fast there. The ties are found a chunk
    at a time, so that no sorted copy of the times is held beside the order."""
    order = np.argsort(times)
    tied = np.zeros(len(order), dtype=bool)
    for start in range(0, max(len(order) - 1, 0), BATCH_ROWS):
        ordered = times[order[start : start + BATCH_ROWS + 1]]
        same = ordered[1:] == ordered[:-1]
        tied[start + 1 : start + 1 + len(same)] |= same
        tied[start : start + len(same)] |= same
    if tied.any():
        at = np.flatnonzero(tied)
        members = order[at]
        halves = np.ascontiguousarray(ids[members]).view(">u8").reshape(-1, 2)
        order[at] = members[np.lexsort((halves[:, 1], halves[:, 0], times[members]))]
    return order.astype(positions_dtype(len(order)))


def in_order(member: np.ndarray, order: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """The positions where ``member`` holds, listed in ``order`` (and of its dtype), ``size`` at a
    time (the last fewer), made as they are asked for."""
    pending: list[np.ndarray] = []
    held = 0
    for start in range(0, len(order), BATCH_ROWS):
        rows = order[start : start + BATCH_ROWS]
        pending.append(rows[member[rows]])
        held += len(pending[-1])
        if held >= size:
            joined = np.concatenate(pending)
            whole = held - held % size
            yield from np.split(joined[:whole], whole // size)
            pending, held = [joined[whole:]], held - whole
    if held:
        yield np.concatenate(pending)


STYLE_THREADS = min(4, os.cpu_count() or 1)
"""Threads counting the answers of the rounds: RE2 (Arrow) and numpy let go of the GIL, so
batches are counted at once while the main thread reads the next one from the server."""


def add_style(
    votes: SharedVotes, rounds: Iterable[pa.RecordBatch], *, threads: int = STYLE_THREADS
) -> SharedVotes:
    """Sum each vote's answers' style counts over its rounds (batches of evaluation id, model1's
    answer, model2's answer); a vote keeps them when it has a round and no answer is missing.
    Batches are counted by ``threads`` threads; the sums are of integers, so the result does not
    depend on which thread counted what."""
    batches = iter(rounds)
    first = next(batches, None)
    if first is None:
        return votes  # no round: no vote has style (``shared_votes`` leaves them so)
    n = len(votes.ids)
    keys = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(16), n, [None, pa.py_buffer(np.ascontiguousarray(votes.ids))]
    )
    totals = np.zeros((n, len(STYLE_COLUMNS)), dtype=np.int64)
    seen = np.zeros(n, dtype=np.int64)
    lacking = np.zeros(n, dtype=np.int64)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        counted = _in_order(
            pool, partial(round_counts, keys), itertools.chain([first], batches), threads
        )
        # Unbuffered adds touch only the batch's votes (a bincount per batch would sweep all n).
        for vote, counts, missing in counted:
            np.add.at(totals, vote, counts)
            np.add.at(seen, vote, 1)
            np.add.at(lacking, vote[missing], 1)
    has = (seen > 0) & (lacking == 0)
    style = np.where(has[:, None], np.minimum(totals, np.iinfo(np.int32).max), 0)
    return replace(votes, style=style.astype(np.int32), has_style=has)


def round_counts(
    keys: pa.FixedSizeBinaryArray, batch: pa.RecordBatch
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One batch of rounds: each round's vote (its position in ``keys``), both answers' counts
    (rounds, 8) in STYLE_COLUMNS order, and whether an answer is missing."""
    raw = uuid_bytes(batch.column(0))
    probe = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(16), len(raw), [None, pa.py_buffer(np.ascontiguousarray(raw))]
    )
    vote = np.asarray(
        pc.index_in(probe, value_set=keys).fill_null(-1).to_numpy(zero_copy_only=False)
    )
    if not bool((vote >= 0).all()):
        raise CopyFormatError("a round names an evaluation the votes pass did not return")
    counts = np.concatenate([style_counts(batch.column(1)), style_counts(batch.column(2))], axis=1)
    missing = np.asarray(
        pc.or_(pc.is_null(batch.column(1)), pc.is_null(batch.column(2))).to_numpy(
            zero_copy_only=False
        )
    )
    return vote, counts, missing


def _in_order(
    pool: ThreadPoolExecutor, work: Callable[[T], R], items: Iterable[T], ahead: int
) -> Iterator[R]:
    """``work`` over ``items`` in the pool's threads, results in item order, with at most
    ``ahead`` items in flight (``Executor.map`` would read every item up front)."""
    pending: collections.deque[Future[R]] = collections.deque()
    for item in items:
        pending.append(pool.submit(work, item))
        if len(pending) > ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def votes_table(
    votes: SharedVotes, chosen: np.ndarray, catalogue: Catalogue
) -> Iterator[pa.RecordBatch]:
    """The votes ``chosen`` (a mask over the shared pass) in (time, id) order, as Arrow batches of
    ROW_GROUP_ROWS rows (the last fewer)."""
    model_ids = catalogue.table.column("id").combine_chunks()
    outcomes = pa.array(OUTCOME_CODES)
    for rows in in_order(chosen, votes.order, ROW_GROUP_ROWS):
        has = votes.has_style[rows]
        style = votes.style[rows]
        yield pa.RecordBatch.from_arrays(
            [
                uuid_array(votes.ids[rows]),
                pa.DictionaryArray.from_arrays(pa.array(_int32(votes.model1[rows])), model_ids),
                pa.DictionaryArray.from_arrays(pa.array(_int32(votes.model2[rows])), model_ids),
                pa.DictionaryArray.from_arrays(pa.array(votes.outcome[rows]), outcomes),
                pa.array(votes.evaluated_at_us[rows], type=pa.timestamp("us", tz="UTC")),
                *(
                    pa.array(style[:, j], type=pa.int32(), mask=~has)
                    for j in range(len(STYLE_COLUMNS))
                ),
            ],
            schema=VOTES_SCHEMA,
        )


def _int32(codes: np.ndarray) -> np.ndarray:
    return codes.astype(np.int32, copy=False)  # MODEL_ID's indices


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
    rows: list[Leaderboard],
    selection: list[str] | Literal["all"],
    style_targets: frozenset[str] = frozenset(),
) -> tuple[list[Leaderboard], list[Skipped]]:
    """The requested leaderboards in request order ("all": every one, by slug), and the rows our
    contract cannot carry, skipped with the reason (requested by name or not: the row, not the
    request, is at fault). A requested slug no row has is refused, and so is a style-controlled
    row (``style_targets``: it shows another leaderboard's votes, "all" leaves it out)."""
    if selection != "all":
        targets = [slug for slug in selection if slug in style_targets]
        if targets:
            raise InvalidInput(
                f"leaderboards: {targets[0]} is a style-controlled leaderboard"
                " (STYLE_CONTROL_LEADERBOARDS): request its base leaderboard"
            )
    known = {board.slug: board for board in rows if board.slug not in style_targets}
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


def rounds_batches(conn: psycopg.Connection, plan: FetchPlan) -> Iterator[pa.RecordBatch]:
    """The rounds of the plan's votes with both answers' texts, streamed in Arrow batches."""
    import pyarrow.csv as pacsv

    any_round = conn.execute("SELECT EXISTS (SELECT FROM api.battle_round)").fetchone()
    if not (any_round and any_round[0]):
        return  # nothing to count, and the join would still read every vote to find that out
    statement, params = answers_query(plan)
    with closing(copy_out(conn, statement, params, copy_format="csv")) as messages:
        first = next(messages, None)
        if first is None:  # no round at all: Arrow's reader refuses an empty file
            return
        reader = pacsv.open_csv(
            io.BufferedReader(CopyText(itertools.chain([first], messages)), buffer_size=1 << 20),
            read_options=pacsv.ReadOptions(
                column_names=["id", "answer1", "answer2"], block_size=8 << 20
            ),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={"id": pa.string(), "answer1": pa.string(), "answer2": pa.string()},
                # COPY's CSV writes NULL as an empty unquoted field and an empty text as "".
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
        yield from reader


PARALLEL_TUPLE_COST = 0.01
"""The planner's cost of passing one row from a parallel worker to the leader, for the shared
pass (PostgreSQL's default is 0.1). The statement returns every row it joins, so at the default the
transfer cost of millions of rows outweighs the joins it would share out and the plan stays
serial; at 0.01 the joins run in parallel workers: fetch/5M's COPY took 10.7 s instead of 16.9 s
on 2 cores. COPY hands rows on as they come, so what the default guards against (a slow consumer
of a Gather) does not happen here."""


def fetch_shared(conn: psycopg.Connection, plan: FetchPlan, catalogue: Catalogue) -> SharedVotes:
    """The shared pass: every vote any leaderboard of ``plan`` may count, with its answers'
    style; runs inside the transaction that read ``catalogue``."""
    conn.execute(
        sql.SQL("SET LOCAL parallel_tuple_cost = {}").format(sql.Literal(PARALLEL_TUPLE_COST))
    )
    statement, params = votes_query(plan)
    row = copy_row(len(plan.groups))
    with closing(copy_out(conn, statement, params)) as messages:
        votes = shared_votes(
            copy_row_batches(messages, BATCH_ROWS, row), catalogue, len(plan.groups)
        )
    return add_style(votes, rounds_batches(conn, plan))


def board_rows(votes: SharedVotes, member: np.ndarray, catalogue: Catalogue) -> BoardRows:
    """One leaderboard's rows of the shared pass (``member``) without the bad ones, which are
    counted by reason."""
    missing = (votes.model1 < 0) | (votes.model2 < 0)
    itself = (votes.model1 == votes.model2) & ~missing
    left_out = dict.fromkeys(LEFT_OUT_REASONS, 0)
    left_out[SELF_BATTLE] = int((member & itself).sum())
    left_out[MISSING_MODEL] = int((member & missing).sum())
    chosen = member & ~missing & ~itself
    # Counted a batch at a time: bincount casts its input to int64, and at 5M votes one call
    # over both model columns took 120 MB at the stage's peak.
    model_votes = np.zeros(catalogue.table.num_rows, dtype=np.int64)
    for start in range(0, len(chosen), BATCH_ROWS):
        rows = chosen[start : start + BATCH_ROWS]
        for column in (votes.model1, votes.model2):
            model_votes += np.bincount(
                column[start : start + BATCH_ROWS][rows], minlength=len(model_votes)
            )
    return BoardRows(
        chosen=chosen,
        vote_count=int(np.count_nonzero(chosen)),
        model_votes=model_votes,
        left_out=left_out,
    )


def write_votes(
    votes: SharedVotes, rows: BoardRows, catalogue: Catalogue, sink: SupportsWrite[bytes]
) -> None:
    """Write the leaderboard's ``votes.parquet`` into ``sink`` (a file opened for writing, e.g.
    ``storage.streamed``'s), a row group per ROW_GROUP_ROWS rows as they are made."""
    import pyarrow.parquet as pq

    with pq.ParquetWriter(
        sink,
        VOTES_SCHEMA,
        compression=storage.PARQUET_COMPRESSION,
        use_dictionary=DICTIONARY_COLUMNS,
    ) as writer:
        for batch in votes_table(votes, rows.chosen, catalogue):
            writer.write_batch(batch)
            del batch
            release_freed_memory()  # the row group's batch and pages: 10 MB less at fetch/5M's peak


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
    style_targets: frozenset[str] = frozenset(),
) -> tuple[list[LeaderboardBatch], list[Skipped], list[LeftOut]]:
    """Export every selected leaderboard's votes and models under ``prefix``; skip the rows our
    contract cannot carry and the sparse leaderboards, leave out and count the bad votes.
    Style-controlled rows (``style_targets``) are never selected (``resolve_leaderboards``)."""
    open_snapshot(conn)
    batches: list[LeaderboardBatch] = []
    left_out: list[LeftOut] = []
    with conn.transaction():
        rows = all_leaderboards(conn)
        check_overrides(filters, [board.slug for board in rows])
        boards, skipped = resolve_leaderboards(rows, selection, style_targets)
        catalogue = model_catalogue(conn)
        plan = plan_fetch([board.slug for board in boards], filters, run_at)
        if not boards:
            return batches, skipped, left_out
        votes = fetch_shared(conn, plan, catalogue)
        shared = votes.rows(catalogue)
        for board in boards:
            selected = board_rows(votes, plan.member(board.slug, shared), catalogue)
            release_freed_memory()  # the masks that chose the rows, before the writer's buffers
            left_out += left_out_counts(board.slug, selected.left_out)
            reason = sparse_reason(
                selected.vote_count, selected.model_count, min_battles, min_models,
                models_over_min_evals=selected.models_with(min_evals), min_evals=min_evals,
            )  # fmt: skip
            if reason is not None:
                skipped.append(Skipped(slug=board.slug, reason=reason))
                continue
            votes_uri = prefix.child(board.slug, VOTES_OBJECT)
            models_uri = prefix.child(board.slug, MODELS_OBJECT)
            with storage.streamed(votes_uri, storage.PARQUET_TYPE) as sink:
                write_votes(votes, selected, catalogue, sink)
            storage.put_parquet(models_uri, catalogue.table.filter(pa.array(selected.models_used)))
            batches.append(
                LeaderboardBatch(
                    slug=board.slug,
                    leaderboard_id=board.id,
                    name=board.name,
                    votes_uri=str(votes_uri),
                    models_uri=str(models_uri),
                    vote_count=selected.vote_count,
                    model_count=selected.model_count,
                )
            )
    return largest_first(batches), skipped, left_out


def largest_first(batches: list[LeaderboardBatch]) -> list[LeaderboardBatch]:
    """The leaderboards in the order the Map should start them: most votes first (then by slug).

    Ranking time grows with the votes, and the Map runs at most MaxConcurrency iterations at a
    time in item order; started last, the largest leaderboard would run alone at the end. Largest
    first is Graham's longest-processing-time rule: for independent jobs on identical workers it
    ends within 4/3 of the best schedule.
    """
    return sorted(batches, key=lambda b: (-b["vote_count"], b["slug"]))
