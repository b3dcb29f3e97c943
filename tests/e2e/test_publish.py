"""The publish stage: one transaction, exactly one snapshot per run and leaderboard (retries,
concurrent duplicates, a crash before COMMIT), what BixArena's API then reads, movements against
the previous public snapshot, bad input, and the operator's snapshot functions."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from cli import snapshots as cli_snapshots
from common import publish as publish_service
from common import snapshots
from common.contracts import PublishResult, parse_timestamp, snapshot_description
from common.errors import (
    ArtifactCorrupt,
    ArtifactMissing,
    DatabaseUnavailable,
    InvalidInput,
    NotEnoughData,
    SnapshotNotFound,
)
from common.movements import RankedModel, movements
from common.rank import parse_entries
from common.scores import as_decimal
from common.storage import parse_s3_uri
from local.faults import CLOSED_DATABASE_URL
from stages.fetch.handler import handler as fetch
from stages.publish.handler import handler as publish_stage
from stages.rank.handler import handler as rank
from tests.stage_fixtures import fetch_event, object_bytes, payload, put_object, rank_events

UPSTREAM_LATEST = (
    "SELECT s.id::text, s.snapshot_identifier, s.description FROM api.leaderboard_snapshot s"
    " JOIN api.leaderboard l ON l.id = s.leaderboard_id"
    " WHERE l.slug = %s AND s.visibility = 'public' ORDER BY s.created_at DESC LIMIT 1"
)
UPSTREAM_ENTRIES = (
    "SELECT e.model_id::text, e.rank, e.bt_score, e.bootstrap_q025, e.bootstrap_q975, e.vote_count"
    " FROM api.leaderboard_entry e WHERE e.snapshot_id = %s ORDER BY e.rank"
)


def publish(event: Any, context: Any) -> PublishResult:
    """The publish stage on a leaderboard with ranked models (never skipped)."""
    result = publish_stage(event, context)
    assert "snapshot_id" in result, result
    return result


def _chain(context: Any, slugs: list[str], **request: Any) -> dict[str, dict[str, Any]]:
    """fetch -> rank for ``slugs``; the publish events by slug, as the state machine passes them."""
    fetched = payload(fetch(fetch_event(leaderboards=slugs, **request), context))
    return {e["leaderboard"]["slug"]: payload(rank(e, context)) for e in rank_events(fetched)}


@pytest.fixture
def ranked(publish_env: str, lambda_context: Any) -> dict[str, dict[str, Any]]:
    return _chain(lambda_context, ["overall", "genomics"])


def _count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM api.{table}").fetchone()
    return int(row[0]) if row else 0


def _entries_document(stage_aws: Any, event: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(object_bytes(stage_aws, event["entries_uri"])))


def test_published_snapshot_is_what_bixarena_reads(
    ranked: dict[str, Any], publish_env: str, stage_aws: Any, lambda_context: Any
) -> None:
    event = ranked["overall"]
    result = publish(event, lambda_context)
    document = _entries_document(stage_aws, event)

    with psycopg.connect(publish_env) as conn:
        latest = conn.execute(UPSTREAM_LATEST, ("overall",)).fetchone()
        assert latest is not None
        rows = conn.execute(UPSTREAM_ENTRIES, (latest[0],)).fetchall()
    snapshot_id, identifier, description = latest
    assert (snapshot_id, identifier) == (result["snapshot_id"], "snapshot_2025-06-01_06-00-00")
    n, m = event["leaderboard"]["vote_count"], event["ranked_count"]
    assert description == f"Leaderboard snapshot with {n} evaluations and {m} ranked models"
    assert rows == [
        (
            e["model_id"], e["rank"], Decimal(str(e["bt_score"])).quantize(Decimal("0.000001")),
            Decimal(str(e["bootstrap_q025"])).quantize(Decimal("0.000001")),
            Decimal(str(e["bootstrap_q975"])).quantize(Decimal("0.000001")), e["vote_count"],
        )
        for e in document["entries"]
    ]  # fmt: skip
    assert result["visibility"] == "public" and result["created"] is True
    assert (result["entry_count"], result["vote_count"]) == (m, n)
    assert result["previous_snapshot_identifier"] is None
    assert [t["model"] for t in result["top"]] == [
        e["model_name"] for e in document["entries"][:10]
    ]
    assert all(t["previous_rank"] is None for t in result["top"])
    assert (result["new_models"], result["dropped_models"]) == ([], [])
    assert len(json.dumps(result)) < 4000


def test_second_run_reports_movements_against_the_previous_public_snapshot(
    publish_env: str, stage_aws: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIN_EVALS", "700")
    first = publish(_chain(lambda_context, ["overall"])["overall"], lambda_context)
    monkeypatch.setenv("MIN_EVALS", "10")
    second_event = _chain(lambda_context, ["overall"], run_at="2025-06-02T06:00:00Z")["overall"]
    second = publish(second_event, lambda_context)

    assert second["previous_snapshot_identifier"] == first["snapshot_identifier"]
    before = {t["model"]: t["rank"] for t in first["top"]}
    assert first["entry_count"] < second["entry_count"] <= 12
    assert second["new_models"] and not set(second["new_models"]) & set(before)
    for entry in second["top"]:
        assert entry["previous_rank"] == before.get(entry["model"])
    with psycopg.connect(publish_env) as conn:
        latest = conn.execute(UPSTREAM_LATEST, ("overall",)).fetchone()
    assert latest is not None and latest[1] == "snapshot_2025-06-02_06-00-00"


DAY_1, DAY_2 = "2025-05-25T06:00:00Z", "2025-06-01T06:00:00Z"


def _dates(url: str, snapshot_id: str) -> tuple[Any, Any, set[Any]]:
    """A snapshot's created_at and updated_at, and its entries' created_at values."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT created_at, updated_at FROM api.leaderboard_snapshot WHERE id = %s",
            (snapshot_id,),
        ).fetchone()
        entries = conn.execute(
            "SELECT DISTINCT created_at FROM api.leaderboard_entry WHERE snapshot_id = %s",
            (snapshot_id,),
        ).fetchall()
    assert row is not None
    return row[0], row[1], {e[0] for e in entries}


