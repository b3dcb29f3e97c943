"""End to end: snapshots take their place in data order, whenever they are computed.

BixArena shows per leaderboard the newest public snapshot by ``created_at`` (upstream's
``findLatestPublicByLeaderboard``, written out below as its repository has it). Publish dates a
snapshot by its run's ``run_at``, so a run with older votes that publishes late -- the redrive of a
failed day, the slower of two overlapping runs -- joins the history and never replaces newer data,
its Slack message says so, and its movements are measured against the public snapshot before it.
A private run (``publish: false``) waits for review with the command that publishes it. Each test
runs the deployed definition locally (``local.pipeline``) over a fresh clone of the simulated
arena; what each snapshot holds is recomputed by the ranking engine (``tests.e2e_fixtures``).
"""

from __future__ import annotations

import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cli.main import main
from cli.report import published_results
from common.stepfunctions.failures import failure_point
from local import simulate
from local.pipeline import LocalPipeline
from local.store import ExecutionRecord, ExecutionStore
from tests.e2e_fixtures import (
    RANKED,
    TEMPLATE_CACHE,
    SnapshotView,
    deployed_settings,
    e2e_arena,
    e2e_db,
    e2e_template,
    engine_snapshot,
    execute,
    expected,
    missed_day_metric_sum,
    pipeline,
    run_request,
    slack_sections,
    slack_top_lines,
    snapshots_in,
)
from tests.stage_fixtures import ARENA_MODELS, ARENA_SEED, RUN_AT

__all__ = ["e2e_arena", "e2e_db", "e2e_template", "expected"]

Template = dict[str, Any]
DAY_0, DAY_1, DAY_2 = "2025-05-11T06:00:00Z", "2025-05-25T06:00:00Z", RUN_AT
ID_0, ID_1, ID_2 = (
    "snapshot_2025-05-11_06-00-00",
    "snapshot_2025-05-25_06-00-00",
    "snapshot_2025-06-01_06-00-00",
)

# Upstream's LeaderboardSnapshotRepository.findLatestPublicByLeaderboard: "WHERE s.leaderboard =
# :leaderboard AND s.visibility = 'public' ORDER BY s.createdAt DESC", first row taken.
UPSTREAM_SHOWN = """
    SELECT s.snapshot_identifier FROM api.leaderboard_snapshot s
    JOIN api.leaderboard l ON l.id = s.leaderboard_id
    WHERE l.slug = %s AND s.visibility = 'public' ORDER BY s.created_at DESC LIMIT 1
"""


def _shown(url: str, slug: str) -> str | None:
    with psycopg.connect(url) as conn:
        row = conn.execute(UPSTREAM_SHOWN, (slug,)).fetchone()
    return str(row[0]) if row else None


def _engine(url: str, stack: Template, run_at: str, slugs: tuple[str, ...] = RANKED) -> dict[str, SnapshotView]:  # fmt: skip
    min_evals = deployed_settings(stack).min_evals
    return {slug: engine_snapshot(url, slug, run_at, min_evals=min_evals) for slug in slugs}


def _movement(rank: int, previous: int | None) -> str:
    if previous is None:
        return "new"
    if previous == rank:
        return "="
    return f"↑{previous - rank}" if previous > rank else f"↓{rank - previous}"


def _expected_lines(now: SnapshotView, before: SnapshotView) -> list[tuple[int, str, str]]:
    """The top lines of a Slack section for ``now`` measured against ``before``."""
    ranks = {e.model: e.rank for e in before.entries}
    return [(e.rank, e.model, _movement(e.rank, ranks.get(e.model))) for e in now.entries[:5]]


def _results(record: ExecutionRecord) -> dict[str, dict[str, Any]]:
    return {r["slug"]: r for r in published_results(record.history)[0]}


def _headline(message: dict[str, Any]) -> tuple[str, str]:
    """A run message's title (without the environment) and snapshot identifier."""
    title, rest = message["text"].split(": ", 1)
    return re.sub(r" \([^)]*\)$", "", title), rest.split(" ")[0]


