"""A synthetic BixArena: models with hidden strengths, battles, answers, votes, validations,
categories.

Used by tests (to check that the ranking recovers the true strengths), by the local run (to seed
the embedded database) and by the benchmarks. The generation is vectorized and seeded; rows reach
PostgreSQL through COPY, never row-by-row inserts.

Answers (``local.answers``): each model has a mean answer length and a taste for markdown; a
battle has one to three rounds of both models' answers, a few battles miss an answer. Voters
prefer the longer answer by a known amount: with d = (t1 - t2) / (t1 + t2 + 1) the normalized
difference of the two sides' tokens summed over rounds (``common.answer_style``), a decided vote
goes to model1 with probability

    1 / (1 + exp(-(ln(10) (elo1 - elo2) / 400 + LENGTH_EFFECT d))),

so an answer twice as long as the other (d = 1/3) multiplies its odds by exp(LENGTH_EFFECT / 3).
Markdown has no effect of its own (it only travels with length: verbose models use more of it).
A battle with a missing answer is voted on strengths alone. ``true_elo`` is the strength without
style: the plain ranking drifts from it towards the verbose models, a style-controlled one should
not.
"""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypedDict

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from common.answer_style import STYLE_COLUMNS, style_counts
from common.contracts import REFERENCE_LEADERBOARDS
from common.db import connect
from local.answers import ANSWER_TOKENS, PROMPTS, Answers, battle_style, draw_answers, model_styles

CATEGORIES: tuple[str, ...] = tuple(s for s in REFERENCE_LEADERBOARDS if s != "overall")
"""The categories battles fall into: the category leaderboards' slugs, in slug order."""
OUTCOMES: tuple[str, str, str] = ("model1", "model2", "tie")
CATEGORIZATION_STATUSES: tuple[str, str, str] = ("matched", "abstained", "failed")
_ORGS = ("Acme AI", "BioLM Labs", "Helix Research", "OpenMed", "Synapse", "Genomix", "Cortex")

TIE_RATE = 0.10
ELO_SD = 100.0
BIOMEDICAL_RATE = 0.90
UNVALIDATED_RATE = 0.03
UNVOTED_RATE = 0.05
STATUS_P = (0.80, 0.15, 0.05)
SECOND_CATEGORY_RATE = 0.30
INACTIVE_RATE = 0.20
WINDOW_DAYS = 120
LENGTH_EFFECT = 1.0
"""Natural log-odds per unit of the normalized length difference d (see the module docstring)."""
ROWS_PER_COPY = 50_000
"""Battles whose answers are made and written at once (the texts of one batch are in memory)."""


@dataclass(frozen=True)
class SimModel:
    slug: str
    name: str
    organization: str
    license: str
    active: bool
    true_elo: float
    """Hidden strength on the reported scale (400·r + 1000 has mean 1000)."""
    verbosity: float
    """Mean answer length in tokens."""
    markdown: float
    """Share of the answer's units that carry markdown (0 to 0.6)."""


