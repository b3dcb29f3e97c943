"""BixArena's schema as the migrations create it, compared with upstream's final state.

Every expectation below is written out from upstream's Flyway migrations (V1..V12 in
sage-monorepo's apps/bixarena/api/.../db/migration/common/), not read back from local/sql: tables,
columns in physical order, defaults, constraints by name, the whole index set, and the reference
leaderboards. The catalog is what PostgreSQL reports, so any drift in local/sql fails here.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import psycopg
import pytest

from cli.main import main
from common import db
from common.contracts import REFERENCE_LEADERBOARDS
from local import postgres, schema

OVERALL_ID = "11111111-1111-1111-1111-111111111111"
TS = "timestamp with time zone"

# table -> column -> (type, nullable), in physical column order.
EXPECTED_COLUMNS: dict[str, dict[str, tuple[str, str]]] = {
    "leaderboard": {
        "id": ("uuid", "NO"), "slug": ("character varying(100)", "NO"),
        "name": ("character varying(200)", "NO"), "description": ("text", "YES"),
        "created_at": (TS, "NO"), "updated_at": (TS, "NO"),
    },
    "model": {
        "id": ("uuid", "NO"), "slug": ("character varying(200)", "NO"), "name": ("character varying(300)", "NO"),
        "license": ("character varying(20)", "NO"), "active": ("boolean", "NO"),
        "alias": ("character varying(200)", "YES"), "external_link": ("character varying(300)", "NO"),
        "organization": ("character varying(200)", "YES"), "description": ("character varying(300)", "YES"),
        "api_model_name": ("character varying(300)", "NO"), "api_base": ("character varying(300)", "NO"),
        "created_at": (TS, "NO"), "updated_at": (TS, "NO"),
    },
    "leaderboard_snapshot": {
        "id": ("uuid", "NO"), "leaderboard_id": ("uuid", "NO"),
        "snapshot_identifier": ("character varying(200)", "NO"), "description": ("text", "YES"),
        "created_at": (TS, "NO"), "visibility": ("character varying(20)", "NO"), "updated_at": (TS, "NO"),
    },
    "leaderboard_entry": {
        "id": ("uuid", "NO"), "leaderboard_id": ("uuid", "NO"), "model_id": ("uuid", "NO"),
        "snapshot_id": ("uuid", "NO"), "bt_score": ("numeric(10,6)", "NO"), "vote_count": ("integer", "NO"),
        "rank": ("integer", "NO"), "bootstrap_q025": ("numeric(10,6)", "NO"),
        "bootstrap_q975": ("numeric(10,6)", "NO"), "created_at": (TS, "NO"),
    },
    "example_prompt": {
        "id": ("uuid", "NO"), "question": ("character varying(160)", "NO"),
        "source": ("character varying(100)", "NO"), "active": ("boolean", "NO"), "created_at": (TS, "NO"),
        "effective_categorization_id": ("uuid", "YES"), "created_by": ("uuid", "YES"),
    },
    "example_prompt_categorization": {
        "id": ("uuid", "NO"), "prompt_id": ("uuid", "NO"), "method": ("character varying(100)", "NO"),
        "categorized_by": ("uuid", "YES"), "reason": ("character varying(1000)", "YES"),
        "status": ("character varying(20)", "NO"), "category": ("character varying(100)", "YES"),
        "created_at": (TS, "NO"),
    },
    "battle": {
        "id": ("uuid", "NO"), "title": ("character varying(255)", "YES"), "user_id": ("uuid", "NO"),
        "model1_id": ("uuid", "NO"), "model2_id": ("uuid", "NO"),
        "created_at": (TS, "NO"), "ended_at": (TS, "YES"),
        "effective_validation_id": ("uuid", "YES"), "effective_categorization_id": ("uuid", "YES"),
        "example_prompt_id": ("uuid", "YES"),
    },
    "message": {
        "id": ("uuid", "NO"), "role": ("character varying(20)", "NO"),
        "content": ("character varying(50000)", "NO"), "created_at": (TS, "NO"),
    },
    "battle_round": {
        "id": ("uuid", "NO"), "battle_id": ("uuid", "NO"), "round_number": ("integer", "NO"),
        "prompt_message_id": ("uuid", "NO"), "model1_message_id": ("uuid", "YES"),
        "model2_message_id": ("uuid", "YES"), "created_at": (TS, "NO"), "updated_at": (TS, "NO"),
    },
    "battle_evaluation": {
        "id": ("uuid", "NO"), "battle_id": ("uuid", "NO"), "outcome": ("character varying(20)", "NO"),
        "created_at": (TS, "NO"),
    },
    "battle_validation": {
        "id": ("uuid", "NO"), "battle_id": ("uuid", "NO"), "method": ("character varying(100)", "NO"),
        "confidence": ("numeric(4,3)", "NO"), "is_biomedical": ("boolean", "NO"),
        "validated_by": ("uuid", "YES"), "reason": ("character varying(1000)", "YES"),
        "created_at": (TS, "NO"),
    },
    "battle_categorization": {
        "id": ("uuid", "NO"), "battle_id": ("uuid", "NO"), "method": ("character varying(100)", "NO"),
        "categorized_by": ("uuid", "YES"), "reason": ("character varying(1000)", "YES"),
        "status": ("character varying(20)", "NO"), "created_at": (TS, "NO"),
    },
    "battle_categorization_category": {
        "categorization_id": ("uuid", "NO"), "category": ("character varying(100)", "NO"),
    },
}  # fmt: skip

# Defaults other than id = gen_random_uuid() and created_at/updated_at = now(), which every table has.
OTHER_DEFAULTS = {
    ("model", "active"): "false",
    ("example_prompt", "active"): "false",
    ("leaderboard_snapshot", "visibility"): "'private'::character varying",
    ("leaderboard_entry", "vote_count"): "0",
    ("battle_round", "round_number"): "1",
}

# constraint name -> (table, column, referenced table, ON DELETE); names are PostgreSQL's defaults,
# which upstream never overrides for a foreign key.
EXPECTED_FKS = {
    "leaderboard_snapshot_leaderboard_id_fkey": ("leaderboard_snapshot", "leaderboard_id", "leaderboard", "CASCADE"),
    "leaderboard_entry_leaderboard_id_fkey": ("leaderboard_entry", "leaderboard_id", "leaderboard", "CASCADE"),
    "leaderboard_entry_model_id_fkey": ("leaderboard_entry", "model_id", "model", "CASCADE"),
    "leaderboard_entry_snapshot_id_fkey": ("leaderboard_entry", "snapshot_id", "leaderboard_snapshot", "CASCADE"),
    "example_prompt_effective_categorization_id_fkey":
        ("example_prompt", "effective_categorization_id", "example_prompt_categorization", "SET NULL"),
    "example_prompt_categorization_prompt_id_fkey":
        ("example_prompt_categorization", "prompt_id", "example_prompt", "CASCADE"),
    "battle_model1_id_fkey": ("battle", "model1_id", "model", "CASCADE"),
    "battle_model2_id_fkey": ("battle", "model2_id", "model", "CASCADE"),
    "battle_effective_validation_id_fkey": ("battle", "effective_validation_id", "battle_validation", "SET NULL"),
    "battle_effective_categorization_id_fkey":
        ("battle", "effective_categorization_id", "battle_categorization", "SET NULL"),
    "battle_example_prompt_id_fkey": ("battle", "example_prompt_id", "example_prompt", "SET NULL"),
    "battle_round_battle_id_fkey": ("battle_round", "battle_id", "battle", "CASCADE"),
    "battle_round_prompt_message_id_fkey": ("battle_round", "prompt_message_id", "message", "CASCADE"),
    "battle_round_model1_message_id_fkey": ("battle_round", "model1_message_id", "message", "SET NULL"),
    "battle_round_model2_message_id_fkey": ("battle_round", "model2_message_id", "message", "SET NULL"),
    "battle_evaluation_battle_id_fkey": ("battle_evaluation", "battle_id", "battle", "CASCADE"),
    "battle_validation_battle_id_fkey": ("battle_validation", "battle_id", "battle", "CASCADE"),
    "battle_categorization_battle_id_fkey": ("battle_categorization", "battle_id", "battle", "CASCADE"),
    "battle_categorization_category_categorization_id_fkey":
        ("battle_categorization_category", "categorization_id", "battle_categorization", "CASCADE"),
}  # fmt: skip

# constraint name -> (table, column, the values an IN list allows; None for a range check).
EXPECTED_CHECKS = {
    "model_license_check": ("model", "license", ["open-source", "proprietary"]),
    "leaderboard_snapshot_visibility_check": ("leaderboard_snapshot", "visibility", ["public", "private"]),
    "chk_example_prompt_source": ("example_prompt", "source", ["pubmedqa", "bixbench", "bixarena"]),
    "chk_message_role": ("message", "role", ["system", "user", "assistant"]),
    "chk_battle_evaluation_outcome": ("battle_evaluation", "outcome", ["model1", "model2", "tie"]),
    "battle_validation_confidence_check": ("battle_validation", "confidence", None),
}  # fmt: skip


class Index(NamedTuple):
    name: str
    columns: tuple[str, ...]
    """Key columns in order, `` DESC`` when descending."""
    unique: bool
    predicate: str | None
    """A partial index's WHERE clause as PostgreSQL prints it."""
    constraint: str | None
    """``p`` or ``u`` when the index backs a PRIMARY KEY or UNIQUE constraint."""


