"""End to end: the deployed state machine definition, run locally over a real PostgreSQL.

Each test executes the synthesized stack's definition with moto's interpreter and the real stage
handlers (``local.pipeline``) over a fresh clone of a simulated arena, with faults injected
where the test says, and checks what users would see: the public snapshots in BixArena's tables,
the Slack messages, the execution's outcome, and what a redrive leaves behind. Retry backoff is
recorded instead of slept (``retry_sleeps``) and checked against the documented policy; a timed
outage lasts until an attempt sequence's recorded waits carry it past the outage's end.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from cli.report import published_results, slack_preview
from common.stepfunctions.failures import failure_point
from common.stepfunctions.history import FAILED_STATUSES
from local import simulate
from local.store import ExecutionStore
from tests.conftest import RecordedSleeps
from tests.e2e_fixtures import (
    DATABASE_WAIT_CAPS,
    OUTAGE_S,
    RANKED,
    SPARSE,
    STATE_NAMES,
    TEMPLATE_CACHE,
    TRANSIENT_WAIT_CAPS,
    SnapshotView,
    cli_process,
    deployed_settings,
    e2e_arena,
    e2e_db,
    e2e_template,
    engine_snapshot,
    execute,
    expected,
    pipeline,
    run_request,
    slack_sections,
    slack_top_lines,
    snapshots_in,
    task_failures,
    within_caps,
)
from tests.stage_fixtures import ARENA_MODELS, ARENA_SEED, SEED_NOW

__all__ = ["e2e_arena", "e2e_db", "e2e_template", "expected"]

Template = dict[str, Any]
Expected = dict[str, SnapshotView]
RUN_AT_NEXT_DAY = "2025-06-02T06:00:00Z"
IDENTIFIER = "snapshot_2025-06-01_06-00-00"


def _published_once(expected: Expected) -> dict[str, list[SnapshotView]]:
    """The database after one clean run: one public snapshot per ranked leaderboard."""
    return {slug: [expected[slug]] for slug in RANKED}


def _movement(rank: int, previous: int | None) -> str:
    if previous is None:
        return "new"
    return (
        f"↑{previous - rank}"
        if previous > rank
        else f"↓{rank - previous}"
        if previous < rank
        else "="
    )


# --- the happy path -------------------------------------------------------------------------------
def test_scheduled_runs_publish_the_engines_entries_and_slack_shows_the_moves(
    e2e_template: Template, e2e_db: str, expected: Expected, tmp_path: Path
) -> None:
    with pipeline(e2e_template, e2e_db, tmp_path) as running:
        first = execute(running, "e2e-day-1")
        assert running.slack is not None
        webhook = running.slack.url
        first_messages = list(running.slack.received)
    assert first.status == "SUCCEEDED", first.error
    assert snapshots_in(e2e_db) == _published_once(expected)
    published, skipped = published_results(first.history)
    results = {r["slug"]: r for r in published}
    assert sorted(results) == sorted(RANKED)
    for slug, result in results.items():
        assert result["snapshot_identifier"] == IDENTIFIER
        assert (result["visibility"], result["created"]) == ("public", True)
        assert result["previous_snapshot_identifier"] is None
        assert result["entry_count"] == len(expected[slug].entries)
    assert skipped == [{"slug": SPARSE, "reason": "fewer than 30 battles (0)"}]
    assert len(first_messages) == 1
    message = first_messages[0]
    assert IDENTIFIER in message["text"]
    sections = slack_sections(message)
    assert sorted(sections) == sorted(RANKED)
    assert all("first public snapshot" in text for text in sections.values())
    assert f"{SPARSE}: fewer than 30 battles (0)" in slack_preview(message)
    overall_top = [(rank, model) for rank, model, _ in slack_top_lines(sections["overall"])]
    assert overall_top == [(e.rank, e.model) for e in expected["overall"].entries[:5]]
    logs = (tmp_path / "functions.jsonl").read_text()
    assert "votes fetched" in logs and webhook not in logs and "/services/" not in logs

    # A day later: new battles, and a model that was not there yesterday.
    next_day = simulate.simulate_arena(ARENA_MODELS + 1, 3000, seed=ARENA_SEED, battle_seed=1)
    simulate.write_database(next_day, e2e_db, now=SEED_NOW + timedelta(days=1))
    with pipeline(e2e_template, e2e_db, tmp_path) as running:
        second = execute(running, "e2e-day-2", run_at=RUN_AT_NEXT_DAY)
        assert running.slack is not None
        (message,) = running.slack.received
    assert second.status == "SUCCEEDED", second.error
    min_evals = deployed_settings(e2e_template).min_evals
    stored = snapshots_in(e2e_db)
    moved = 0
    sections = slack_sections(message)
    for slug in RANKED:
        before, after = stored[slug]
        assert before == expected[slug]
        assert after == engine_snapshot(e2e_db, slug, RUN_AT_NEXT_DAY, min_evals=min_evals)
        previous_rank = {e.model: e.rank for e in before.entries}
        result = next(r for r in published_results(second.history)[0] if r["slug"] == slug)
        assert result["previous_snapshot_identifier"] == before.identifier
        assert [(t["model"], t["rank"], t["previous_rank"]) for t in result["top"]] == [
            (e.model, e.rank, previous_rank.get(e.model)) for e in after.entries[:10]
        ]
        assert result["new_models"] == [
            e.model for e in after.entries if e.model not in previous_rank
        ]
        now_ranked = {e.model for e in after.entries}
        assert result["dropped_models"] == [
            e.model for e in before.entries if e.model not in now_ranked
        ]
        lines = slack_top_lines(sections[slug])
        assert lines == [
            (e.rank, e.model, _movement(e.rank, previous_rank.get(e.model)))
            for e in after.entries[:5]
        ]
        assert f"vs `{before.identifier}`" in sections[slug]
        moved += sum(move != "=" for _, _, move in lines)
    assert moved > 0, "the new day's votes should move some model in a top 5"
    assert "New: SimModel 012" in sections["overall"]


# --- transient failures ---------------------------------------------------------------------------
TRANSIENT_ERROR = {
    "fetch": "DatabaseUnavailable",
    "rank": "StorageUnavailable",
    "publish": "DatabaseUnavailable",
    "notify": "SlackUnavailable",
}
WAIT_CAPS = {
    "fetch": DATABASE_WAIT_CAPS,
    "rank": TRANSIENT_WAIT_CAPS,
    "publish": DATABASE_WAIT_CAPS,
    "notify": TRANSIENT_WAIT_CAPS,
}


def _waits_per_task(sleeps: RecordedSleeps) -> list[list[float]]:
    """The recorded waits of each task that retried (a Map iteration retries in its own thread)."""
    return list(sleeps.by_thread.values())


@pytest.mark.parametrize("stage", ["fetch", "rank", "publish", "notify"])
def test_a_transient_failure_in_a_stage_is_retried_with_backoff_and_the_run_succeeds(
    stage: str,
    e2e_template: Template,
    e2e_db: str,
    expected: Expected,
    tmp_path: Path,
    retry_sleeps: RecordedSleeps,
) -> None:
    with pipeline(e2e_template, e2e_db, tmp_path, f"{stage}:transient:2") as running:
        record = execute(running, f"e2e-transient-{stage}")
        assert running.slack is not None
        messages = list(running.slack.received)
    assert record.status == "SUCCEEDED", record.error
    failed = task_failures(record, STATE_NAMES[stage])
    assert sum(len(errors) for errors in failed.values()) == 2
    assert {e for errors in failed.values() for e in errors} == {TRANSIENT_ERROR[stage]}
    waits = _waits_per_task(retry_sleeps)
    assert sorted(map(len, waits)) == sorted(len(errors) for errors in failed.values())
    assert [t for t in waits if not within_caps(t, WAIT_CAPS[stage])] == []
    assert snapshots_in(e2e_db) == _published_once(expected)
    assert len(messages) == 1 and IDENTIFIER in messages[0]["text"]


# --- permanent failures and redrive ---------------------------------------------------------------
@pytest.mark.parametrize("stage", ["fetch", "rank", "publish", "notify"])
def test_a_permanent_failure_stops_at_its_state_alerts_and_a_redrive_publishes_once(
    stage: str,
    e2e_template: Template,
    e2e_db: str,
    expected: Expected,
    tmp_path: Path,
    retry_sleeps: list[float],
) -> None:
    state = STATE_NAMES[stage]
    with pipeline(e2e_template, e2e_db, tmp_path, f"{stage}:permanent") as running:
        record = execute(running, f"e2e-permanent-{stage}")
        alert_result = running.notify_failure(record)
        assert running.slack is not None
        messages = list(running.slack.received)
    assert (record.status, record.error) == ("FAILED", "InjectedFailure")
    point = failure_point(record.history)
    assert (point.state, point.error) == (state, "InjectedFailure")
    assert retry_sleeps == []
    # Nothing half-done is visible: before Notify nothing at all, at Notify complete snapshots.
    assert snapshots_in(e2e_db) == ({} if stage != "notify" else _published_once(expected))

    assert alert_result["posted"] is True and alert_result["mode"] == "failure"
    (alert,) = messages
    assert f"Leaderboard run failed at {state}" in alert["text"]
    assert f"InjectedFailure: injected permanent failure in {stage}" in alert["text"]
    preview = slack_preview(alert)
    assert f"`{state}`" in preview and "`InjectedFailure`" in preview
    assert f"aws stepfunctions redrive-execution --execution-arn {record.execution_arn}" in preview
    if stage in ("rank", "publish"):
        assert re.search(rf"\*Leaderboard\*\n({'|'.join(RANKED)})\n", preview)

    with pipeline(e2e_template, e2e_db, tmp_path) as running:
        redriven = running.redrive(record)
        assert running.slack is not None
        messages = list(running.slack.received)
    assert redriven.status == "SUCCEEDED", redriven.error
    assert snapshots_in(e2e_db) == _published_once(expected)
    (message,) = messages
    assert (
        message["text"].startswith("Leaderboard snapshot published")
        and IDENTIFIER in message["text"]
    )
    saved = ExecutionStore(tmp_path).load(record.name)
    assert (saved.status, saved.redrives) == ("SUCCEEDED", [redriven.name])


# --- the database and Slack down ------------------------------------------------------------------
@pytest.mark.parametrize("stage", ["fetch", "publish"])
def test_database_down_fails_at_the_stage_after_its_retries_and_a_redrive_completes(
    stage: str,
    e2e_template: Template,
    e2e_db: str,
    expected: Expected,
    tmp_path: Path,
    retry_sleeps: RecordedSleeps,
) -> None:
    state = STATE_NAMES[stage]
    with pipeline(e2e_template, e2e_db, tmp_path, f"db:down:{stage}") as running:
        record = execute(running, f"e2e-db-down-{stage}")
    assert (record.status, record.error) == ("FAILED", "DatabaseUnavailable")
    point = failure_point(record.history)
    assert point.state == state
    failed = task_failures(record, state)
    assert failed[point.iteration] == ["DatabaseUnavailable"] * (len(DATABASE_WAIT_CAPS) + 1)
    # The failed task waited its whole schedule; other leaderboards' tasks retried alongside.
    waits = _waits_per_task(retry_sleeps)
    assert len(DATABASE_WAIT_CAPS) in map(len, waits)
    assert [t for t in waits if not within_caps(t, DATABASE_WAIT_CAPS)] == []
    assert snapshots_in(e2e_db) == {}

    with pipeline(e2e_template, e2e_db, tmp_path) as running:
        redriven = running.redrive(record)
    assert redriven.status == "SUCCEEDED", redriven.error
    assert snapshots_in(e2e_db) == _published_once(expected)


@pytest.mark.parametrize("stage", ["fetch", "publish"])
def test_a_three_minute_database_outage_is_ridden_out_and_the_run_succeeds(
    stage: str,
    e2e_template: Template,
    e2e_db: str,
    expected: Expected,
    tmp_path: Path,
    retry_sleeps: RecordedSleeps,
) -> None:
    """PostgreSQL is down for 180 s from the stage's first attempt; the retries' jittered waits
    (recorded, not slept) carry each task past it. Each task's attempts fail exactly until its
    own waits, plus the time that really passed, sum past 180 s."""
    started = time.monotonic()
    spec = f"db:down:{stage}:{OUTAGE_S}s"
    with pipeline(e2e_template, e2e_db, tmp_path, spec, timeline=retry_sleeps.timeline) as running:
        record = execute(running, f"e2e-outage-{stage}")
        assert running.slack is not None
        messages = list(running.slack.received)
    elapsed = time.monotonic() - started
    assert record.status == "SUCCEEDED", (record.error, record.cause)
    failed = task_failures(record, STATE_NAMES[stage])
    assert len(failed) == (1 if stage == "fetch" else len(RANKED)), "every task met the outage"
    assert all(set(errors) == {"DatabaseUnavailable"} for errors in failed.values()), failed
    waits = _waits_per_task(retry_sleeps)
    assert sorted(map(len, waits)) == sorted(len(errors) for errors in failed.values())
    for task in waits:
        assert within_caps(task, DATABASE_WAIT_CAPS), task
        # The attempt after all but the last wait still found the database down ...
        assert sum(task[:-1]) < OUTAGE_S
        # ... and the one after the last wait found it up: virtual time was past the outage.
        assert sum(task) + elapsed >= OUTAGE_S
    assert snapshots_in(e2e_db) == _published_once(expected)
    assert len(messages) == 1 and IDENTIFIER in messages[0]["text"]


def test_a_rank_timeout_is_retried_once(
    e2e_template: Template,
    e2e_db: str,
    expected: Expected,
    tmp_path: Path,
    retry_sleeps: RecordedSleeps,
) -> None:
    with pipeline(e2e_template, e2e_db, tmp_path, "rank:timeout") as running:
        record = execute(running, "e2e-rank-timeout")
    assert record.status == "SUCCEEDED", record.error
    failed = task_failures(record, "Rank")
    assert list(failed.values()) == [["Sandbox.Timedout"]]
    assert retry_sleeps == [5]
    assert snapshots_in(e2e_db) == _published_once(expected)

    # The same leaderboard timing out twice is a problem of its own: the run fails at Rank.
    with pipeline(e2e_template, e2e_db, tmp_path, "rank:timeout:2") as running:
        twice = running.wait(
            running.start(run_request(RUN_AT_NEXT_DAY, ("overall",)), "e2e-rank-timeout-twice")
        )
    assert (twice.status, twice.error) == ("FAILED", "Sandbox.Timedout")
    point = failure_point(twice.history)
    assert point.state == "Rank"
    assert task_failures(twice, "Rank")[point.iteration] == ["Sandbox.Timedout"] * 2
    assert "Task timed out after 600.00 seconds" in (twice.cause or "")


def test_slack_down_keeps_the_snapshots_and_a_redrive_sends_exactly_one_message(
    e2e_template: Template,
    e2e_db: str,
    expected: Expected,
    tmp_path: Path,
    retry_sleeps: RecordedSleeps,
) -> None:
    with pipeline(e2e_template, e2e_db, tmp_path, "slack:500") as running:
        record = execute(running, "e2e-slack-down")
        alert_result = running.notify_failure(record)
        assert running.slack is not None
        attempts, received = running.slack.attempts, list(running.slack.received)
    assert (record.status, record.error) == ("FAILED", "SlackUnavailable")
    assert failure_point(record.history).state == "Notify"
    assert len(retry_sleeps) == len(TRANSIENT_WAIT_CAPS)
    assert within_caps(retry_sleeps, TRANSIENT_WAIT_CAPS), retry_sleeps
    # The run's seven attempts, then the failure alert, which cannot get through either.
    assert (attempts, received) == (len(TRANSIENT_WAIT_CAPS) + 2, [])
    assert alert_result["errorType"] == "SlackUnavailable"
    assert snapshots_in(e2e_db) == _published_once(expected)

    with pipeline(e2e_template, e2e_db, tmp_path) as running:
        redriven = running.redrive(record)
        assert running.slack is not None
        received = list(running.slack.received)
    assert redriven.status == "SUCCEEDED", redriven.error
    assert len(received) == 1 and IDENTIFIER in received[0]["text"]
    assert snapshots_in(e2e_db) == _published_once(expected)


# --- two runs at once -----------------------------------------------------------------------------
def test_two_runs_started_together_for_the_same_time_publish_one_snapshot_each(
    e2e_template: Template, e2e_db: str, expected: Expected, tmp_path: Path
) -> None:
    with pipeline(e2e_template, e2e_db, tmp_path) as running:
        arns = [running.start(run_request(), name) for name in ("e2e-twin-a", "e2e-twin-b")]
        records = [running.wait(arn) for arn in arns]
        assert running.slack is not None
        messages = list(running.slack.received)
    assert [r.status for r in records] == ["SUCCEEDED", "SUCCEEDED"], [r.error for r in records]
    assert snapshots_in(e2e_db) == _published_once(expected)
    by_run = [{r["slug"]: r for r in published_results(r.history)[0]} for r in records]
    for slug in RANKED:
        a, b = by_run[0][slug], by_run[1][slug]
        assert a["snapshot_id"] == b["snapshot_id"]
        assert sorted([a["created"], b["created"]]) == [False, True]
    assert len(messages) == 2


# --- the command line -----------------------------------------------------------------------------
def test_the_command_line_runs_redrives_and_lists_local_executions(
    e2e_template: Template,
    e2e_db: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The CLI keeps its template cache in its state dir: give it the session's, not a synthesis.
    shutil.copytree(TEMPLATE_CACHE / "templates", tmp_path / "templates")
    local = ["--database-url", e2e_db, "--state-dir", str(tmp_path)]
    run = ["run", *local, "--leaderboards", "overall,genetics", "--bootstrap", "20"]

    assert main(run) == 0
    out = capsys.readouterr().out
    assert "execution SUCCEEDED" in out
    header = re.search(r"^overall: snapshot (snapshot_\S+) \(public\), [\d,]+ votes$", out, re.M)
    assert header is not None
    table = re.findall(r"^\s*(\d+)  (SimModel \d{3})\s", out[header.end() :], re.M)
    (overall,) = [s for s in snapshots_in(e2e_db)["overall"] if s.identifier == header[1]]
    assert [(int(rank), model) for rank, model in table] == [
        (e.rank, e.model) for e in overall.entries
    ]

    assert main([*run, "--inject-fault", "publish:permanent"]) == 1
    out = capsys.readouterr().out
    assert "execution FAILED: InjectedFailure" in out
    assert "Leaderboard run failed at Publish" in out
    failed = ExecutionStore(tmp_path).last_failed()
    # Ran on --database-url: the hint says so, and a redrive on another database is refused
    # before anything starts.
    assert f"`leaderboard redrive {failed.name} --database-url URL  (the URL of " in out
    assert main(["redrive", "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{failed.name} ran on {failed.database}, not the embedded database" in err
    assert not (tmp_path / "postgres").exists()

    assert main(["executions", "--state-dir", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert re.search(rf"^{failed.name}\s+FAILED\s.*InjectedFailure", listing, re.M)
    assert len(re.findall(r"^local-\S+\s+SUCCEEDED\s", listing, re.M)) == 1

    assert main(["redrive", *local]) == 0
    out = capsys.readouterr().out
    assert f"redriving {failed.name}" in out and "execution SUCCEEDED" in out
    assert main(["executions", "--state-dir", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert re.search(rf"^{failed.name}\s+SUCCEEDED\s.*redriven 1x", listing, re.M)

    assert main(["redrive", *local]) == 2
    assert "no failed local execution to redrive" in capsys.readouterr().err
    # A redrive's name stands for the execution it resumed, which has nothing left to redrive.
    assert main(["redrive", f"{failed.name}-redrive-1", *local]) == 2
    err = capsys.readouterr().err
    assert f"{failed.name} cannot be redriven" in err and "SUCCEEDED" in err
    assert main([*run, "--inject-fault", "rank:sometimes"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--inject-fault 'rank:sometimes'" in err
    assert main(["run", *local, "--leaderboards", "Overall!"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--leaderboards: 'Overall!'" in err
    # The first run's snapshots and the redriven run's, nothing from the refused commands.
    stored = snapshots_in(e2e_db)
    assert {slug: [s.visibility for s in found] for slug, found in stored.items()} == {
        "genetics": ["public", "public"],
        "overall": ["public", "public"],
    }


def test_the_command_line_reproduces_a_timed_database_outage(
    e2e_template: Template,
    e2e_db: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--inject-fault db:down:publish:3s` on the wall clock: the retries really wait, and the
    run gets past the outage on its own."""
    shutil.copytree(TEMPLATE_CACHE / "templates", tmp_path / "templates")
    local = ["--database-url", e2e_db, "--state-dir", str(tmp_path)]
    run = ["run", *local, "--leaderboards", "overall", "--bootstrap", "20"]
    started = time.monotonic()
    assert main([*run, "--inject-fault", "db:down:publish:3s"]) == 0
    out = capsys.readouterr().out
    assert time.monotonic() - started >= 3
    assert "execution SUCCEEDED" in out
    assert re.search(r"↻ retry \d+ of Publish", out), out
    assert main([*run, "--inject-fault", "db:down:publish:3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "e.g. 180s or 3m" in err


def test_ctrl_c_stops_a_local_run_and_saves_it_for_a_redrive(
    e2e_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C reaches the terminal's whole process group while the Map runs: the execution is
    stopped and saved (as the console's Stop would leave it), and a redrive completes it."""
    shutil.copytree(TEMPLATE_CACHE / "templates", tmp_path / "templates")
    local = ["--database-url", e2e_db, "--state-dir", str(tmp_path)]
    command = ["run", *local, "--leaderboards", "all", "--bootstrap", "200"]
    child = cli_process(command, own_session=True)
    assert child.stdout is not None
    seen: list[str] = []
    for line in child.stdout:
        seen.append(line)
        if line.strip().startswith("▸ Rank ["):
            os.killpg(child.pid, signal.SIGINT)
            break
    rest, err = child.communicate(timeout=180)
    out = "".join(seen) + rest
    assert child.returncode == 130, out + err
    assert "interrupted: stopping the execution" in out
    (record,) = ExecutionStore(tmp_path).all()
    assert record.status in FAILED_STATUSES, out
    assert f"{record.name} stopped; `leaderboard redrive {record.name} --database-url" in out

    assert main(["redrive", *local]) == 0
    assert f"redriving {record.name}" in capsys.readouterr().out
    assert ExecutionStore(tmp_path).load(record.name).status == "SUCCEEDED"
