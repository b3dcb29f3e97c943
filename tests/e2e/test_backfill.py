"""``leaderboard backfill`` end to end: the deployed definition over a real PostgreSQL with the
simulated arena, locally and against Step Functions in moto (the stack's definition registered
there, the real stages behind its functions).

What each instant publishes is recomputed independently (``engine_snapshot``: upstream's filters
in SQL, votes up to the instant, the ranking engine), so the snapshots are checked entry by entry;
reruns, interruptions and failures are checked by what the database and Step Functions hold
afterwards.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cli import backfill, backfill_aws
from cli.main import main
from common.errors import StepFunctionsUnavailable
from local.faults import FaultPlan
from local.pipeline import LocalPipeline
from local.store import ExecutionStore
from tests.e2e_fixtures import (
    BOOTSTRAP,
    RANKED,
    SPARSE,
    TEMPLATE_CACHE,
    cli_process,
    deployed_settings,
    e2e_arena,
    e2e_db,
    e2e_template,
    engine_snapshot,
    pipeline,
    snapshots_in,
)

__all__ = ["e2e_arena", "e2e_db", "e2e_template"]

Template = dict[str, Any]
# The arena's votes run up to 2025-06-01 00:00 (SEED_NOW), about 50 a day.
DAYS = ("2025-05-29", "2025-05-30", "2025-05-31")
INSTANTS = [datetime.fromisoformat(f"{day}T06:00:00+00:00") for day in DAYS]
BOARDS = ",".join((*RANKED, SPARSE))


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """A state dir holding the session's template (the CLI would synthesize it otherwise)."""
    shutil.copytree(TEMPLATE_CACHE / "templates", tmp_path / "templates")
    return tmp_path


def _backfill(*extra: str) -> list[str]:
    return ["backfill", "--from", DAYS[0], "--to", DAYS[-1], "--at", "06:00", *extra]


def _summary_rows(out: str) -> list[list[str]]:
    """The summary table's rows: instant, result, published, skipped, failed, execution / note."""
    table = out.split("instant (UTC)", 1)[1].splitlines()[2:]
    rows = []
    for line in table:
        if not line.strip():
            break
        parts = line.split()
        rows.append([f"{parts[0]} {parts[1]}", *parts[2:7]])
    return rows


def _created(url: str) -> dict[str, list[tuple[str, datetime]]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT l.slug, s.snapshot_identifier, s.created_at FROM api.leaderboard_snapshot s"
            " JOIN api.leaderboard l ON l.id = s.leaderboard_id ORDER BY s.created_at, s.id"
        ).fetchall()
    found: dict[str, list[tuple[str, datetime]]] = {}
    for slug, identifier, created in rows:
        found.setdefault(slug, []).append((identifier, created))
    return found


def _expected(template: Template, url: str, instants: list[datetime]) -> dict[str, list[Any]]:
    min_evals = deployed_settings(template).min_evals
    return {
        slug: [
            engine_snapshot(url, slug, backfill.run_at(m), min_evals=min_evals) for m in instants
        ]
        for slug in RANKED
    }


