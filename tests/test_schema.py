"""BixArena's schema as the migrations create it: columns, constraints, cascades, reference data."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import psycopg
import pytest

from cli.main import main
from common import db
from local import postgres, schema

OVERALL_ID = "11111111-1111-1111-1111-111111111111"

# (table, column) -> (data type, nullable, default contains)
EXPECTED_COLUMNS = {
    "leaderboard": {
        "id": ("uuid", "NO"), "slug": ("character varying(100)", "NO"),
        "name": ("character varying(200)", "NO"), "description": ("text", "YES"),
        "created_at": ("timestamp with time zone", "NO"), "updated_at": ("timestamp with time zone", "NO"),
    },
    "model": {
        "id": ("uuid", "NO"), "slug": ("character varying(200)", "NO"), "name": ("character varying(300)", "NO"),
        "license": ("character varying(20)", "NO"), "active": ("boolean", "NO"),
        "alias": ("character varying(200)", "YES"), "external_link": ("character varying(300)", "NO"),
        "organization": ("character varying(200)", "YES"), "description": ("character varying(300)", "YES"),
        "api_model_name": ("character varying(300)", "NO"), "api_base": ("character varying(300)", "NO"),
        "created_at": ("timestamp with time zone", "NO"), "updated_at": ("timestamp with time zone", "NO"),
    },
    "battle": {
        "id": ("uuid", "NO"), "title": ("character varying(255)", "YES"), "user_id": ("uuid", "NO"),
        "model1_id": ("uuid", "NO"), "model2_id": ("uuid", "NO"),
        "created_at": ("timestamp with time zone", "NO"), "ended_at": ("timestamp with time zone", "YES"),
        "effective_validation_id": ("uuid", "YES"), "effective_categorization_id": ("uuid", "YES"),
    },
    "battle_evaluation": {
        "id": ("uuid", "NO"), "battle_id": ("uuid", "NO"), "outcome": ("character varying(20)", "NO"),
        "created_at": ("timestamp with time zone", "NO"),
    },
    "battle_validation": {
        "id": ("uuid", "NO"), "battle_id": ("uuid", "NO"), "method": ("character varying(100)", "NO"),
        "confidence": ("numeric(4,3)", "NO"), "is_biomedical": ("boolean", "NO"),
        "validated_by": ("uuid", "YES"), "reason": ("character varying(1000)", "YES"),
        "created_at": ("timestamp with time zone", "NO"),
    },
    "battle_categorization": {
        "id": ("uuid", "NO"), "battle_id": ("uuid", "NO"), "method": ("character varying(100)", "NO"),
        "categorized_by": ("uuid", "YES"), "reason": ("character varying(1000)", "YES"),
        "status": ("character varying(20)", "NO"), "created_at": ("timestamp with time zone", "NO"),
    },
    "battle_categorization_category": {
        "categorization_id": ("uuid", "NO"), "category": ("character varying(100)", "NO"),
    },
    "leaderboard_snapshot": {
        "id": ("uuid", "NO"), "leaderboard_id": ("uuid", "NO"),
        "snapshot_identifier": ("character varying(200)", "NO"), "description": ("text", "YES"),
        "visibility": ("character varying(20)", "NO"),
        "created_at": ("timestamp with time zone", "NO"), "updated_at": ("timestamp with time zone", "NO"),
    },
    "leaderboard_entry": {
        "id": ("uuid", "NO"), "leaderboard_id": ("uuid", "NO"), "model_id": ("uuid", "NO"),
        "snapshot_id": ("uuid", "NO"), "bt_score": ("numeric(10,6)", "NO"), "vote_count": ("integer", "NO"),
        "rank": ("integer", "NO"), "bootstrap_q025": ("numeric(10,6)", "NO"),
        "bootstrap_q975": ("numeric(10,6)", "NO"), "created_at": ("timestamp with time zone", "NO"),
    },
}  # fmt: skip

EXPECTED_FKS = {
    ("battle", "model1_id", "model", "CASCADE"),
    ("battle", "model2_id", "model", "CASCADE"),
    ("battle", "effective_validation_id", "battle_validation", "SET NULL"),
    ("battle", "effective_categorization_id", "battle_categorization", "SET NULL"),
    ("battle_evaluation", "battle_id", "battle", "CASCADE"),
    ("battle_validation", "battle_id", "battle", "CASCADE"),
    ("battle_categorization", "battle_id", "battle", "CASCADE"),
    ("battle_categorization_category", "categorization_id", "battle_categorization", "CASCADE"),
    ("leaderboard_snapshot", "leaderboard_id", "leaderboard", "CASCADE"),
    ("leaderboard_entry", "leaderboard_id", "leaderboard", "CASCADE"),
    ("leaderboard_entry", "model_id", "model", "CASCADE"),
    ("leaderboard_entry", "snapshot_id", "leaderboard_snapshot", "CASCADE"),
}


def _columns(conn: psycopg.Connection, table: str) -> dict[str, tuple[str, str]]:
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod),"
        " CASE WHEN a.attnotnull THEN 'NO' ELSE 'YES' END"
        " FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
        (f"api.{table}",),
    ).fetchall()
    return {name: (typ, nullable) for name, typ, nullable in rows}


def test_every_table_has_exactly_the_upstream_columns(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        for table, expected in EXPECTED_COLUMNS.items():
            assert _columns(conn, table) == expected, table


def test_ids_and_timestamps_have_upstream_defaults(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name, column_default FROM information_schema.columns"
            " WHERE table_schema = 'api' AND column_name IN ('id', 'created_at', 'updated_at')"
        ).fetchall()
    assert rows
    for table, column, default in rows:
        expected = "gen_random_uuid()" if column == "id" else "now()"
        assert default == expected, (table, column)


def test_foreign_keys_and_their_on_delete_actions(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT tc.table_name, kcu.column_name, ccu.table_name, rc.delete_rule"
            " FROM information_schema.table_constraints tc"
            " JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = tc.constraint_name"
            "  AND kcu.table_schema = tc.table_schema"
            " JOIN information_schema.constraint_column_usage ccu ON ccu.constraint_name = tc.constraint_name"
            " JOIN information_schema.referential_constraints rc ON rc.constraint_name = tc.constraint_name"
            " WHERE tc.table_schema = 'api' AND tc.constraint_type = 'FOREIGN KEY'"
        ).fetchall()
    assert set(rows) == EXPECTED_FKS


def test_entry_indexes_exist(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        defs = [r[0] for r in conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'api' AND tablename = 'leaderboard_entry'"
        )]  # fmt: skip
    for column in ("(leaderboard_id)", "(model_id)", "(snapshot_id)", "(rank)", "(bt_score DESC)"):
        assert any(d.endswith(column) for d in defs), column
    assert any("UNIQUE" in d and "(leaderboard_id, model_id, snapshot_id)" in d for d in defs)


def test_reference_leaderboards(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        rows = dict(conn.execute("SELECT slug, id::text FROM api.leaderboard").fetchall())
    assert rows["overall"] == OVERALL_ID
    assert rows["cancer-biology"] == "22222222-2222-2222-2222-222222222222"
    assert rows["neuroscience"] == "33333333-3333-3333-3333-333333333333"
    assert len(rows) == 21


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
def conn(database_url: str):  # type: ignore[no-untyped-def]
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