def _messages(running: LocalPipeline) -> list[dict[str, Any]]:
    assert running.slack is not None
    return list(running.slack.received)


# --- a redrive after a newer day published --------------------------------------------------------
def test_a_day_redriven_after_the_next_day_published_joins_the_history(
    e2e_template: Template, e2e_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = {run_at: _engine(e2e_db, e2e_template, run_at) for run_at in (DAY_0, DAY_1, DAY_2)}
    # The test means something only if day 1 moves differently against day 0 than against day 2.
    assert any(
        _expected_lines(engine[DAY_1][s], engine[DAY_0][s])
        != _expected_lines(engine[DAY_1][s], engine[DAY_2][s])
        for s in RANKED
    )
    with pipeline(e2e_template, e2e_db, tmp_path) as running:
        assert execute(running, "day-0", DAY_0).status == "SUCCEEDED"
    with pipeline(e2e_template, e2e_db, tmp_path, "publish:permanent") as running:
        day_1 = execute(running, "day-1", DAY_1)
    assert (day_1.status, failure_point(day_1.history).state) == ("FAILED", "Publish")
    with pipeline(e2e_template, e2e_db, tmp_path) as running:
        day_2 = execute(running, "day-2", DAY_2)
        (day_2_message,) = _messages(running)
    assert day_2.status == "SUCCEEDED", day_2.error
    log = tmp_path / "functions.jsonl"
    log.rename(tmp_path / "before-the-redrive.jsonl")
    with pipeline(e2e_template, e2e_db, tmp_path) as running:
        redriven = running.redrive(day_1)
        (day_1_message,) = _messages(running)
    assert redriven.status == "SUCCEEDED", redriven.error

    # BixArena still shows day 2; day 1 sits between day 0 and day 2, with day 1's votes.
    stored = snapshots_in(e2e_db)
    for slug in RANKED:
        assert _shown(e2e_db, slug) == ID_2
        assert stored[slug] == [engine[DAY_0][slug], engine[DAY_1][slug], engine[DAY_2][slug]]
    capsys.readouterr()
    assert main(["snapshots", "list", "--leaderboard", "overall", "--database-url", e2e_db]) == 0
    listed = [line.split()[1] for line in capsys.readouterr().out.splitlines()[2:]]
    assert listed == [ID_2, ID_1, ID_0]

    # Day 2's message: live, measured against day 0 (day 1 was not there yet).
    assert _headline(day_2_message) == ("Leaderboard snapshot published", ID_2)
    sections = slack_sections(day_2_message)
    for slug in RANKED:
        assert f"vs `{ID_0}`" in sections[slug] and "history" not in sections[slug]
        assert slack_top_lines(sections[slug]) == _expected_lines(
            engine[DAY_2][slug], engine[DAY_0][slug]
        )
    # Day 1's message: history, measured against day 0, never against day 2.
    assert _headline(day_1_message) == ("Leaderboard snapshot published as history", ID_1)
    sections = slack_sections(day_1_message)
    results = _results(redriven)
    for slug in RANKED:
        assert (
            f"Published as history: {slug} already shows `{ID_2}` with newer votes;"
            " BixArena did not change." in sections[slug]
        )
        assert f"vs `{ID_0}`" in sections[slug]
        assert slack_top_lines(sections[slug]) == _expected_lines(
            engine[DAY_1][slug], engine[DAY_0][slug]
        )
        assert results[slug]["visibility"] == "public" and results[slug]["created"]
        assert (results[slug]["shown_snapshot_identifier"], results[slug]["superseded"]) == (
            ID_2,
            True,
        )
    # The missed-day alarm: BixArena got nothing newer from the redrive.
    assert missed_day_metric_sum(e2e_template, log) == 0
    before = missed_day_metric_sum(e2e_template, tmp_path / "before-the-redrive.jsonl")
    assert before == 2 * len(RANKED)  # days 0 and 2


# --- two runs at once -----------------------------------------------------------------------------
def _waiting_on_locks(url: str, expected: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()
            if row and row[0] >= expected:
                return
            time.sleep(0.05)
    raise AssertionError(f"{expected} publishes never got to wait")


@pytest.mark.parametrize("last", ["older votes", "newer votes"])
def test_of_two_overlapping_runs_bixarena_shows_the_newer_votes_whichever_finishes_last(
    last: str, e2e_template: Template, e2e_db: str, tmp_path: Path
) -> None:
    engine = {run_at: _engine(e2e_db, e2e_template, run_at, ("overall",)) for run_at in (DAY_1, DAY_2)}  # fmt: skip
    first, second = (DAY_2, DAY_1) if last == "older votes" else (DAY_1, DAY_2)
    with pipeline(e2e_template, e2e_db, tmp_path) as running:
        # Both runs are under way together; the first one's publish holds the leaderboard
        # (waiting on the entry table we lock) when the second one's reaches it.
        with psycopg.connect(e2e_db) as blocker:
            blocker.execute("LOCK TABLE api.leaderboard_entry IN EXCLUSIVE MODE")
            arns = []
            for waiting, run_at in enumerate((first, second), 1):
                arns.append(running.start(run_request(run_at, ["overall"]), f"run-{waiting}"))
                _waiting_on_locks(e2e_db, waiting)
            blocker.rollback()
        records = [running.wait(arn) for arn in arns]
        messages = _messages(running)
    assert [r.status for r in records] == ["SUCCEEDED", "SUCCEEDED"], [r.error for r in records]
    assert _shown(e2e_db, "overall") == ID_2
    assert snapshots_in(e2e_db)["overall"] == [engine[DAY_1]["overall"], engine[DAY_2]["overall"]]
    titles = dict(_headline(m)[::-1] for m in messages)
    by_identifier = {_headline(m)[1]: m for m in messages}
    older, newer = (slack_sections(by_identifier[i])["overall"] for i in (ID_1, ID_2))
    assert titles[ID_2] == "Leaderboard snapshot published"
    if last == "older votes":
        assert titles[ID_1] == "Leaderboard snapshot published as history"
        assert f"already shows `{ID_2}` with newer votes" in older
        assert "first public snapshot" in newer
    else:
        assert titles[ID_1] == "Leaderboard snapshot published"
        assert "history" not in older
        assert f"vs `{ID_1}`" in newer
        assert slack_top_lines(newer) == _expected_lines(
            engine[DAY_2]["overall"], engine[DAY_1]["overall"]
        )


# --- preview --------------------------------------------------------------------------------------
def test_a_private_run_awaits_review_and_publishing_it_takes_its_place(
    e2e_template: Template, e2e_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = {run_at: _engine(e2e_db, e2e_template, run_at) for run_at in (DAY_1, DAY_2)}
    with pipeline(e2e_template, e2e_db, tmp_path) as running:
        assert execute(running, "day-1", DAY_1).status == "SUCCEEDED"
        preview = running.wait(running.start({**run_request(DAY_2), "publish": False}, "day-2"))
        (_, message) = _messages(running)
    assert preview.status == "SUCCEEDED", preview.error
    stored = snapshots_in(e2e_db)
    for slug in RANKED:
        assert _shown(e2e_db, slug) == ID_1
        assert [s.visibility for s in stored[slug]] == ["public", "private"]
    assert _headline(message) == ("Leaderboard snapshot awaits review", ID_2)
    sections = slack_sections(message)
    results = _results(preview)
    for slug in RANKED:
        snapshot_id = results[slug]["snapshot_id"]
        assert (
            f"Private, awaiting review: BixArena shows `{ID_1}` for {slug} until it is published."
            f" Publish: `leaderboard snapshots publish {snapshot_id}`" in sections[slug]
        )
        assert slack_top_lines(sections[slug]) == _expected_lines(
            engine[DAY_2][slug], engine[DAY_1][slug]
        )
    review = next(
        b["text"]["text"]
        for b in message["blocks"]
        if b.get("text", {}).get("text", "").startswith("*Awaiting review (3)*")
    )
    assert f"`leaderboard snapshots publish {ID_2} --leaderboard SLUG`" in review

    # The operator looks (moves against what is live), then runs the command the message gave.
    url = ["--database-url", e2e_db]
    capsys.readouterr()
    assert main(["snapshots", "show", ID_2, "--leaderboard", "genetics", *url]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert (
        shown[4] == f"  moves against {ID_1}, the public snapshot before it (what BixArena shows)"
    )
    assert main(["snapshots", "publish", results["genetics"]["snapshot_id"], *url]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"genetics {ID_2} is now public",
        f"BixArena now shows {ID_2} for genetics",
    ]
    assert _shown(e2e_db, "genetics") == ID_2 and _shown(e2e_db, "overall") == ID_1


# --- the command line -----------------------------------------------------------------------------
def _next_second(after: str) -> None:
    """Wait until the clock is past ``after`` (a local run's run_at is now, to the second)."""
    while datetime.now(UTC).replace(microsecond=0) <= datetime.fromisoformat(after):
        time.sleep(0.05)


def test_leaderboard_redrive_of_a_run_older_than_the_last_one_publishes_it_as_history(
    e2e_template: Template, e2e_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(TEMPLATE_CACHE / "templates", tmp_path / "templates")
    local = ["--database-url", e2e_db, "--state-dir", str(tmp_path)]
    run = ["run", *local, "--leaderboards", "overall,genetics", "--bootstrap", "20"]

    assert main([*run, "--inject-fault", "publish:permanent"]) == 1
    failed = ExecutionStore(tmp_path).last_failed()
    failed_run_at = failed.input["run_at"]
    first = "snapshot_" + datetime.fromisoformat(failed_run_at).strftime("%Y-%m-%d_%H-%M-%S")
    # A new day's votes, then the next run counts them.
    more = simulate.simulate_arena(ARENA_MODELS, 2000, seed=ARENA_SEED, battle_seed=5)
    simulate.write_database(more, e2e_db, now=datetime.now(UTC))
    _next_second(failed_run_at)
    assert main(run) == 0
    second = ExecutionStore(tmp_path).all()[-1]
    newer = "snapshot_" + datetime.fromisoformat(second.input["run_at"]).strftime(
        "%Y-%m-%d_%H-%M-%S"
    )
    capsys.readouterr()

    assert main(["redrive", *local]) == 0
    out = capsys.readouterr().out
    assert f"redriving {failed.name}" in out and "execution SUCCEEDED" in out
    for slug in ("overall", "genetics"):
        assert f"  published as history: {slug} already shows {newer} with newer votes" in out
        assert f"Published as history: {slug} already shows `{newer}` with newer votes" in out
        assert _shown(e2e_db, slug) == newer
    assert "Leaderboard snapshot published as history" in out

    votes = {s.identifier: s.description for s in snapshots_in(e2e_db)["overall"]}
    assert list(votes) == [first, newer]
    counts = [int(d.split(" with ")[1].split(" ")[0]) for d in votes.values()]
    assert counts[0] < counts[1]
    assert main(["snapshots", "list", "--leaderboard", "overall", *local[:2]]) == 0
    listed = [line.split()[1] for line in capsys.readouterr().out.splitlines()[2:]]
    assert listed == [newer, first]


def test_a_redriven_private_run_still_waits_for_review(
    e2e_template: Template, e2e_db: str, tmp_path: Path
) -> None:
    with pipeline(e2e_template, e2e_db, tmp_path, "publish:permanent") as running:
        failed = running.wait(running.start({**run_request(), "publish": False}, "preview"))
    assert failed.status == "FAILED"
    with pipeline(e2e_template, e2e_db, tmp_path) as running:
        redriven = running.redrive(failed)
        (message,) = _messages(running)
    assert redriven.status == "SUCCEEDED", redriven.error
    assert all(s.visibility == "private" for found in snapshots_in(e2e_db).values() for s in found)
    assert _headline(message)[0] == "Leaderboard snapshot awaits review"
    assert _shown(e2e_db, "overall") is None