@dataclass(frozen=True)
class Arena:
    """Battles as parallel arrays (one row per battle); model indices refer to ``models``."""

    models: list[SimModel]
    model1: np.ndarray
    model2: np.ndarray
    outcome: np.ndarray
    """0 = model1 won, 1 = model2 won, 2 = tie, -1 = no vote."""
    validated: np.ndarray
    is_biomedical: np.ndarray
    status: np.ndarray
    """Index into CATEGORIZATION_STATUSES."""
    category1: np.ndarray
    category2: np.ndarray
    """Index into CATEGORIES, or -1 when the battle has one category only."""
    created_at: np.ndarray
    """Seconds before ``now`` at which the battle started."""
    answers: Answers
    seed: int

    @property
    def n_battles(self) -> int:
        return len(self.model1)

    def true_strengths(self) -> dict[str, float]:
        return {m.name: m.true_elo for m in self.models}

    def style(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per battle the style counts of model1's and model2's answers summed over rounds
        (shape (battles, 4) each, ``common.answer_style.FEATURES`` order) and whether it has
        them (a round, and no missing answer); from the answers' units, not their texts."""
        return battle_style(self.answers, self.n_battles)


class WriteCounts(TypedDict):
    models: int
    battles: int
    evaluations: int


def make_models(count: int, seed: int, answer_tokens: float = ANSWER_TOKENS) -> list[SimModel]:
    """Model catalogue: names depend on the index only, strengths and styles on the seed."""
    rng = np.random.default_rng([seed, 1])
    elo = rng.normal(0.0, ELO_SD, size=count)
    elo = elo - elo.mean() + 1000.0
    active = rng.random(count) >= INACTIVE_RATE
    verbosity, markdown = model_styles(count, rng, answer_tokens)
    return [
        SimModel(
            slug=f"sim-model-{i:03d}",
            name=f"SimModel {i:03d}",
            organization=_ORGS[i % len(_ORGS)],
            license="open-source" if i % 3 else "proprietary",
            active=bool(active[i]),
            true_elo=float(elo[i]),
            verbosity=float(verbosity[i]),
            markdown=float(markdown[i]),
        )
        for i in range(count)
    ]


def simulate_arena(
    models: int,
    battles: int,
    seed: int = 0,
    *,
    battle_seed: int | None = None,
    answer_tokens: float = ANSWER_TOKENS,
    with_answers: bool = True,
) -> Arena:
    """Simulate ``battles`` battles between ``models`` models.

    ``battle_seed`` draws new battles for the same models and strengths (e.g. a later day's votes).
    ``answer_tokens``: the median over models of the mean answer length (shorter answers make a
    big arena cheaper to write and to read). ``with_answers=False``: battles without rounds (the
    votes alone, as benchmarks of the votes pass want them), voted on strength alone.
    """
    if models < 2:
        raise ValueError("an arena needs at least 2 models")
    catalogue = make_models(models, seed, answer_tokens)
    day = battle_seed if battle_seed is not None else seed
    rng = np.random.default_rng([seed, 2, day])
    # Popular models meet more often: pick each side with lognormal popularity weights.
    popularity = rng.lognormal(0.0, 0.8, size=models)
    popularity /= popularity.sum()
    m1 = rng.choice(models, size=battles, p=popularity)
    m2 = rng.choice(models, size=battles, p=popularity)
    same = m1 == m2
    while same.any():
        m2[same] = rng.choice(models, size=int(same.sum()), p=popularity)
        same = m1 == m2
    answers = draw_answers(
        np.random.default_rng([seed, 3, day]),
        m1[: battles if with_answers else 0],
        m2[: battles if with_answers else 0],
        np.array([m.verbosity for m in catalogue]),
        np.array([m.markdown for m in catalogue]),
    )
    side1, side2, has_style = battle_style(answers, battles)
    d = (side1[:, 0] - side2[:, 0]) / (side1[:, 0] + side2[:, 0] + 1.0)
    elo = np.array([m.true_elo for m in catalogue])
    logit = np.log(10.0) * (elo[m1] - elo[m2]) / 400.0 + np.where(has_style, LENGTH_EFFECT * d, 0)
    p1 = 1.0 / (1.0 + np.exp(-logit))
    u = rng.random(battles)
    outcome = np.where(u < TIE_RATE, 2, np.where(rng.random(battles) < p1, 0, 1)).astype(np.int8)
    outcome[rng.random(battles) < UNVOTED_RATE] = -1
    category1 = rng.choice(len(CATEGORIES), size=battles, p=_zipf(len(CATEGORIES)))
    category2 = rng.choice(len(CATEGORIES), size=battles)
    category2 = np.where(
        (rng.random(battles) < SECOND_CATEGORY_RATE) & (category2 != category1), category2, -1
    )
    return Arena(
        models=catalogue,
        model1=m1.astype(np.int32),
        model2=m2.astype(np.int32),
        outcome=outcome,
        validated=rng.random(battles) >= UNVALIDATED_RATE,
        is_biomedical=rng.random(battles) < BIOMEDICAL_RATE,
        status=rng.choice(3, size=battles, p=STATUS_P).astype(np.int8),
        category1=category1.astype(np.int16),
        category2=category2.astype(np.int16),
        created_at=np.sort(rng.random(battles))[::-1] * WINDOW_DAYS * 86400.0,
        answers=answers,
        seed=seed,
    )


def _zipf(n: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** 0.7
    return weights / weights.sum()


def text_style(arena: Arena) -> tuple[np.ndarray, np.ndarray]:
    """Per battle the 8 style counts (STYLE_COLUMNS order) computed from the generated texts by
    the fetch stage's rule (``common.answer_style.style_counts``), and whether it has them."""
    answers = arena.answers
    counts = np.zeros((answers.count, 4), dtype=np.int64)
    step = ROWS_PER_COPY * 3
    for start in range(0, answers.count, step):
        stop = min(start + step, answers.count)
        counts[start:stop] = style_counts(answers.texts(start, stop))
    totals = np.zeros((arena.n_battles, 8), dtype=np.int64)
    for side in (1, 2):
        mine = answers.side == side
        for j in range(4):
            totals[:, (side - 1) * 4 + j] = np.bincount(
                answers.battle[mine], weights=counts[mine, j], minlength=arena.n_battles
            ).astype(np.int64)
    _, _, has = battle_style(answers, arena.n_battles)
    return totals.astype(np.int32), has


def votes_table(arena: Arena) -> pa.Table:
    """The voted battles as (model_a, model_b, outcome) with model names and the answers' style
    counts (STYLE_COLUMNS, null for a battle with a missing answer), no filter applied."""
    voted = arena.outcome >= 0
    names = pa.array([m.name for m in arena.models])
    style, has = text_style(arena)
    return pa.table(
        {
            "model_a": pa.DictionaryArray.from_arrays(pa.array(arena.model1[voted]), names),
            "model_b": pa.DictionaryArray.from_arrays(pa.array(arena.model2[voted]), names),
            "outcome": pa.DictionaryArray.from_arrays(
                pa.array(arena.outcome[voted].astype(np.int32)), pa.array(list(OUTCOMES))
            ),
            **{
                name: pa.array(style[voted, j], type=pa.int32(), mask=~has[voted])
                for j, name in enumerate(STYLE_COLUMNS)
            },
        }
    )


def write_parquet(arena: Arena, path: str) -> None:
    pq.write_table(votes_table(arena), path)


def uuids(rng: np.random.Generator, n: int) -> pa.Array:
    """``n`` random version-4 UUID strings in ascending order, generated without a Python loop.

    Sorted because B-tree inserts in key order append to the rightmost leaf: loading a million
    rows whose keys arrive in random order is several times slower once indexes outgrow memory.
    """
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    nibbles = np.empty((n, 32), dtype=np.uint8)
    nibbles[:, 0::2] = digits[raw >> 4]
    nibbles[:, 1::2] = digits[raw & 0x0F]
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    for start, stop, offset in ((0, 8, 0), (8, 12, 1), (12, 16, 2), (16, 20, 3), (20, 32, 4)):
        text[:, start + offset : stop + offset] = nibbles[:, start:stop]
    return pa.array(np.sort(text.reshape(-1).view("S36"))).cast(pa.string())


def _copy(conn: psycopg.Connection, table: str, data: pa.Table) -> None:
    buffer = io.BytesIO()
    pacsv.write_csv(data, buffer, pacsv.WriteOptions(include_header=False))
    columns = ", ".join(data.column_names)
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT csv)") as copy,
    ):
        copy.write(buffer.getbuffer())


