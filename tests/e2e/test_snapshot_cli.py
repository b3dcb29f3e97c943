"""``leaderboard snapshots list|show|publish|unpublish|delete`` against the real test database:
what each prints, what it changes, and the one-line refusals (exit 2) for bad arguments."""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cli import main
from common.contracts import snapshot_description

MODELS = [("model-a", "Model A"), ("model-b", "Model B"), ("model-c", "Model C")]


@dataclass(frozen=True)
class Arena:
    url: str
    old: str
    """overall, public, two days old: what BixArena shows for overall."""
    new: str
    """overall, private, one day old."""
    genomics: str
    """genomics, public, today."""


@pytest.fixture
def arena(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Arena:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with psycopg.connect(database_url) as conn:
        models = {
            slug: conn.execute(
                "INSERT INTO api.model (slug, name, license, external_link, api_model_name,"
                " api_base) VALUES (%s, %s, 'open-source', 'https://example.org', %s,"
                " 'https://example.org/v1') RETURNING id",
                (slug, name, slug),
            ).fetchone()[0]  # type: ignore[index]
            for slug, name in MODELS
        }

        def snapshot(
            slug: str, identifier: str, visibility: str, age: str, scores: list[float]
        ) -> str:
            board, snapshot_id = conn.execute(
                "INSERT INTO api.leaderboard_snapshot (leaderboard_id, snapshot_identifier,"
                " description, visibility, created_at, updated_at)"
                " SELECT id, %s, %s, %s, now() - %s::interval, now() - %s::interval"
                " FROM api.leaderboard WHERE slug = %s RETURNING leaderboard_id, id",
                (identifier, snapshot_description(90, len(scores)), visibility, age, age, slug),
            ).fetchone()  # type: ignore[misc]
            for rank, (model, score) in enumerate(zip(models.values(), scores, strict=False), 1):
                conn.execute(
                    "INSERT INTO api.leaderboard_entry (leaderboard_id, model_id, snapshot_id,"
                    " bt_score, vote_count, rank, bootstrap_q025, bootstrap_q975)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    (board, model, snapshot_id, score, 60 - rank, rank, score - 20, score + 20),
                )
            return str(snapshot_id)

        old = snapshot(
            "overall", "snapshot_2026-01-01_06-00-00", "public", "2 days", [1100, 1000, 900]
        )
        new = snapshot(
            "overall", "snapshot_2026-01-02_06-00-00", "private", "1 day", [1050.5, 999.25, 950.125]
        )
        genomics = snapshot(
            "genomics", "snapshot_2026-01-03_06-00-00", "public", "0 days", [1010, 990]
        )
    return Arena(url=database_url, old=old, new=new, genomics=genomics)


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, err
    return err


def _rows(out: str) -> list[list[str]]:
    return [line.split()[:5] for line in out.splitlines()[2:]]


def _one_row(url: str, sql: str, *params: object) -> tuple[Any, ...]:
    """The one row ``sql`` returns (an INSERT ... RETURNING is committed)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(sql, params).fetchone()
    assert row is not None
    return tuple(row)


def _visibility(url: str, snapshot_id: str) -> tuple[str, bool]:
    visibility, touched = _one_row(
        url,
        "SELECT visibility, updated_at > created_at + interval '1 hour'"
        " FROM api.leaderboard_snapshot WHERE id = %s",
        snapshot_id,
    )
    return visibility, touched


def _count(url: str, sql: str, *params: object) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql, params).fetchone()
    return int(row[0]) if row else 0


# --- list -----------------------------------------------------------------------------------------
def test_list_is_newest_first_with_entry_counts(
    arena: Arena, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(capsys, "snapshots", "list", "--database-url", arena.url)
    assert (code, err) == (0, "")
    assert out.splitlines()[0].split() == [
        "id", "identifier", "leaderboard", "visibility", "created", "(UTC)", "entries", "description",
    ]  # fmt: skip
    assert [row[:4] for row in _rows(out)] == [
        [arena.genomics, "snapshot_2026-01-03_06-00-00", "genomics", "public"],
        [arena.new, "snapshot_2026-01-02_06-00-00", "overall", "private"],
        [arena.old, "snapshot_2026-01-01_06-00-00", "overall", "public"],
    ]
    counts = [line.split()[6] for line in out.splitlines()[2:]]
    assert counts == ["2", "3", "3"]
    assert "Leaderboard snapshot with 90 evaluations and 3 ranked models" in out


def test_list_filters_and_limits(arena: Arena, capsys: pytest.CaptureFixture[str]) -> None:
    url = ["--database-url", arena.url]
    _, out, _ = _cli(capsys, "snapshots", "list", *url, "--leaderboard", "overall")
    assert [row[0] for row in _rows(out)] == [arena.new, arena.old]
    _, out, _ = _cli(capsys, "snapshots", "list", *url, "--visibility", "public")
    assert [row[0] for row in _rows(out)] == [arena.genomics, arena.old]
    _, out, _ = _cli(capsys, "snapshots", "list", *url, "--limit", "1")
    assert [row[0] for row in _rows(out)] == [arena.genomics]
    _, out, _ = _cli(capsys, "snapshots", "list", *url, "--leaderboard", "neuroscience")
    assert out == "no snapshots\n"


def test_list_as_json_reads_the_database_url_from_the_environment(
    arena: Arena, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", arena.url)
    code, out, _ = _cli(
        capsys, "snapshots", "list", "--format", "json", "--leaderboard", "genomics"
    )
    assert code == 0
    [listed] = json.loads(out)
    assert listed["id"] == arena.genomics
    assert listed["leaderboard_slug"] == "genomics"
    assert listed["entry_count"] == 2


# --- show -----------------------------------------------------------------------------------------
def test_show_prints_the_entries(arena: Arena, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(capsys, "snapshots", "show", arena.new, "--database-url", arena.url)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("overall snapshot_2026-01-02_06-00-00 (private), created ")
    assert lines[0].endswith(" UTC, 3 entries")
    assert lines[1] == (
        f"  id {arena.new}  Leaderboard snapshot with 90 evaluations and 3 ranked models"
    )
    # A private snapshot: what BixArena shows instead, how to publish it, moves against it.
    assert lines[2:5] == [
        "  private, awaiting review: BixArena shows snapshot_2026-01-01_06-00-00 for overall"
        " until it is published",
        f"  publish with: leaderboard snapshots publish {arena.new}",
        "  moves against snapshot_2026-01-01_06-00-00, the public snapshot before it"
        " (what BixArena shows)",
    ]
    assert lines[5].split() == ["rank", "model", "score", "95%", "CI", "votes", "move"]
    assert [line.split() for line in lines[7:]] == [
        ["1", "Model", "A", "1050.5", "1030.5", "..", "1070.5", "59", "="],
        ["2", "Model", "B", "999.2", "979.2", "..", "1019.2", "58", "="],
        ["3", "Model", "C", "950.1", "930.1", "..", "970.1", "57", "="],
    ]


def _add_snapshot(url: str, identifier: str, visibility: str, age: str, order: list[str]) -> str:
    """An overall snapshot ``age`` old ranking the models named (slugs) in that order."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "INSERT INTO api.leaderboard_snapshot (leaderboard_id, snapshot_identifier,"
            " visibility, created_at) SELECT id, %s, %s, now() - %s::interval"
            " FROM api.leaderboard WHERE slug = 'overall' RETURNING leaderboard_id, id",
            (identifier, visibility, age),
        ).fetchone()
        assert row is not None
        for rank, slug in enumerate(order, 1):
            conn.execute(
                "INSERT INTO api.leaderboard_entry (leaderboard_id, model_id, snapshot_id,"
                " bt_score, vote_count, rank, bootstrap_q025, bootstrap_q975)"
                " SELECT %s, id, %s, %s, 40, %s, 900, 1100 FROM api.model WHERE slug = %s",
                (row[0], row[1], 1000 - rank, rank, slug),
            )
    return str(row[1])


def test_show_measures_moves_against_the_public_snapshot_before_it_in_data_order(
    arena: Arena, capsys: pytest.CaptureFixture[str]
) -> None:
    url = ["--database-url", arena.url]
    preview = _add_snapshot(
        arena.url, "snapshot_2026-01-03_06-00-00", "private", "1 hour", ["model-b", "model-a"]
    )
    _, out, _ = _cli(capsys, "snapshots", "show", preview, *url)
    assert [line.split()[-1] for line in out.splitlines()[7:]] == ["↑1", "↓1"]
    # The old public one, and the private one after it: neither is measured against the other.
    _, out, _ = _cli(capsys, "snapshots", "show", arena.old, *url)
    assert out.splitlines()[2:4] == [
        "  BixArena shows it for overall",
        "  no public snapshot before it: no moves",
    ]
    assert out.splitlines()[4].split()[-1] == "votes"

    code, out, _ = _cli(capsys, "snapshots", "publish", preview, *url)
    assert code == 0
    _, raw, _ = _cli(capsys, "snapshots", "show", arena.old, "--format", "json", *url)
    old = json.loads(raw)
    assert (old["standing"], old["shown_snapshot_identifier"], old["superseded"]) == (
        "history", "snapshot_2026-01-03_06-00-00", True,
    )  # fmt: skip
    assert old["compared_with"] is None
    assert [e["previous_rank"] for e in old["entries"]] == [None, None, None]
    _, raw, _ = _cli(capsys, "snapshots", "show", preview, "--format", "json", *url)
    shown = json.loads(raw)
    assert (shown["standing"], shown["compared_with"]) == (
        "live", "snapshot_2026-01-01_06-00-00",
    )  # fmt: skip
    assert [(e["model_slug"], e["rank"], e["previous_rank"]) for e in shown["entries"]] == [
        ("model-b", 1, 2),
        ("model-a", 2, 1),
    ]


def test_publishing_a_snapshot_older_than_the_one_shown_makes_it_history(
    arena: Arena, capsys: pytest.CaptureFixture[str]
) -> None:
    url = ["--database-url", arena.url]
    older = _add_snapshot(
        arena.url, "snapshot_2025-12-31_06-00-00", "private", "3 days", ["model-c", "model-a"]
    )
    _, out, _ = _cli(capsys, "snapshots", "show", older, *url)
    assert out.splitlines()[2:5] == [
        "  private: overall already shows snapshot_2026-01-01_06-00-00 with newer votes, so"
        " publishing it would only add it to the history",
        f"  publish with: leaderboard snapshots publish {older}",
        "  no public snapshot before it: no moves",
    ]
    code, out, err = _cli(capsys, "snapshots", "publish", older, *url)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "overall snapshot_2025-12-31_06-00-00 is now public, published as history: overall"
        " already shows snapshot_2026-01-01_06-00-00 with newer votes",
        "BixArena now shows snapshot_2026-01-01_06-00-00 for overall",
    ]
    # In its place in the history: the old public snapshot now moves against it.
    _, out, _ = _cli(capsys, "snapshots", "show", arena.old, *url)
    assert out.splitlines()[3] == (
        "  moves against snapshot_2025-12-31_06-00-00, the public snapshot before it"
    )
    assert [line.split()[-1] for line in out.splitlines()[6:]] == ["↑1", "new", "↓2"]