def test_a_snapshot_is_dated_by_its_votes_and_an_older_one_published_later_is_history(
    publish_env: str, lambda_context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    events = {
        run_at: _chain(lambda_context, ["overall"], run_at=run_at)["overall"]
        for run_at in (DAY_1, DAY_2)
    }
    assert events[DAY_1]["leaderboard"]["vote_count"] < events[DAY_2]["leaderboard"]["vote_count"]
    before_writing = datetime.now(UTC)
    capsys.readouterr()
    day_2 = publish(events[DAY_2], lambda_context)
    day_1 = publish(events[DAY_1], lambda_context)  # a redrive of yesterday, say
    # What BixArena shows counts as published; the history snapshot does not.
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [m["SnapshotPublished"] for m in emitted if "SnapshotPublished" in m] == [[1.0], [0.0]]

    for result, run_at in ((day_1, DAY_1), (day_2, DAY_2)):
        created, updated, entries = _dates(publish_env, result["snapshot_id"])
        assert created == parse_timestamp(run_at, "run_at") and entries == {created}
        assert updated >= before_writing
    with psycopg.connect(publish_env) as conn:
        latest = conn.execute(UPSTREAM_LATEST, ("overall",)).fetchone()
    assert latest is not None and latest[1] == day_2["snapshot_identifier"]
    assert (day_2["shown_snapshot_identifier"], day_2["superseded"]) == (
        day_2["snapshot_identifier"], False,
    )  # fmt: skip
    assert day_2["previous_snapshot_identifier"] is None
    # Day 1 went public as history, measured against nothing (no public snapshot is older).
    assert day_1["visibility"] == "public" and day_1["created"]
    assert (day_1["shown_snapshot_identifier"], day_1["superseded"]) == (
        day_2["snapshot_identifier"], True,
    )  # fmt: skip
    assert day_1["previous_snapshot_identifier"] is None
    assert all(t["previous_rank"] is None for t in day_1["top"])
    # A rerun of day 2 now finds day 1 before it in data order, and measures against it.
    again = publish(events[DAY_2], lambda_context)
    assert (again["created"], again["previous_snapshot_identifier"]) == (
        False, day_1["snapshot_identifier"],
    )  # fmt: skip
    day_1_ranks = {t["model"]: t["rank"] for t in day_1["top"]}
    assert [t["previous_rank"] for t in again["top"]] == [
        day_1_ranks.get(t["model"]) for t in again["top"]
    ]


@pytest.mark.parametrize("order", ["older first", "newer first"])
def test_overlapping_publishes_of_one_leaderboard_report_what_the_other_left(
    order: str, publish_env: str, stage_aws: Any, lambda_context: Any
) -> None:
    older, newer = (
        _chain(lambda_context, ["overall"], run_at=run_at)["overall"] for run_at in (DAY_1, DAY_2)
    )
    first, second = (older, newer) if order == "older first" else (newer, older)
    results = _one_after_another(publish_env, stage_aws, [first, second])
    by_run = {r["snapshot_identifier"]: r for r in results}
    old = by_run[older["run"]["snapshot_identifier"]]
    new = by_run[newer["run"]["snapshot_identifier"]]
    with psycopg.connect(publish_env) as conn:
        latest = conn.execute(UPSTREAM_LATEST, ("overall",)).fetchone()
    assert latest is not None and latest[1] == new["snapshot_identifier"]
    assert (new["shown_snapshot_identifier"], new["superseded"]) == (
        new["snapshot_identifier"], False,
    )  # fmt: skip
    if order == "older first":
        # The older one was what BixArena showed until the newer one committed after it.
        assert (old["shown_snapshot_identifier"], old["superseded"]) == (
            old["snapshot_identifier"], False,
        )  # fmt: skip
        assert new["previous_snapshot_identifier"] == old["snapshot_identifier"]
    else:
        assert (old["shown_snapshot_identifier"], old["superseded"]) == (
            new["snapshot_identifier"], True,
        )  # fmt: skip
        assert new["previous_snapshot_identifier"] is None
    assert old["previous_snapshot_identifier"] is None


def _snapshot_at(
    conn: psycopg.Connection, identifier: str, created_at: str, visibility: str = "public"
) -> str:
    row = conn.execute(
        "INSERT INTO api.leaderboard_snapshot (leaderboard_id, snapshot_identifier, visibility,"
        " created_at) SELECT id, %s, %s, %s FROM api.leaderboard WHERE slug = 'overall'"
        " RETURNING id::text",
        (identifier, visibility, created_at),
    ).fetchone()
    assert row is not None
    return str(row[0])


def test_data_order_breaks_ties_on_created_at_by_identifier_then_id(publish_env: str) -> None:
    # Upstream leaves ties to chance; a script inserting snapshots in one transaction makes them.
    with psycopg.connect(publish_env) as conn:
        early = _snapshot_at(conn, "snapshot_b", "2025-05-01T00:00:00Z")
        tied_low = _snapshot_at(conn, "snapshot_C", "2025-05-02T00:00:00Z")
        tied_high = _snapshot_at(conn, "snapshot_a", "2025-05-02T00:00:00Z")
        private = _snapshot_at(conn, "snapshot_z", "2025-05-03T00:00:00Z", "private")
        older_private = _snapshot_at(conn, "snapshot_0", "2025-04-01T00:00:00Z", "private")
        conn.commit()
        info = {i: snapshots.get_snapshot(conn, i) for i in (early, tied_low, tied_high)}
        latest = snapshots.latest_public_snapshot(conn, "overall")
        # "C" < "a" in code point order (COLLATE "C"), whatever the database's collation says.
        assert latest is not None and latest.id == tied_high
        previous = {
            i: snapshots.previous_public_snapshot(conn, snapshots.get_snapshot(conn, i))
            for i in (tied_high, tied_low, early, private, older_private)
        }
        assert {i: p.id if p else None for i, p in previous.items()} == {
            tied_high: tied_low,
            tied_low: early,
            early: None,
            private: tied_high,
            older_private: None,
        }
        placed = snapshots.placement(conn, info[tied_low])
        assert (placed.standing, placed.shown, placed.superseded) == ("history", "snapshot_a", True)
        placed = snapshots.placement(conn, snapshots.get_snapshot(conn, private))
        assert (placed.standing, placed.superseded) == ("private", False)
        placed = snapshots.placement(conn, snapshots.get_snapshot(conn, older_private))
        assert (placed.standing, placed.superseded) == ("private", True)
        assert sorted(info.values(), key=snapshots.data_key) == [
            info[early], info[tied_low], info[tied_high],
        ]  # fmt: skip


def test_publish_false_leaves_the_snapshot_private(
    publish_env: str, stage_aws: Any, lambda_context: Any
) -> None:
    event = _chain(lambda_context, ["overall"], publish=False)["overall"]
    result = publish(event, lambda_context)
    assert result["visibility"] == "private" and result["created"]
    with psycopg.connect(publish_env) as conn:
        assert conn.execute(UPSTREAM_LATEST, ("overall",)).fetchone() is None
        assert snapshots.latest_public_snapshot(conn, "overall") is None


def test_publish_twice_gives_one_snapshot_and_the_same_result(
    ranked: dict[str, Any], publish_env: str, lambda_context: Any
) -> None:
    first = publish(ranked["genomics"], lambda_context)
    entries = _count(publish_env, "leaderboard_entry")
    second = publish(ranked["genomics"], lambda_context)
    assert (first["created"], second["created"]) == (True, False)
    assert {**second, "created": True} == first
    assert _count(publish_env, "leaderboard_snapshot") == 1
    assert _count(publish_env, "leaderboard_entry") == entries == first["entry_count"]


def _waiting_on_locks(url: str, expected: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()
            if row and row[0] >= expected:
                return
            time.sleep(0.02)
    raise AssertionError(f"{expected} publishes never got to wait on each other")


def _publish_directly(url: str, stage_aws: Any, event: dict[str, Any]) -> PublishResult:
    """``common.publish`` on its own connection, as the stage calls it (for threads)."""
    board, run = event["leaderboard"], event["run"]
    document = parse_entries(
        json.loads(object_bytes(stage_aws, event["entries_uri"])),
        parse_s3_uri(event["entries_uri"]),
        leaderboard=board["slug"],
        snapshot_identifier=run["snapshot_identifier"],
    )
    with psycopg.connect(url) as conn:
        result = publish_service.publish_entries(
            conn,
            slug=board["slug"],
            leaderboard_id=board["leaderboard_id"],
            snapshot_identifier=run["snapshot_identifier"],
            run_at=parse_timestamp(run["run_at"], "run_at"),
            vote_count=board["vote_count"],
            document=document,
            publish=run["publish"],
        )
    assert "snapshot_id" in result, result
    return result


def _one_after_another(
    url: str, stage_aws: Any, events: list[dict[str, Any]]
) -> list[PublishResult]:
    """Publish ``events`` in overlapping transactions that reach the database in this order: the
    entry table is held until every one of them waits, then let go."""
    results: dict[int, PublishResult] = {}

    def one_publish(index: int) -> None:
        results[index] = _publish_directly(url, stage_aws, events[index])

    with psycopg.connect(url) as blocker:
        blocker.execute("LOCK TABLE api.leaderboard_entry IN EXCLUSIVE MODE")
        threads = [threading.Thread(target=one_publish, args=(i,)) for i in range(len(events))]
        for waiting, thread in enumerate(threads, 1):
            thread.start()
            _waiting_on_locks(url, waiting)
        blocker.rollback()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == list(range(len(events)))
    return [results[i] for i in range(len(events))]


def test_concurrent_publishes_of_one_run_make_one_snapshot(
    ranked: dict[str, Any], publish_env: str, stage_aws: Any
) -> None:
    # Both transactions are in flight at once: the first waits to insert its entries, the
    # second waits for the first to end (the leaderboard's lock), then finds its snapshot.
    event = ranked["overall"]
    results = _one_after_another(publish_env, stage_aws, [event, event])
    assert results[0]["snapshot_id"] == results[1]["snapshot_id"]
    assert [r["created"] for r in results] == [True, False]
    assert _count(publish_env, "leaderboard_snapshot") == 1
    assert _count(publish_env, "leaderboard_entry") == event["ranked_count"]


def test_a_publish_killed_before_commit_leaves_nothing(
    ranked: dict[str, Any], publish_env: str, lambda_context: Any
) -> None:
    # A deferred trigger runs at COMMIT, after every entry is inserted: it kills the session.
    with psycopg.connect(publish_env) as conn:
        conn.execute(
            "CREATE FUNCTION public.die_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(10);"
            " RETURN NULL; END $$"
        )
        conn.execute(
            "CREATE CONSTRAINT TRIGGER die_at_commit AFTER INSERT ON api.leaderboard_entry"
            " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.die_at_commit()"
        )
    with pytest.raises(DatabaseUnavailable):
        publish(ranked["overall"], lambda_context)
    assert (
        _count(publish_env, "leaderboard_snapshot") == _count(publish_env, "leaderboard_entry") == 0
    )

    with psycopg.connect(publish_env) as conn:
        conn.execute("DROP TRIGGER die_at_commit ON api.leaderboard_entry")
    result = publish(ranked["overall"], lambda_context)
    assert result["created"] and _count(publish_env, "leaderboard_snapshot") == 1


def test_a_leaderboard_whose_models_were_deleted_since_fetch_is_skipped(
    ranked: dict[str, Any], publish_env: str, stage_aws: Any, lambda_context: Any
) -> None:
    event = ranked["overall"]
    gone = sorted(e["model_id"] for e in _entries_document(stage_aws, event)["entries"][:2])
    with psycopg.connect(publish_env) as conn:
        conn.execute("DELETE FROM api.model WHERE id = ANY(%s::uuid[])", (gone,))
    assert publish_stage(event, lambda_context) == {
        "slug": "overall",
        "reason": f"ranked model(s) deleted from api.model during the run: {', '.join(gone)}"
        " (the next run ranks without them)",
    }
    assert _count(publish_env, "leaderboard_snapshot") == 0
    with psycopg.connect(publish_env) as conn:
        conn.execute("DELETE FROM api.leaderboard WHERE slug = 'genomics'")
    assert publish_stage(ranked["genomics"], lambda_context) == {
        "slug": "genomics",
        "reason": f"the leaderboard (id {ranked['genomics']['leaderboard']['leaderboard_id']})"
        " was deleted during the run",
    }
    assert _count(publish_env, "leaderboard_snapshot") == 0


def _rewrite(stage_aws: Any, event: dict[str, Any], change: Any) -> None:
    document = _entries_document(stage_aws, event)
    change(document)
    put_object(stage_aws, event["entries_uri"], json.dumps(document).encode())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["entries"][0].update(bt_score=12345.0), "does not fit DECIMAL"),
        # Below 10^4, but stored rounded to 6 places as 10000.000000, which overflows.
        (lambda d: d["entries"][0].update(bt_score=9999.9999996), "does not fit DECIMAL"),
        (lambda d: d["entries"][0].update(model_id="not-a-uuid"), "is not a UUID"),
        (lambda d: d["entries"][0].pop("rank"), "rank"),
        (lambda d: d["entries"].append(dict(d["entries"][0])), "appears twice"),
        (lambda d: d.update(leaderboard="genomics"), "not 'overall'"),
        (lambda d: d.update(entries="many"), "entries"),
    ],
)
def test_corrupt_entries_are_refused_and_nothing_is_written(
    ranked: dict[str, Any],
    publish_env: str,
    stage_aws: Any,
    lambda_context: Any,
    change: Any,
    message: str,
) -> None:
    event = ranked["overall"]
    _rewrite(stage_aws, event, change)
    with pytest.raises(ArtifactCorrupt, match=message):
        publish(event, lambda_context)
    assert _count(publish_env, "leaderboard_snapshot") == 0