def _pk(table: str, *columns: str) -> Index:
    return Index(f"{table}_pkey", columns or ("id",), True, None, "p")


def _ix(name: str, *columns: str, where: str | None = None) -> Index:
    return Index(name, columns, False, where, None)


EXPECTED_INDEXES: dict[str, set[Index]] = {
    "leaderboard": {_pk("leaderboard"), Index("leaderboard_slug_key", ("slug",), True, None, "u")},
    "model": {
        _pk("model"), Index("model_slug_key", ("slug",), True, None, "u"),
        _ix("idx_api_model_license", "license"), _ix("idx_api_model_active", "active"),
    },
    "leaderboard_snapshot": {
        _pk("leaderboard_snapshot"),
        Index("leaderboard_snapshot_leaderboard_id_snapshot_identifier_key",
              ("leaderboard_id", "snapshot_identifier"), True, None, "u"),
        _ix("idx_api_leaderboard_snapshot_leaderboard_id", "leaderboard_id"),
        _ix("idx_api_leaderboard_snapshot_created_at", "created_at DESC"),
        _ix("idx_api_leaderboard_snapshot_visibility", "visibility"),
    },
    "leaderboard_entry": {
        _pk("leaderboard_entry"),
        Index("leaderboard_entry_leaderboard_id_model_id_snapshot_id_key",
              ("leaderboard_id", "model_id", "snapshot_id"), True, None, "u"),
        _ix("idx_api_leaderboard_entry_leaderboard_id", "leaderboard_id"),
        _ix("idx_api_leaderboard_entry_model_id", "model_id"),
        _ix("idx_api_leaderboard_entry_snapshot_id", "snapshot_id"),
        _ix("idx_api_leaderboard_entry_rank", "rank"),
        _ix("idx_api_leaderboard_entry_bt_score", "bt_score DESC"),
    },
    "example_prompt": {
        _pk("example_prompt"),
        _ix("idx_api_example_prompt_source", "source"), _ix("idx_api_example_prompt_active", "active"),
        _ix("idx_example_prompt_effective_categorization", "effective_categorization_id"),
    },
    "example_prompt_categorization": {
        _pk("example_prompt_categorization"),
        _ix("idx_epc_prompt_id", "prompt_id"), _ix("idx_epc_category", "category"),
        _ix("idx_epc_status", "status"),
    },
    # No index on model1_id or model2_id upstream.
    "battle": {
        _pk("battle"),
        _ix("idx_api_battle_user_id", "user_id"),
        _ix("idx_api_battle_created_at", "created_at DESC"),
        _ix("idx_battle_user_ended", "user_id", "ended_at", where="(ended_at IS NOT NULL)"),
        _ix("idx_battle_effective_validation", "effective_validation_id"),
        _ix("idx_battle_effective_categorization", "effective_categorization_id"),
        _ix("idx_api_battle_example_prompt_id", "example_prompt_id", where="(example_prompt_id IS NOT NULL)"),
    },
    "message": {_pk("message"), _ix("idx_api_message_role", "role")},
    "battle_round": {
        _pk("battle_round"),
        _ix("idx_api_battle_round_battle_id", "battle_id"),
        _ix("idx_api_battle_round_round_number", "round_number"),
        _ix("idx_api_battle_round_created_at", "created_at DESC"),
    },
    "battle_evaluation": {
        _pk("battle_evaluation"),
        Index("unique_battle_evaluation", ("battle_id",), True, None, "u"),
        _ix("idx_api_battle_evaluation_outcome", "outcome"),
        _ix("idx_api_battle_evaluation_created_at", "created_at DESC"),
    },
    "battle_validation": {
        _pk("battle_validation"),
        Index("idx_battle_validation_battle_method", ("battle_id", "method"), True,
              "(validated_by IS NULL)", None),
        Index("idx_battle_validation_battle_method_reviewer", ("battle_id", "method", "validated_by"), True,
              "(validated_by IS NOT NULL)", None),
        _ix("idx_battle_validation_battle_id", "battle_id"),
    },
    "battle_categorization": {
        _pk("battle_categorization"), _ix("idx_bc_battle_id", "battle_id"), _ix("idx_bc_status", "status"),
    },
    "battle_categorization_category": {_pk("battle_categorization_category", "categorization_id", "category")},
}  # fmt: skip