def test_show_by_identifier_and_as_json(arena: Arena, capsys: pytest.CaptureFixture[str]) -> None:
    _, by_id, _ = _cli(capsys, "snapshots", "show", arena.old, "--database-url", arena.url)
    code, by_name, _ = _cli(
        capsys,
        "snapshots",
        "show",
        "snapshot_2026-01-01_06-00-00",
        "--leaderboard",
        "overall",
        "--database-url",
        arena.url,
    )
    assert code == 0 and by_name == by_id
    _, raw, _ = _cli(
        capsys, "snapshots", "show", arena.genomics, "--format", "json", "--database-url", arena.url
    )
    document = json.loads(raw)
    assert document["snapshot_identifier"] == "snapshot_2026-01-03_06-00-00"
    assert [(e["model_slug"], e["rank"], e["bt_score"]) for e in document["entries"]] == [
        ("model-a", 1, "1010.000000"),
        ("model-b", 2, "990.000000"),
    ]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["snapshot_2026-01-01_06-00-00"], "is not a snapshot id (UUID); to name a snapshot by"),
        (["not-a-uuid"], "SNAPSHOT: 'not-a-uuid' is not a snapshot id (UUID)"),
        (["00000000-0000-0000-0000-000000000000"], "no snapshot 00000000-0000-0000-0000-000000000000"),
        (["snapshot_2020-01-01_00-00-00", "--leaderboard", "overall"], "overall has no snapshot 'snapshot_2020"),
        (["snapshot_2026-01-01_06-00-00", "--leaderboard", "astrology"], "no leaderboard 'astrology'"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("action", ["show", "publish", "unpublish", "delete"])
def test_unknown_or_malformed_snapshots_are_refused_in_one_line(
    arena: Arena,
    capsys: pytest.CaptureFixture[str],
    action: str,
    arguments: list[str],
    message: str,
) -> None:
    confirmed = ["--yes"] if action == "delete" else []
    code, out, err = _cli(
        capsys, "snapshots", action, *arguments, *confirmed, "--database-url", arena.url
    )
    assert (code, out) == (2, "")
    assert message in _one_line(err)
    assert _count(arena.url, "SELECT count(*) FROM api.leaderboard_snapshot") == 3


def test_a_snapshot_id_of_another_leaderboard_is_refused(
    arena: Arena, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _cli(
        capsys,
        "snapshots",
        "publish",
        arena.new,
        "--leaderboard",
        "genomics",
        "--database-url",
        arena.url,
    )
    assert code == 2
    assert f"SNAPSHOT: {arena.new} belongs to overall, not genomics" in _one_line(err)
    assert _visibility(arena.url, arena.new) == ("private", False)


# --- publish and unpublish ------------------------------------------------------------------------
def test_publish_and_unpublish_change_what_bixarena_shows(
    arena: Arena, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(capsys, "snapshots", "publish", arena.new, "--database-url", arena.url)
    assert (code, err) == (0, "")
    assert out == (
        "overall snapshot_2026-01-02_06-00-00 is now public\n"
        "BixArena now shows snapshot_2026-01-02_06-00-00 for overall\n"
    )
    visibility, touched = _visibility(arena.url, arena.new)
    assert (visibility, touched) == ("public", True)

    code, out, _ = _cli(
        capsys,
        "snapshots",
        "unpublish",
        "snapshot_2026-01-02_06-00-00",
        "--leaderboard",
        "overall",
        "--database-url",
        arena.url,
    )
    assert code == 0
    assert out.splitlines() == [
        "overall snapshot_2026-01-02_06-00-00 is now private",
        "BixArena now shows snapshot_2026-01-01_06-00-00 for overall",
    ]
    assert _visibility(arena.url, arena.new)[0] == "private"


# --- delete ---------------------------------------------------------------------------------------
def _entries(url: str, snapshot_id: str) -> int:
    return _count(
        url, "SELECT count(*) FROM api.leaderboard_entry WHERE snapshot_id = %s", snapshot_id
    )


def test_delete_without_a_terminal_needs_yes(
    arena: Arena, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    code, out, err = _cli(capsys, "snapshots", "delete", arena.old, "--database-url", arena.url)
    assert (code, out) == (2, "")
    assert "standard input is not a terminal to confirm on; pass --yes" in _one_line(err)
    assert _entries(arena.url, arena.old) == 3

    code, out, _ = _cli(
        capsys, "snapshots", "delete", arena.old, "--yes", "--database-url", arena.url
    )
    assert code == 0
    assert out.splitlines() == [
        f"deleted overall snapshot_2026-01-01_06-00-00 (public, 3 entries, id {arena.old})",
        "BixArena now shows no snapshot for overall",
    ]
    assert _count(arena.url, "SELECT count(*) FROM api.leaderboard_snapshot WHERE id = %s", arena.old) == 0  # fmt: skip
    assert _entries(arena.url, arena.old) == 0
    assert _entries(arena.url, arena.new) == 3


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "deleted"), [("y\n", True), ("yes\n", True), ("n\n", False), ("\n", False), ("", False)])  # fmt: skip
def test_delete_asks_on_a_terminal(
    arena: Arena,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    deleted: bool,
) -> None:
    monkeypatch.setattr("sys.stdin", _Terminal(answer))
    code, out, _ = _cli(capsys, "snapshots", "delete", arena.genomics, "--database-url", arena.url)
    assert out.startswith(
        "delete genomics snapshot_2026-01-03_06-00-00 (public, 2 entries, "
        f"id {arena.genomics}) and its entries? [y/N] "
    )
    assert code == (0 if deleted else 1)
    assert _entries(arena.url, arena.genomics) == (0 if deleted else 2)
    assert ("nothing deleted" in out) is not deleted


# --- the database ---------------------------------------------------------------------------------
def test_no_database_is_a_one_line_error(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # fmt: skip
    monkeypatch.delenv("DATABASE_URL", raising=False)
    code, out, err = _cli(capsys, "snapshots", "list", "--state-dir", str(tmp_path))
    assert (code, out) == (2, "")
    assert _one_line(err) == (
        "leaderboard: error: no database: give --database-url URL (or set DATABASE_URL), or run "
        f"`leaderboard run` (make run) first to create the local one in {tmp_path}/postgres\n"
    )
    code, _, err = _cli(capsys, "snapshots", "list", "--database-url", "not a url")
    assert code == 2
    assert "--database-url: not a PostgreSQL URL or connection string" in _one_line(err)


def test_an_unreachable_database_fails_without_showing_the_password(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = "postgresql://operator:s3cret-Passw0rd@127.0.0.1:9/bixarena?connect_timeout=2"
    code, out, err = _cli(capsys, "snapshots", "delete", "snapshot_x", "--leaderboard", "overall", "--yes", "--database-url", url)  # fmt: skip
    assert (code, out) == (1, "")
    assert "DatabaseUnavailable: cannot connect to PostgreSQL" in _one_line(err)
    assert "s3cret-Passw0rd" not in err + out + caplog.text


def _bare_snapshot(url: str, identifier: str) -> str:
    """A snapshot without entries of the overall leaderboard; returns its id."""
    (snapshot_id,) = _one_row(
        url,
        "INSERT INTO api.leaderboard_snapshot (leaderboard_id, snapshot_identifier)"
        " VALUES ('11111111-1111-1111-1111-111111111111', %s) RETURNING id::text",
        identifier,
    )
    return str(snapshot_id)


def test_visibility_and_delete_commit_even_inside_an_open_transaction(database_url: str) -> None:
    import psycopg

    from cli import snapshots

    snapshot_id = _bare_snapshot(database_url, "snapshot_2026-01-01_00-00-00")
    steps = [
        (lambda c: snapshots.set_visibility(c, snapshot_id, "public"), [("public",)]),
        (lambda c: snapshots.delete_snapshot(c, snapshot_id), []),
    ]
    for change, expected in steps:
        conn = psycopg.connect(database_url)
        conn.execute("SELECT 1")  # a transaction is now open on this connection
        change(conn)
        conn.close()  # closing without commit rolls back whatever was not committed
        with psycopg.connect(database_url) as other:
            state = other.execute("SELECT visibility FROM api.leaderboard_snapshot").fetchall()
        assert state == expected


def test_delete_waits_for_a_publish_of_the_same_leaderboard(database_url: str) -> None:
    """Publish holds the leaderboard's lock while it reads the previous snapshot's entries and
    what BixArena shows; a delete waits for it, as a visibility change does."""
    import threading

    from cli import snapshots as operator
    from common import snapshots

    leaderboard = "11111111-1111-1111-1111-111111111111"
    snapshot_id = _bare_snapshot(database_url, "snapshot_2026-01-02_00-00-00")
    deleted = threading.Event()

    def delete() -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            operator.delete_snapshot(conn, snapshot_id)
        deleted.set()

    with psycopg.connect(database_url) as publishing, publishing.transaction():
        snapshots.lock_leaderboard(publishing, leaderboard)
        worker = threading.Thread(target=delete)
        worker.start()
        assert not deleted.wait(0.5), "the delete went ahead while publish held the lock"
    worker.join(10)
    assert deleted.is_set()
    gone = "SELECT count(*) FROM api.leaderboard_snapshot WHERE id = %s"
    assert _count(database_url, gone, snapshot_id) == 0