def test_missing_or_unreadable_entries(
    ranked: dict[str, Any], publish_env: str, stage_aws: Any, lambda_context: Any
) -> None:
    event = ranked["overall"]
    with pytest.raises(ArtifactMissing):
        publish({**event, "entries_uri": event["entries_uri"] + ".gone"}, lambda_context)
    put_object(stage_aws, event["entries_uri"], b"{not json")
    with pytest.raises(ArtifactCorrupt, match="not a JSON document"):
        publish(event, lambda_context)
    assert _count(publish_env, "leaderboard_snapshot") == 0


def test_a_leaderboard_rank_skipped_passes_through_and_nothing_is_written(
    publish_env: str, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetched = payload(fetch(fetch_event(leaderboards=["genomics"]), lambda_context))
    monkeypatch.setenv("MIN_EVALS", "100000")
    event = payload(rank(rank_events(fetched)[0], lambda_context))
    assert set(event) == {"run", "leaderboard", "skipped"}
    assert publish_stage(event, lambda_context) == event["skipped"]
    assert _count(publish_env, "leaderboard_snapshot") == 0
    wrong = {**event, "skipped": {**event["skipped"], "slug": "overall"}}
    with pytest.raises(
        InvalidInput, match=r"event\.skipped\.slug: 'overall' is not the leaderboard"
    ):
        publish_stage(wrong, lambda_context)


def test_an_empty_document_behind_a_ranked_result_breaks_the_contract(
    ranked: dict[str, Any], publish_env: str, stage_aws: Any, lambda_context: Any
) -> None:
    event = payload(ranked["genomics"])
    with pytest.raises(InvalidInput, match=r"event\.ranked_count: expected at least 1"):
        publish({**event, "ranked_count": 0}, lambda_context)
    document = _entries_document(stage_aws, event)
    put_object(stage_aws, event["entries_uri"], json.dumps({**document, "entries": []}).encode())
    with pytest.raises(NotEnoughData, match="genomics: the entries document ranks no model"):
        publish(event, lambda_context)
    assert _count(publish_env, "leaderboard_snapshot") == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda e: e.pop("entries_uri"), "entries_uri"),
        (lambda e: e.update(ranked_count=-1), "ranked_count"),
        (
            lambda e: e["leaderboard"].update(leaderboard_id="1; DELETE"),
            "leaderboard.leaderboard_id",
        ),
        (lambda e: e["run"].update(publish="true"), "run.publish"),
        (lambda e: e["run"].update(run_id="../../etc"), "run.run_id"),
    ],
)
def test_malformed_events_are_refused(
    ranked: dict[str, Any], publish_env: str, lambda_context: Any, change: Any, field: str
) -> None:
    event = payload(ranked["overall"])
    change(event)
    with pytest.raises(InvalidInput, match=field):
        publish(event, lambda_context)
    assert _count(publish_env, "leaderboard_snapshot") == 0