# Upstream V2 (overall) and V9 (categories): id, slug, name, description.
EXPECTED_LEADERBOARDS = [
    (OVERALL_ID, "overall", "Overall", "Overall performance ranking of all LLMs"),
    ("44444444-4444-4444-4444-444444440001", "biochemistry", "Biochemistry", "Performance on biochemistry questions"),
    ("44444444-4444-4444-4444-444444440002", "bioengineering", "Bioengineering", "Performance on bioengineering questions"),
    ("44444444-4444-4444-4444-444444440003", "bioinformatics", "Bioinformatics", "Performance on bioinformatics questions"),
    ("22222222-2222-2222-2222-222222222222", "cancer-biology", "Cancer Biology", "Performance on cancer biology questions"),
    ("44444444-4444-4444-4444-444444440004", "cell-biology", "Cell Biology", "Performance on cell biology questions"),
    ("44444444-4444-4444-4444-444444440005", "clinical-trials", "Clinical Trials", "Performance on clinical trials questions"),
    ("44444444-4444-4444-4444-444444440006", "developmental-biology", "Developmental Biology",
     "Performance on developmental biology questions"),
    ("44444444-4444-4444-4444-444444440007", "epidemiology", "Epidemiology", "Performance on epidemiology questions"),
    ("44444444-4444-4444-4444-444444440008", "evolutionary-biology", "Evolutionary Biology",
     "Performance on evolutionary biology questions"),
    ("44444444-4444-4444-4444-444444440009", "genetics", "Genetics", "Performance on genetics questions"),
    ("44444444-4444-4444-4444-44444444000a", "genomics", "Genomics", "Performance on genomics questions"),
    ("44444444-4444-4444-4444-44444444000b", "immunology", "Immunology", "Performance on immunology questions"),
    ("44444444-4444-4444-4444-44444444000c", "microbiology", "Microbiology", "Performance on microbiology questions"),
    ("44444444-4444-4444-4444-44444444000d", "molecular-biology", "Molecular Biology",
     "Performance on molecular biology questions"),
    ("33333333-3333-3333-3333-333333333333", "neuroscience", "Neuroscience", "Performance on neuroscience questions"),
    ("44444444-4444-4444-4444-44444444000e", "pathology", "Pathology", "Performance on pathology questions"),
    ("44444444-4444-4444-4444-44444444000f", "pharmacology-and-toxicology", "Pharmacology and Toxicology",
     "Performance on pharmacology and toxicology questions"),
    ("44444444-4444-4444-4444-444444440010", "physiology", "Physiology", "Performance on physiology questions"),
    ("44444444-4444-4444-4444-444444440011", "synthetic-biology", "Synthetic Biology",
     "Performance on synthetic biology questions"),
    ("44444444-4444-4444-4444-444444440012", "systems-biology", "Systems Biology", "Performance on systems biology questions"),
]  # fmt: skip


