"""Data problems that real arenas produce, written on purpose into a BixArena database.

``leaderboard simulate --with-bad-data`` and ``leaderboard run --with-bad-data`` add every problem
below to the database, so that a local run shows what the pipeline does with each
(docs/state-machine.md, "Data problems and faults"); the end-to-end tests write them one by one.

- ``no-upsets``: a category leaderboard ``no-upsets`` whose 40 votes between 4 new models are a
  ladder (a > b > c > d, never an upset): enough votes and models for fetch, but no group of
  models both won and lost against each other, so nobody can be ranked.
- ``thin-evidence``: a category leaderboard ``thin-evidence``: one new model beats ten others
  3 times each and three of those beat each other in a cycle: the only group that can be compared
  has 5 evaluations per model, fewer than ``MIN_EVALS`` (default 10), so nobody is ranked.
- ``self-battle``: a vote in ``genetics`` (and so ``overall``) where a model faces itself.
- ``vanished-model``: a vote in ``genetics`` naming a model id that is not in ``api.model`` (the
  foreign key cascades, so only a load with its checks off leaves one; a superuser only).
- ``nameless-model``: an arena model whose name is empty.
- ``unusable-leaderboards``: leaderboard rows ``cancer_biology`` and ``Genomics`` (slugs our
  contract cannot carry) and ``no-name`` (an empty name), each with the votes of a category
  (``cancer-biology``, ``genomics``, ``immunology``), as a categorizer emitting those slugs gives.

Each writer leaves the database as it found it when its problem is already there, so a second
``--with-bad-data`` adds nothing. Every vote is biomedical, matched to its category, and
evaluated one hour before ``now``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import psycopg

from common.db import connect

SELF_BATTLE_CATEGORY = "genetics"
UNUSABLE_LEADERBOARDS: tuple[tuple[str, str, str], ...] = (
    ("cancer_biology", "Cancer biology", "cancer-biology"),
    ("Genomics", "Genomics", "genomics"),
    ("no-name", "", "immunology"),
)
"""(slug, name, the category whose battles are categorized into this slug too)."""


def _model(conn: psycopg.Connection, slug: str, name: str) -> str:
    conn.execute(
        "INSERT INTO api.model (slug, name, license, active, external_link, api_model_name,"
        " api_base) VALUES (%s, %s, 'open-source', true, %s, %s, 'https://api.example.org/v1')"
        " ON CONFLICT (slug) DO NOTHING",
        (slug, name, f"https://example.org/models/{slug}", slug),
    )
    row = conn.execute("SELECT id::text FROM api.model WHERE slug = %s", (slug,)).fetchone()
    assert row is not None
    return str(row[0])


def _new_leaderboard(conn: psycopg.Connection, slug: str, name: str) -> bool:
    """Insert the leaderboard row; False when it was already there."""
    row = conn.execute(
        "INSERT INTO api.leaderboard (slug, name) VALUES (%s, %s)"
        " ON CONFLICT (slug) DO NOTHING RETURNING id",
        (slug, name),
    ).fetchone()
    return row is not None


def _vote(
    conn: psycopg.Connection, model1: str, model2: str, outcome: str, category: str, at: datetime
) -> None:
    """One battle with its evaluation, a biomedical validation and a matched categorization."""
    battle = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO api.battle (id, user_id, model1_id, model2_id, created_at, ended_at)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (battle, str(uuid.uuid4()), model1, model2, at - timedelta(minutes=3), at),
    )
    conn.execute(
        "INSERT INTO api.battle_evaluation (battle_id, outcome, created_at) VALUES (%s, %s, %s)",
        (battle, outcome, at),
    )
    validation = conn.execute(
        "INSERT INTO api.battle_validation (battle_id, method, confidence, is_biomedical)"
        " VALUES (%s, 'bad-data', 0.9, true) RETURNING id",
        (battle,),
    ).fetchone()
    categorization = conn.execute(
        "INSERT INTO api.battle_categorization (battle_id, method, status)"
        " VALUES (%s, 'bad-data', 'matched') RETURNING id",
        (battle,),
    ).fetchone()
    assert validation is not None and categorization is not None
    conn.execute(
        "INSERT INTO api.battle_categorization_category (categorization_id, category)"
        " VALUES (%s, %s)",
        (categorization[0], category),
    )
    conn.execute(
        "UPDATE api.battle SET effective_validation_id = %s, effective_categorization_id = %s"
        " WHERE id = %s",
        (validation[0], categorization[0], battle),
    )


def _some_model(conn: psycopg.Connection) -> str:
    """An existing model (the first by slug), or a new one in an empty database."""
    row = conn.execute("SELECT id::text FROM api.model ORDER BY slug LIMIT 1").fetchone()
    return str(row[0]) if row else _model(conn, "bad-data-lonely", "Lonely model")


def no_upsets(conn: psycopg.Connection, at: datetime) -> str | None:
    if not _new_leaderboard(conn, "no-upsets", "No upsets"):
        return None
    ladder = [_model(conn, f"ladder-{c}", f"Ladder {c.upper()}") for c in "abcd"]
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    for n in range(40):
        winner, loser = pairs[n % len(pairs)]
        _vote(conn, ladder[winner], ladder[loser], "model1", "no-upsets", at)
    return "no-upsets: 4 models, 40 votes, a > b > c > d without an upset"


def thin_evidence(conn: psycopg.Connection, at: datetime) -> str | None:
    if not _new_leaderboard(conn, "thin-evidence", "Thin evidence"):
        return None
    leader = _model(conn, "thin-leader", "Thin leader")
    others = [_model(conn, f"thin-{i:02d}", f"Thin {i:02d}") for i in range(10)]
    for other in others:
        for _ in range(3):
            _vote(conn, leader, other, "model1", "thin-evidence", at)
    for a, b in ((0, 1), (1, 2), (2, 0)):
        _vote(conn, others[a], others[b], "model1", "thin-evidence", at)
    return "thin-evidence: the only comparable group (3 models) has 5 evaluations per model"


def self_battle(conn: psycopg.Connection, at: datetime) -> str | None:
    if conn.execute("SELECT 1 FROM api.battle WHERE model1_id = model2_id LIMIT 1").fetchone():
        return None
    model = _some_model(conn)
    _vote(conn, model, model, "model1", SELF_BATTLE_CATEGORY, at)
    return f"self-battle: a vote in {SELF_BATTLE_CATEGORY} where a model faces itself"


def vanished_model(conn: psycopg.Connection, at: datetime) -> str | None:
    dangling = conn.execute(
        "SELECT 1 FROM api.battle b WHERE NOT EXISTS"
        " (SELECT 1 FROM api.model m WHERE m.id = b.model2_id) LIMIT 1"
    ).fetchone()
    if dangling:
        return None
    superuser = conn.execute(
        "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if not (superuser and superuser[0]):
        return "vanished-model: not written (turning foreign key checks off needs a superuser)"
    conn.execute("SET LOCAL session_replication_role = replica")
    _vote(conn, _some_model(conn), str(uuid.uuid4()), "model2", SELF_BATTLE_CATEGORY, at)
    conn.execute("SET LOCAL session_replication_role = origin")
    return f"vanished-model: a vote in {SELF_BATTLE_CATEGORY} naming a model not in api.model"


def nameless_model(conn: psycopg.Connection, at: datetime) -> str | None:
    row = conn.execute(
        "UPDATE api.model SET name = '' WHERE id = (SELECT id FROM api.model"
        " WHERE slug LIKE 'sim-model-%' ORDER BY slug LIMIT 1) AND name <> '' RETURNING slug"
    ).fetchone()
    return f"nameless-model: {row[0]} has an empty name" if row else None


def unusable_leaderboards(conn: psycopg.Connection, at: datetime) -> str | None:
    added: list[str] = []
    for slug, name, twin in UNUSABLE_LEADERBOARDS:
        if not _new_leaderboard(conn, slug, name):
            continue
        # A categorizer that emits this slug: the battles of `twin` carry it as well.
        conn.execute(
            "INSERT INTO api.battle_categorization_category (categorization_id, category)"
            " SELECT categorization_id, %s FROM api.battle_categorization_category"
            " WHERE category = %s",
            (slug, twin),
        )
        added.append(f"{slug!r}" + (" (empty name)" if not name else f" ({twin}'s votes)"))
    return "unusable-leaderboards: " + ", ".join(added) if added else None


Writer = Callable[[psycopg.Connection, datetime], "str | None"]
PROBLEMS: dict[str, Writer] = {
    "no-upsets": no_upsets,
    "thin-evidence": thin_evidence,
    "self-battle": self_battle,
    "vanished-model": vanished_model,
    "nameless-model": nameless_model,
    "unusable-leaderboards": unusable_leaderboards,
}


def write_bad_data(url: str, *problems: str, now: datetime) -> list[str]:
    """Write the named problems (all when none is named) in one transaction; returns a line per
    problem written."""
    unknown = sorted(set(problems) - set(PROBLEMS))
    if unknown:
        raise ValueError(f"unknown data problem(s): {', '.join(unknown)}")
    at = now - timedelta(hours=1)
    written: list[str] = []
    with connect(url) as conn:
        for name in problems or tuple(PROBLEMS):
            line = PROBLEMS[name](conn, at)
            if line is not None:
                written.append(line)
        conn.commit()
    return written