# --- locally -------------------------------------------------------------------------------------
def test_a_local_backfill_publishes_each_instant_with_its_votes_and_a_rerun_skips_them(
    e2e_template: Template, e2e_db: str, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local = ["--database-url", e2e_db, "--state-dir", str(state_dir)]
    command = _backfill("--leaderboards", BOARDS, "--bootstrap", str(BOOTSTRAP), *local)
    assert main(command) == 0
    out = capsys.readouterr().out
    expected = _expected(e2e_template, e2e_db, INSTANTS)
    stored = snapshots_in(e2e_db)
    assert sorted(stored) == sorted(RANKED), f"{SPARSE} has no votes: skipped, never published"
    votes: dict[str, list[int]] = {}
    for slug in RANKED:
        assert stored[slug] == expected[slug]
        votes[slug] = [int(re.findall(r"\d+", s.description)[0]) for s in stored[slug]]
        assert votes[slug] == sorted(votes[slug]), "a later instant counts the earlier votes too"
    assert len(set(votes["overall"])) == 3, f"each day brings overall new votes: {votes}"
    for slug, snapshots in _created(e2e_db).items():
        # The snapshots are in data order: instant by instant.
        assert [identifier for identifier, _ in snapshots] == [
            f"{m:snapshot_%Y-%m-%d_%H-%M-%S}" for m in INSTANTS
        ], slug
    names = [backfill.execution_name(m, [*RANKED, SPARSE]) for m in INSTANTS]
    assert _summary_rows(out) == [
        [f"{day} 06:00", "published", "3", "1", "0", name]
        for day, name in zip(DAYS, names, strict=True)
    ]
    assert f"skipped for their data: {SPARSE}: fewer than 30 battles (0)" in out
    records = {r.name: r for r in ExecutionStore(state_dir).all()}
    assert sorted(records) == sorted(names)
    for moment, name in zip(INSTANTS, names, strict=True):
        assert records[name].input["run_at"] == backfill.run_at(moment)
        assert records[name].input["correlation_id"] == name

    assert main(command) == 0
    again = capsys.readouterr().out
    # Every instant is done: the rare-diseases gap is explained by the earlier execution.
    assert [row[:5] for row in _summary_rows(again)] == [
        [f"{day} 06:00", "exists", "0", "4", "0"] for day in DAYS
    ]
    assert "3 instant(s): 3 already there; 0 snapshot(s) written" in again
    assert snapshots_in(e2e_db) == stored
    assert len(ExecutionStore(state_dir).all()) == 3, "nothing ran again"


def test_an_interrupted_local_backfill_resumes_where_it_stopped(
    e2e_template: Template, e2e_db: str, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command = _backfill(
        "--leaderboards", "overall,genetics", "--bootstrap", str(BOOTSTRAP),
        "--database-url", e2e_db, "--state-dir", str(state_dir),
    )  # fmt: skip
    child = cli_process(command)
    assert child.stdout is not None
    seen: list[str] = []
    for line in child.stdout:
        seen.append(line)
        if line.startswith(f"{DAYS[0]} 06:00 UTC  published"):
            child.send_signal(signal.SIGINT)  # Ctrl-C while the second instant runs
            break
    rest, err = child.communicate(timeout=180)
    out = "".join(seen) + rest
    assert child.returncode == 130, out + err
    first, second, third = (row[1] for row in _summary_rows(out))
    # Ctrl-C lands while the second instant runs (or, rarely, just before it starts).
    assert (first, third) == ("published", "not")
    assert second in ("interrupted", "not"), out
    assert "interrupted: rerun the same command: it skips the instants already done" in out

    assert main(command) == 0
    resumed = [row[1] for row in _summary_rows(capsys.readouterr().out)]
    # An execution under way when Ctrl-C came ends before the command does: its snapshots are
    # there, and the rerun finds them.
    assert resumed == ["exists", "exists" if second == "interrupted" else "published", "published"]
    expected = _expected(e2e_template, e2e_db, INSTANTS)
    stored = snapshots_in(e2e_db)
    assert {slug: stored[slug] for slug in ("overall", "genetics")} == {
        slug: expected[slug] for slug in ("overall", "genetics")
    }


# --- against Step Functions (moto) ---------------------------------------------------------------
FOUR_DAYS = ("2025-05-28", "2025-05-31")
FOUR = [datetime(2025, 5, day, 6, tzinfo=UTC) for day in (28, 29, 30, 31)]
PAIR = ["overall", "genetics"]


@pytest.fixture
def deployed(e2e_template: Template, e2e_db: str, tmp_path: Path) -> Iterator[LocalPipeline]:
    """The stack's state machine and functions in moto, the real stages behind them."""
    with pipeline(e2e_template, e2e_db, tmp_path) as running:
        yield running


def _aws(deployed: LocalPipeline, *extra: str, boards: str = "overall,genetics") -> list[str]:
    return [
        "backfill", "--from", FOUR_DAYS[0], "--to", FOUR_DAYS[1], "--at", "06:00",
        "--leaderboards", boards, "--bootstrap", "20",
        "--state-machine-arn", deployed.state_machine_arn, *extra,
    ]  # fmt: skip


def _executions(deployed: LocalPipeline) -> list[dict[str, Any]]:
    listed = deployed.sfn.list_executions(stateMachineArn=deployed.state_machine_arn)["executions"]
    return [deployed.sfn.describe_execution(executionArn=e["executionArn"]) for e in listed]


def _most_at_once(executions: list[dict[str, Any]]) -> int:
    spans = [(e["startDate"], e.get("stopDate") or datetime.now(UTC)) for e in executions]
    return max(sum(1 for s, t in spans if s <= start < t) for start, _ in spans)


def test_an_aws_backfill_starts_named_executions_at_most_n_at_a_time_and_a_rerun_skips_them(
    deployed: LocalPipeline, e2e_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_aws(deployed, "--concurrency", "2")) == 0
    out = capsys.readouterr().out
    executions = _executions(deployed)
    names = {backfill.execution_name(m, PAIR): m for m in FOUR}
    assert sorted(e["name"] for e in executions) == sorted(names)
    for execution in executions:
        sent = json.loads(execution["input"])
        assert sent["run_at"] == backfill.run_at(names[execution["name"]])
        assert (sent["leaderboards"], sent["bootstrap"], sent["publish"]) == (PAIR, 20, True)
        assert (sent["trigger"], sent["correlation_id"]) == ("manual", execution["name"])
        assert execution["status"] == "SUCCEEDED"
    assert _most_at_once(executions) == 2
    assert [row[1:5] for row in _summary_rows(out)] == [["published", "2", "0", "0"]] * 4
    identifiers = {s.identifier for slug in PAIR for s in snapshots_in(e2e_db)[slug]}
    assert identifiers == {f"{m:snapshot_%Y-%m-%d_%H-%M-%S}" for m in FOUR}

    assert main(_aws(deployed)) == 0
    again = capsys.readouterr().out
    assert [row[1:5] for row in _summary_rows(again)] == [["exists", "0", "2", "0"]] * 4
    assert "done by this earlier execution" in again
    assert main(_aws(deployed, "--database-url", e2e_db)) == 0
    assert "already in the database" in capsys.readouterr().out
    # A backfill of fewer leaderboards finds them made by the executions of this one.
    assert main(_aws(deployed, boards="overall")) == 0
    fewer = capsys.readouterr().out
    assert [row[1] for row in _summary_rows(fewer)] == ["exists"] * 4
    assert len(_executions(deployed)) == 4, "nothing started again"


def test_an_aws_backfill_retries_failed_instants_as_new_attempts(
    deployed: LocalPipeline, e2e_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    deployed.faults = FaultPlan.from_specs(["publish:permanent"])
    assert main(_aws(deployed, "--concurrency", "4")) == 1
    out = capsys.readouterr().out
    assert [row[1] for row in _summary_rows(out)] == ["failed"] * 4
    assert "FAILED at Publish [" in out and "InjectedFailure" in out
    assert "some instants failed: fix the cause, then rerun the same command" in out

    deployed.faults = FaultPlan()
    assert main(_aws(deployed)) == 0
    assert [row[1] for row in _summary_rows(capsys.readouterr().out)] == ["published"] * 4
    by_name = {e["name"]: e["status"] for e in _executions(deployed)}
    for moment in FOUR:
        first = backfill.execution_name(moment, PAIR)
        assert (by_name[first], by_name[f"{first}-2"]) == ("FAILED", "SUCCEEDED")
    assert len(by_name) == 8
    assert all(len(snapshots_in(e2e_db)[slug]) == 4 for slug in PAIR)


def _raising_at_first_poll(error: BaseException) -> type:
    """A stand-in for the ``time`` module of ``cli.backfill_aws``: the backfill's first wait
    between polls raises ``error`` (Ctrl-C, or Step Functions failing), after it started runs."""

    class Clock:
        monotonic = staticmethod(time.monotonic)

        @staticmethod
        def sleep(seconds: float) -> None:
            raise error

    return Clock


def test_an_interrupted_aws_backfill_leaves_the_runs_going_and_a_rerun_follows_them(
    deployed: LocalPipeline,
    e2e_db: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with monkeypatch.context() as patched:
        patched.setattr(backfill_aws, "time", _raising_at_first_poll(KeyboardInterrupt()))
        assert main(_aws(deployed, "--concurrency", "2")) == 130
    out = capsys.readouterr().out
    assert [row[1] for row in _summary_rows(out)] == ["running", "running", "not", "not"]
    first_two = [backfill.execution_name(m, PAIR) for m in FOUR[:2]]
    assert f"interrupted: 2 execution(s) go on on AWS ({', '.join(first_two)})" in out
    assert sorted(e["name"] for e in _executions(deployed)) == sorted(first_two)

    assert main(_aws(deployed)) == 0
    results = [row[1] for row in _summary_rows(capsys.readouterr().out)]
    # The two left running were followed to their end, or had already ended: done either way.
    assert {*results[:2]} <= {"published", "exists"} and results[2:] == ["published"] * 2
    executions = _executions(deployed)
    assert sorted(e["name"] for e in executions) == sorted(
        backfill.execution_name(m, PAIR) for m in FOUR
    ), "each instant ran once"
    assert {e["status"] for e in executions} == {"SUCCEEDED"}
    assert all(len(snapshots_in(e2e_db)[slug]) == 4 for slug in PAIR)


def test_an_aws_backfill_stopped_by_an_error_still_summarizes_what_it_left_running(
    deployed: LocalPipeline, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Step Functions stops answering (or the credentials expire) mid-way: the summary, and the
    executions still going on AWS, are printed as for Ctrl-C, and the command fails (exit 1)."""

    unreachable = StepFunctionsUnavailable(
        "Step Functions did not answer (EndpointConnectionError)"
    )
    with monkeypatch.context() as patched:
        patched.setattr(backfill_aws, "time", _raising_at_first_poll(unreachable))
        assert main(_aws(deployed, "--concurrency", "2")) == 1
    out = capsys.readouterr().out
    assert [row[1] for row in _summary_rows(out)] == ["running", "running", "not", "not"]
    first_two = [backfill.execution_name(m, PAIR) for m in FOUR[:2]]
    assert (
        "stopped: StepFunctionsUnavailable: Step Functions did not answer"
        f" (EndpointConnectionError); 2 execution(s) go on on AWS ({', '.join(first_two)})"
    ) in out


def test_backfill_refusals_are_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LEADERBOARD_STATE_MACHINE_ARN", raising=False)
    future = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    cases = [
        (["--from", "2025-05-02", "--to", "2025-05-01"], "--to 2025-05-01 is before --from 2025-05-02"),
        (["--from", "2025-05-01", "--to", future], "has not come yet"),
        (["--from", "2025-05-01", "--to", "2025-05-02", "--concurrency", "3"], "--concurrency applies to AWS only"),
        (["--from", "2025-05-01", "--to", "2025-05-02", "--leaderboards", "astrology", "--state-machine-arn", "arn:aws:states:us-east-1:123456789012:stateMachine:x"], "--leaderboards: unknown leaderboard(s) astrology"),
        (["--from", "2025-05-01", "--to", "2025-05-02", "--leaderboards", "Bad Slug"], "--leaderboards: 'Bad Slug' is not a valid leaderboard slug"),
        (["--from", "2025-05-01", "--to", "2025-05-02", "--every", "90m"], "--every: '90m' is not an interval"),
        (["--from", "2025-05-01", "--to", "2025-05-02", "--profile", "ops"], "--profile apply to AWS only"),
    ]  # fmt: skip
    for arguments, message in cases:
        capsys.readouterr()
        code = main(["backfill", "--state-dir", str(tmp_path), *arguments])
        out, err = capsys.readouterr()
        assert (code, out) == (2, ""), arguments
        assert err.count("\n") == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_a_dry_run_prints_the_plan_and_runs_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(_backfill("--dry-run", "--state-dir", str(tmp_path), "--leaderboards", "overall"))
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0] == (
        "backfill 3 instant(s) from 2025-05-29 06:00 UTC to 2025-05-31 06:00 UTC, every 1d, "
        "at 06:00 (--at)"
    )
    assert out.splitlines()[2:] == [
        f"  {day} 06:00 UTC  run_at {day}T06:00:00Z  {backfill.execution_name(m, ['overall'])}"
        for day, m in zip(DAYS, INSTANTS, strict=True)
    ]
    assert list(tmp_path.iterdir()) == []