# --- the catalog ---------------------------------------------------------------------------------
def _columns(conn: psycopg.Connection, table: str) -> dict[str, tuple[str, str]]:
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod),"
        " CASE WHEN a.attnotnull THEN 'NO' ELSE 'YES' END"
        " FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum",
        (f"api.{table}",),
    ).fetchall()
    return {name: (typ, nullable) for name, typ, nullable in rows}


_INDEXES = """
SELECT t.relname, i.relname, x.indisunique, pg_get_expr(x.indpred, x.indrelid), c.contype::text,
       am.amname,
       ARRAY(SELECT a.attname || CASE WHEN x.indoption[k.n - 1] & 1 = 1 THEN ' DESC' ELSE '' END
                            || CASE WHEN (x.indoption[k.n - 1] & 1) <> (x.indoption[k.n - 1] & 2) >> 1
                                    THEN ' NULLS ' || CASE WHEN x.indoption[k.n - 1] & 2 = 2
                                                           THEN 'FIRST' ELSE 'LAST' END
                                    ELSE '' END
             FROM unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
             JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
             ORDER BY k.n)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_am am ON am.oid = i.relam
LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.contype IN ('p', 'u')
WHERE t.relnamespace = 'api'::regnamespace
"""


def _indexes(conn: psycopg.Connection) -> dict[str, set[Index]]:
    found: dict[str, set[Index]] = {}
    for table, name, unique, predicate, contype, method, columns in conn.execute(_INDEXES):
        assert method == "btree", name
        found.setdefault(table, set()).add(Index(name, tuple(columns), unique, predicate, contype))
    return found


_CONSTRAINTS = """
SELECT c.conname, c.contype::text, t.relname, r.relname, c.confdeltype::text,
       pg_get_constraintdef(c.oid),
       ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, n)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY k.n)
FROM pg_constraint c
JOIN pg_class t ON t.oid = c.conrelid
LEFT JOIN pg_class r ON r.oid = c.confrelid
WHERE c.connamespace = 'api'::regnamespace AND c.contype IN ('f', 'c')
"""
_ON_DELETE = {
    "a": "NO ACTION",
    "r": "RESTRICT",
    "c": "CASCADE",
    "n": "SET NULL",
    "d": "SET DEFAULT",
}