def test_database_down_is_transient(
    ranked: dict[str, Any], lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", CLOSED_DATABASE_URL)
    with pytest.raises(DatabaseUnavailable):
        publish(ranked["overall"], lambda_context)


def test_operator_functions(ranked: dict[str, Any], publish_env: str, lambda_context: Any) -> None:
    public = publish(ranked["overall"], lambda_context)
    private_event = _chain(
        lambda_context, ["overall"], run_at="2025-06-02T06:00:00Z", publish=False
    )
    private = publish(private_event["overall"], lambda_context)
    genomics = publish(ranked["genomics"], lambda_context)
    with psycopg.connect(publish_env) as conn:
        listed = cli_snapshots.recent_snapshots(conn)
        # Newest data first (created_at is each run's run_at), whatever order they were written in.
        assert [(s.leaderboard_slug, s.snapshot_identifier, s.visibility) for s in listed] == [
            ("overall", "snapshot_2025-06-02_06-00-00", "private"),
            ("genomics", "snapshot_2025-06-01_06-00-00", "public"),
            ("overall", "snapshot_2025-06-01_06-00-00", "public"),
        ]
        assert [s.entry_count for s in listed] == [
            private["entry_count"], genomics["entry_count"], public["entry_count"],
        ]  # fmt: skip
        assert listed[2].description == snapshot_description(
            ranked["overall"]["leaderboard"]["vote_count"], public["entry_count"]
        )
        only = cli_snapshots.recent_snapshots(conn, "overall", "public")
        assert [s.id for s in only] == [public["snapshot_id"]]

        shown = snapshots.snapshot_entries(conn, public["snapshot_id"])
        assert [e.rank for e in shown] == list(range(1, public["entry_count"] + 1))
        assert shown[0].model_name == public["top"][0]["model"]
        assert cli_snapshots.as_dict(shown[0])["bt_score"] == str(shown[0].bt_score)

        made_public = cli_snapshots.set_visibility(conn, private["snapshot_id"], "public")
        assert (
            made_public.visibility == "public" and made_public.updated_at > made_public.created_at
        )
        latest = snapshots.latest_public_snapshot(conn, "overall")
        assert latest is not None and latest.id == private["snapshot_id"]

        deleted = cli_snapshots.delete_snapshot(conn, private["snapshot_id"])
        assert deleted.id == private["snapshot_id"]
        latest = snapshots.latest_public_snapshot(conn, "overall")
        assert latest is not None and latest.id == public["snapshot_id"]
        assert snapshots.snapshot_entries(conn, private["snapshot_id"]) == []
        with pytest.raises(SnapshotNotFound):
            snapshots.get_snapshot(conn, private["snapshot_id"])
        with pytest.raises(SnapshotNotFound):
            cli_snapshots.set_visibility(conn, private["snapshot_id"], "private")
        with pytest.raises(InvalidInput, match="visibility"):
            cli_snapshots.set_visibility(conn, public["snapshot_id"], "hidden")  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="snapshot_id"):
            cli_snapshots.delete_snapshot(conn, "1 OR 1=1")
    assert _count(publish_env, "leaderboard_snapshot") == 2