def _timestamps(now: datetime, seconds_ago: np.ndarray) -> pa.Array:
    micros = (np.int64(now.timestamp() * 1e6) - (seconds_ago * 1e6).astype(np.int64)).astype(
        "datetime64[us]"
    )
    return pa.array(micros, type=pa.timestamp("us", tz="UTC"))


def write_database(arena: Arena, url: str, *, now: datetime | None = None) -> WriteCounts:
    """Insert the arena into BixArena's schema (models upserted by slug) in one transaction."""
    now = now or datetime.now(UTC)
    # Row ids are fresh on every write, so the same arena can be written twice (a later day).
    rng = np.random.default_rng()
    n = arena.n_battles
    with connect(url) as conn:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO api.model (slug, name, license, active, external_link, organization,"
                " api_model_name, api_base) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (slug) DO NOTHING",
                [
                    (m.slug, m.name, m.license, m.active, f"https://example.org/models/{m.slug}",
                     m.organization, m.slug, "https://api.example.org/v1")
                    for m in arena.models
                ],
            )  # fmt: skip
            cur.execute(
                "SELECT slug, id::text FROM api.model WHERE slug = ANY(%s)",
                ([m.slug for m in arena.models],),
            )
            id_by_slug = dict(cur.fetchall())
        model_ids = pa.array([id_by_slug[m.slug] for m in arena.models])
        # Battles and their validations point at each other. A superuser loads the generated (and
        # consistent) rows with FK triggers off in one pass; anyone else pays for an UPDATE.
        superuser = conn.execute(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        one_pass = bool(superuser and superuser[0])
        conn.execute("SET LOCAL synchronous_commit = off")
        if one_pass:
            conn.execute("SET LOCAL session_replication_role = replica")
        battle_ids = uuids(rng, n)
        validated = np.flatnonzero(arena.validated)
        val_ids = uuids(rng, len(validated))
        validation_of_battle = np.full(n, -1)
        validation_of_battle[validated] = np.arange(len(validated))
        effective_validation = val_ids.take(
            pa.array(validation_of_battle, mask=validation_of_battle < 0)
        )
        cat_ids = uuids(rng, n)
        users = uuids(rng, max(1, n // 20))
        created = _timestamps(now, arena.created_at)
        ended = _timestamps(now, np.maximum(arena.created_at - 180.0, 0.0))
        _copy(conn, "api.battle", pa.table({
            "id": battle_ids,
            "user_id": users.take(pa.array(rng.integers(0, len(users), size=n))),
            "model1_id": model_ids.take(pa.array(arena.model1)),
            "model2_id": model_ids.take(pa.array(arena.model2)),
            "created_at": created,
            "ended_at": ended,
            **({"effective_validation_id": effective_validation, "effective_categorization_id": cat_ids}
               if one_pass else {}),
        }))  # fmt: skip
        voted = np.flatnonzero(arena.outcome >= 0)
        _copy(conn, "api.battle_evaluation", pa.table({
            "battle_id": battle_ids.take(pa.array(voted)),
            "outcome": pa.array(np.array(OUTCOMES)[arena.outcome[voted]]),
            "created_at": ended.take(pa.array(voted)),
        }))  # fmt: skip
        _copy(conn, "api.battle_validation", pa.table({
            "id": val_ids,
            "battle_id": battle_ids.take(pa.array(validated)),
            "method": pa.array(["sim-classifier-v1"] * len(validated)),
            "confidence": pa.array(np.round(rng.uniform(0.5, 1.0, len(validated)), 3)),
            "is_biomedical": pa.array(arena.is_biomedical[validated]),
        }))  # fmt: skip
        _copy(conn, "api.battle_categorization", pa.table({
            "id": cat_ids,
            "battle_id": battle_ids,
            "method": pa.array(["sim-categorizer-v1"] * n),
            "status": pa.array(np.array(CATEGORIZATION_STATUSES)[arena.status]),
        }))  # fmt: skip
        matched = arena.status == 0
        second = matched & (arena.category2 >= 0)
        rows = np.concatenate([np.flatnonzero(matched), np.flatnonzero(second)])
        cats = np.concatenate([arena.category1[matched], arena.category2[second]])
        _copy(conn, "api.battle_categorization_category", pa.table({
            "categorization_id": cat_ids.take(pa.array(rows)),
            "category": pa.array(np.array(CATEGORIES)[cats]),
        }))  # fmt: skip
        _write_rounds(conn, arena.answers, battle_ids, rng, created)
        if not one_pass:
            _set_effective_pointers(conn, battle_ids, effective_validation, cat_ids)
        conn.commit()
    return WriteCounts(models=len(arena.models), battles=n, evaluations=len(voted))


def _set_effective_pointers(
    conn: psycopg.Connection, battles: pa.Array, validations: pa.Array, categorizations: pa.Array
) -> None:
    conn.execute(
        "CREATE TEMP TABLE sim_effective (battle_id uuid PRIMARY KEY, validation_id uuid,"
        " categorization_id uuid) ON COMMIT DROP"
    )
    _copy(conn, "sim_effective", pa.table(
        {"battle_id": battles, "validation_id": validations, "categorization_id": categorizations}
    ))  # fmt: skip
    conn.execute(
        "UPDATE api.battle b SET effective_validation_id = e.validation_id,"
        " effective_categorization_id = e.categorization_id"
        " FROM sim_effective e WHERE b.id = e.battle_id"
    )


def _write_rounds(
    conn: psycopg.Connection,
    answers: Answers,
    battle_ids: pa.Array,
    rng: np.random.Generator,
    created: pa.Array,
) -> None:
    """The battles' rounds and their messages (a prompt, then both answers), ROWS_PER_COPY
    battles at a time so that only one batch of texts is in memory."""
    n_answers = answers.count
    if not n_answers:
        return
    rounds = n_answers // 2  # answers come in (side 1, side 2) pairs, round by round
    first = np.arange(rounds) * 2
    battle_of_round = answers.battle[first]
    stops = np.searchsorted(battle_of_round, np.arange(0, len(battle_ids), ROWS_PER_COPY)[1:])
    bounds = [0, *stops.tolist(), rounds]
    prompts = pa.array(PROMPTS)
    # Ids ascending across batches too: every B-tree insert appends (see ``uuids``).
    round_ids = uuids(rng, rounds)
    message_ids = uuids(rng, rounds + int((~answers.missing).sum()))
    used = 0
    for lo, hi in itertools.pairwise(bounds):
        if hi == lo:
            continue
        count = hi - lo
        missing = answers.missing[2 * lo : 2 * hi]
        present = np.flatnonzero(~missing)
        ids = message_ids.slice(used, count + len(present))
        used += count + len(present)
        prompt_ids = ids.slice(0, count)
        # Answer j of the batch gets the id of its rank among the present ones.
        slot = np.full(2 * count, -1)
        slot[present] = count + np.arange(len(present))
        texts = answers.texts(2 * lo, 2 * hi)
        battles = pa.array(battle_of_round[lo:hi])
        _copy(conn, "api.message", pa.table({
            "id": ids,
            "role": pa.array(["user"] * count + ["assistant"] * len(present)),
            "content": pa.concat_arrays([
                prompts.take(pa.array(battle_of_round[lo:hi] % len(PROMPTS))),
                texts.take(pa.array(present)),
            ]),
        }))  # fmt: skip
        side1 = ids.take(pa.array(slot[0::2], mask=missing[0::2]))
        side2 = ids.take(pa.array(slot[1::2], mask=missing[1::2]))
        _copy(conn, "api.battle_round", pa.table({
            "id": round_ids.slice(lo, count),
            "battle_id": battle_ids.take(battles),
            "round_number": pa.array(answers.round[first[lo:hi]].astype(np.int32)),
            "prompt_message_id": prompt_ids,
            "model1_message_id": side1,
            "model2_message_id": side2,
            "created_at": created.take(battles),
        }))  # fmt: skip