# --- tests ---------------------------------------------------------------------------------------
def test_exactly_the_upstream_tables(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'api'"
        )}  # fmt: skip
    assert tables == set(EXPECTED_COLUMNS)


def test_every_table_has_exactly_the_upstream_columns_in_order(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        for table, expected in EXPECTED_COLUMNS.items():
            assert list(_columns(conn, table).items()) == list(expected.items()), table


def test_every_default_is_upstreams(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name, column_default FROM information_schema.columns"
            " WHERE table_schema = 'api' AND column_default IS NOT NULL"
        ).fetchall()
    expected = dict(OTHER_DEFAULTS)
    for table, columns in EXPECTED_COLUMNS.items():
        for column in columns:
            if column == "id":
                expected[(table, column)] = "gen_random_uuid()"
            elif column in ("created_at", "updated_at"):
                expected[(table, column)] = "now()"
    assert {(t, c): d for t, c, d in rows} == expected


def test_foreign_keys_by_name_with_their_on_delete_actions(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(_CONSTRAINTS).fetchall()
    fks = {
        name: (table, *columns, referenced, _ON_DELETE[action])
        for name, kind, table, referenced, action, _, columns in rows
        if kind == "f"
    }
    assert fks == EXPECTED_FKS


def test_check_constraints_by_name(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(_CONSTRAINTS).fetchall()
    checks = {
        name: (table, *columns, re.findall(r"'([^']*)'::", definition) or None)
        for name, kind, table, _, _, definition, columns in rows
        if kind == "c"
    }
    assert checks == EXPECTED_CHECKS


def test_exactly_the_upstream_indexes(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        found = _indexes(conn)
    assert set(found) == set(EXPECTED_INDEXES)
    for table, expected in EXPECTED_INDEXES.items():
        assert found[table] == expected, table


def test_reference_leaderboards_have_upstreams_ids_names_and_descriptions(
    database_url: str,
) -> None:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT id::text, slug, name, description FROM api.leaderboard ORDER BY slug"
        ).fetchall()
        overall = conn.execute(
            "SELECT created_at, updated_at FROM api.leaderboard WHERE slug = 'overall'"
        ).fetchone()
    assert rows == sorted(EXPECTED_LEADERBOARDS, key=lambda row: row[1])
    assert list(REFERENCE_LEADERBOARDS) == [row[1] for row in EXPECTED_LEADERBOARDS]
    assert overall == (
        datetime(2025, 8, 1, 10, tzinfo=UTC),
        datetime(2025, 8, 16, 14, 30, tzinfo=UTC),
    )


# --- behaviour ------------------------------------------------------------------------------------
def _model(conn: psycopg.Connection, slug: str = "m", **overrides: object) -> str:
    values = {"slug": slug, "name": slug.upper(), "license": "open-source", "external_link": "https://x",
              "api_model_name": slug, "api_base": "https://api"} | overrides  # fmt: skip
    cols = ", ".join(values)
    row = conn.execute(
        f"INSERT INTO api.model ({cols}) VALUES ({', '.join(['%s'] * len(values))}) RETURNING id",
        list(values.values()),
    ).fetchone()
    assert row
    return str(row[0])


def _battle(conn: psycopg.Connection, m1: str, m2: str) -> str:
    row = conn.execute(
        "INSERT INTO api.battle (user_id, model1_id, model2_id) VALUES (%s, %s, %s) RETURNING id",
        (uuid.uuid4(), m1, m2),
    ).fetchone()
    assert row
    return str(row[0])


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


def _refused(conn: psycopg.Connection, statement: str, params: tuple[object, ...] = ()) -> type:
    with pytest.raises(psycopg.errors.IntegrityError) as info:
        conn.execute(statement, params)
    return type(info.value)


def test_bad_outcome_is_refused(conn: psycopg.Connection) -> None:
    battle = _battle(conn, _model(conn, "a"), _model(conn, "b"))
    err = _refused(
        conn,
        "INSERT INTO api.battle_evaluation (battle_id, outcome) VALUES (%s, 'draw')",
        (battle,),
    )
    assert err is psycopg.errors.CheckViolation


def test_second_evaluation_for_a_battle_is_refused(conn: psycopg.Connection) -> None:
    battle = _battle(conn, _model(conn, "a"), _model(conn, "b"))
    conn.execute(
        "INSERT INTO api.battle_evaluation (battle_id, outcome) VALUES (%s, 'tie')", (battle,)
    )
    err = _refused(
        conn,
        "INSERT INTO api.battle_evaluation (battle_id, outcome) VALUES (%s, 'model1')",
        (battle,),
    )
    assert err is psycopg.errors.UniqueViolation


def test_duplicate_snapshot_identifier_per_leaderboard_is_refused(conn: psycopg.Connection) -> None:
    insert = (
        "INSERT INTO api.leaderboard_snapshot (leaderboard_id, snapshot_identifier) VALUES (%s, %s)"
    )
    conn.execute(insert, (OVERALL_ID, "snapshot_2026-01-01_02-00-00"))
    other = conn.execute("SELECT id FROM api.leaderboard WHERE slug = 'genetics'").fetchone()
    assert other
    conn.execute(insert, (other[0], "snapshot_2026-01-01_02-00-00"))
    assert (
        _refused(conn, insert, (OVERALL_ID, "snapshot_2026-01-01_02-00-00"))
        is psycopg.errors.UniqueViolation
    )


def test_snapshot_visibility_defaults_private_and_is_checked(conn: psycopg.Connection) -> None:
    row = conn.execute(
        "INSERT INTO api.leaderboard_snapshot (leaderboard_id, snapshot_identifier) VALUES (%s, 's') RETURNING visibility",
        (OVERALL_ID,),
    ).fetchone()
    assert row == ("private",)
    err = _refused(
        conn,
        "INSERT INTO api.leaderboard_snapshot (leaderboard_id, snapshot_identifier, visibility) VALUES (%s, 't', 'hidden')",
        (OVERALL_ID,),
    )
    assert err is psycopg.errors.CheckViolation


def test_model_constraints(conn: psycopg.Connection) -> None:
    _model(conn, "a")
    assert _refused(conn, "INSERT INTO api.model (slug, name, license, external_link, api_model_name, api_base)"
                    " VALUES ('a', 'A2', 'open-source', 'x', 'a', 'b')") is psycopg.errors.UniqueViolation  # fmt: skip
    assert _refused(conn, "INSERT INTO api.model (slug, name, license, external_link, api_model_name, api_base)"
                    " VALUES ('c', 'C', 'shareware', 'x', 'c', 'b')") is psycopg.errors.CheckViolation  # fmt: skip
    assert _refused(conn, "INSERT INTO api.model (slug, name, license, api_model_name, api_base)"
                    " VALUES ('d', 'D', 'proprietary', 'd', 'b')") is psycopg.errors.NotNullViolation  # fmt: skip
    row = conn.execute("SELECT active FROM api.model WHERE slug = 'a'").fetchone()
    assert row == (False,)


def test_leaderboard_slug_is_unique(conn: psycopg.Connection) -> None:
    err = _refused(conn, "INSERT INTO api.leaderboard (slug, name) VALUES ('overall', 'Again')")
    assert err is psycopg.errors.UniqueViolation


def test_validation_confidence_range_and_partial_uniques(conn: psycopg.Connection) -> None:
    battle = _battle(conn, _model(conn, "a"), _model(conn, "b"))
    insert = ("INSERT INTO api.battle_validation (battle_id, method, confidence, is_biomedical, validated_by)"
              " VALUES (%s, %s, %s, true, %s)")  # fmt: skip
    assert _refused(conn, insert, (battle, "auto", 1.5, None)) is psycopg.errors.CheckViolation
    conn.execute(insert, (battle, "auto", 0.9, None))
    assert _refused(conn, insert, (battle, "auto", 0.8, None)) is psycopg.errors.UniqueViolation
    reviewer = uuid.uuid4()
    conn.execute(insert, (battle, "auto", 0.8, reviewer))
    assert _refused(conn, insert, (battle, "auto", 0.7, reviewer)) is psycopg.errors.UniqueViolation
    conn.execute(insert, (battle, "auto", 0.7, uuid.uuid4()))


def test_categorization_category_primary_key(conn: psycopg.Connection) -> None:
    battle = _battle(conn, _model(conn, "a"), _model(conn, "b"))
    row = conn.execute(
        "INSERT INTO api.battle_categorization (battle_id, method, status) VALUES (%s, 'm', 'matched') RETURNING id",
        (battle,),
    ).fetchone()
    assert row
    insert = "INSERT INTO api.battle_categorization_category (categorization_id, category) VALUES (%s, %s)"
    conn.execute(insert, (row[0], "genetics"))
    assert _refused(conn, insert, (row[0], "genetics")) is psycopg.errors.UniqueViolation


def test_entry_is_unique_per_model_and_snapshot(conn: psycopg.Connection) -> None:
    model = _model(conn, "a")
    snap = conn.execute(
        "INSERT INTO api.leaderboard_snapshot (leaderboard_id, snapshot_identifier) VALUES (%s, 's') RETURNING id",
        (OVERALL_ID,),
    ).fetchone()
    assert snap
    insert = ("INSERT INTO api.leaderboard_entry (leaderboard_id, model_id, snapshot_id, bt_score, rank,"
              " bootstrap_q025, bootstrap_q975) VALUES (%s, %s, %s, %s, 1, 990, 1010)")  # fmt: skip
    conn.execute(insert, (OVERALL_ID, model, snap[0], 1000.123456))
    assert (
        _refused(conn, insert, (OVERALL_ID, model, snap[0], 1000)) is psycopg.errors.UniqueViolation
    )
    with pytest.raises(psycopg.errors.NumericValueOutOfRange):
        conn.execute(
            insert.replace("'s'", "'t'"), (OVERALL_ID, _model(conn, "b"), snap[0], 10_000.0)
        )


def test_deletes_cascade_and_set_null(conn: psycopg.Connection) -> None:
    a, b = _model(conn, "a"), _model(conn, "b")
    battle = _battle(conn, a, b)
    conn.execute(
        "INSERT INTO api.battle_evaluation (battle_id, outcome) VALUES (%s, 'tie')", (battle,)
    )
    row = conn.execute(
        "INSERT INTO api.battle_validation (battle_id, method, confidence, is_biomedical)"
        " VALUES (%s, 'auto', 0.9, true) RETURNING id",
        (battle,),
    ).fetchone()
    assert row
    conn.execute(
        "UPDATE api.battle SET effective_validation_id = %s WHERE id = %s", (row[0], battle)
    )
    conn.execute("DELETE FROM api.battle_validation WHERE id = %s", (row[0],))
    assert conn.execute(
        "SELECT effective_validation_id FROM api.battle WHERE id = %s", (battle,)
    ).fetchone() == (None,)
    conn.execute("DELETE FROM api.model WHERE id = %s", (a,))
    assert conn.execute("SELECT count(*) FROM api.battle_evaluation").fetchone() == (0,)


def test_rounds_messages_and_example_prompts(conn: psycopg.Connection) -> None:
    battle = _battle(conn, _model(conn, "a"), _model(conn, "b"))

    def message(role: str, content: str) -> str:
        row = conn.execute(
            "INSERT INTO api.message (role, content) VALUES (%s, %s) RETURNING id", (role, content)
        ).fetchone()
        assert row
        return str(row[0])

    assert (
        _refused(conn, "INSERT INTO api.message (role, content) VALUES ('tool', 'x')")
        is psycopg.errors.CheckViolation
    )
    prompt, answer1, answer2 = (
        message("user", "q" * 50_000),
        message("assistant", "a"),
        message("assistant", "b"),
    )
    insert_round = ("INSERT INTO api.battle_round (battle_id, prompt_message_id, model1_message_id,"
                    " model2_message_id) VALUES (%s, %s, %s, %s) RETURNING round_number")  # fmt: skip
    assert conn.execute(insert_round, (battle, prompt, answer1, answer2)).fetchone() == (1,)
    # Upstream has no UNIQUE (battle_id, round_number): a second round 1 is accepted.
    conn.execute(insert_round, (battle, message("user", "again"), None, None))
    conn.execute("DELETE FROM api.message WHERE id = %s", (answer1,))
    assert conn.execute(
        "SELECT count(*) FROM api.battle_round WHERE model1_message_id IS NULL"
    ).fetchone() == (2,)
    conn.execute("DELETE FROM api.message WHERE id = %s", (prompt,))
    assert conn.execute("SELECT count(*) FROM api.battle_round").fetchone() == (1,)

    assert (
        _refused(
            conn, "INSERT INTO api.example_prompt (question, source) VALUES ('q', 'wikipedia')"
        )
        is psycopg.errors.CheckViolation
    )
    row = conn.execute(
        "INSERT INTO api.example_prompt (question, source) VALUES (%s, 'bixarena') RETURNING id, active",
        ("q" * 160,),
    ).fetchone()
    assert row and row[1] is False
    example = row[0]
    with pytest.raises(psycopg.errors.StringDataRightTruncation):
        conn.execute(
            "INSERT INTO api.example_prompt (question, source) VALUES (%s, 'bixarena')",
            ("q" * 161,),
        )
    categorization = conn.execute(
        "INSERT INTO api.example_prompt_categorization (prompt_id, method, status, category)"
        " VALUES (%s, 'm', 'matched', 'genetics') RETURNING id",
        (example,),
    ).fetchone()
    assert categorization
    conn.execute(
        "UPDATE api.example_prompt SET effective_categorization_id = %s WHERE id = %s",
        (categorization[0], example),
    )
    conn.execute("UPDATE api.battle SET example_prompt_id = %s WHERE id = %s", (example, battle))
    conn.execute("DELETE FROM api.example_prompt_categorization")
    assert conn.execute(
        "SELECT effective_categorization_id FROM api.example_prompt"
    ).fetchone() == (None,)
    conn.execute("DELETE FROM api.example_prompt WHERE id = %s", (example,))
    assert conn.execute(
        "SELECT example_prompt_id FROM api.battle WHERE id = %s", (battle,)
    ).fetchone() == (None,)
    conn.execute("DELETE FROM api.battle WHERE id = %s", (battle,))
    assert conn.execute("SELECT count(*) FROM api.battle_round").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM api.message").fetchone() == (2,)


def test_migrations_are_applied_once(database_url: str) -> None:
    assert schema.apply_migrations(database_url) == []
    assert schema.ensure_schema(database_url) == []


def test_db_init_command_creates_the_schema_in_an_empty_database(pg_admin_url: str) -> None:
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS cli_init_test WITH (FORCE)")
        admin.execute("CREATE DATABASE cli_init_test")
    url = postgres.with_database(pg_admin_url, "cli_init_test")
    assert main(["db", "init", "--database-url", url]) == 0
    assert schema.schema_exists(url)
    assert main(["db", "init", "--database-url", url]) == 0


def test_unreachable_database_is_a_named_transient_error() -> None:
    from common.errors import DatabaseUnavailable

    with (
        pytest.raises(DatabaseUnavailable) as info,
        db.connect("postgresql://u:s3cret@127.0.0.1:1/x"),
    ):
        pass
    assert "s3cret" not in str(info.value)


# --- a schema change never leaves an old database in use -----------------------------------------
HISTORY = "public.leaderboard_pipeline_migrations"


def _drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _has_marker(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT count(*) FROM api.leaderboard WHERE slug = 'marker'"
        ).fetchone() == (1,)


@pytest.mark.parametrize(
    "tamper",
    [
        f"UPDATE {HISTORY} SET checksum = 'edited' WHERE name LIKE 'V1%'",
        f"ALTER TABLE {HISTORY} DROP COLUMN checksum",
        f"INSERT INTO {HISTORY} (name, checksum) VALUES ('V0__removed.sql', 'x')",
    ],
    ids=["file-edited", "history-without-checksums", "file-removed"],
)
def test_a_database_migrated_from_other_files_is_stale_and_rebuilt(
    pg_admin_url: str, tamper: str
) -> None:
    name = f"stale_{os.getpid()}"
    url = postgres.create_database(pg_admin_url, name, replace=True)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO api.leaderboard (slug, name) VALUES ('marker', 'Marker')")
    assert schema.is_current(url)
    postgres.create_database(pg_admin_url, name)
    assert _has_marker(url), "a current database is kept as it is"

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(tamper)
    assert not schema.is_current(url)
    with pytest.raises(schema.SchemaChanged, match="outdated schema; recreate it"):
        schema.apply_migrations(url)
    assert main(["db", "init", "--database-url", url]) == 2
    postgres.create_database(pg_admin_url, name)
    assert schema.is_current(url) and not _has_marker(url)
    _drop_database(pg_admin_url, name)


def test_the_template_follows_the_migration_files(
    pg_admin_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sql_dir = tmp_path / "sql"
    shutil.copytree(schema.SQL_DIR, sql_dir)
    monkeypatch.setattr(schema, "SQL_DIR", sql_dir)
    kept = f"kept_{os.getpid()}"
    before = postgres.template_name()
    url = postgres.create_database(pg_admin_url, kept, replace=True)

    with (sql_dir / "V1__bixarena_schema.sql").open("a") as sql:
        sql.write("\nCREATE TABLE api.added_upstream (id INTEGER);\n")
    after = postgres.template_name()
    assert after != before
    fresh = postgres.create_database(pg_admin_url, f"fresh_{os.getpid()}", replace=True)
    with psycopg.connect(pg_admin_url) as admin:
        templates = {r[0] for r in admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'leaderboard\\_template%'"
        )}  # fmt: skip
    assert templates == {after}, "the old template is dropped, the new one built from the files"
    for database in (fresh, postgres.create_database(pg_admin_url, kept)):
        with psycopg.connect(database) as conn:
            assert conn.execute("SELECT to_regclass('api.added_upstream')").fetchone() == (
                "api.added_upstream",
            )
    assert postgres.create_database(pg_admin_url, kept) == url
    _drop_database(pg_admin_url, kept)
    _drop_database(pg_admin_url, f"fresh_{os.getpid()}")