# --- pure helpers -------------------------------------------------------------------------------
def _model(model_id: str, rank: int) -> RankedModel:
    return RankedModel(model_id, f"Model {model_id}", rank, 1100.0 - rank, 1000.0, 1200.0, 50)


def test_movements() -> None:
    previous = [_model("a", 1), _model("b", 2), _model("c", 3), _model("d", 4)]
    current = [_model("b", 1), _model("a", 2), _model("e", 3), _model("c", 4)]
    moved = movements(current, previous, top_n=3)
    assert [(t["model"], t["rank"], t["previous_rank"]) for t in moved.top] == [
        ("Model b", 1, 2), ("Model a", 2, 1), ("Model e", 3, None),
    ]  # fmt: skip
    assert (moved.new_models, moved.dropped_models) == (["Model e"], ["Model d"])
    first = movements(current, None)
    assert len(first.top) == 4 and (first.new_models, first.dropped_models) == ([], [])


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        # Rounded from the exact binary value: 1012.3456795 is 1012.34567949999...
        (1012.3456785, "1012.345678"),
        (1012.3456795, "1012.345679"),
        (1012.3456796, "1012.345680"),
        (-0.0000004, "0.000000"),
        (999.9999996, "1000.000000"),
    ],
)
def test_scores_are_stored_with_six_places(value: float, stored: str) -> None:
    assert as_decimal(value) == Decimal(stored)
