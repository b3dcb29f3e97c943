"""``leaderboard backfill`` against the deployed state machine: bounded, resumable, interruptible.

What is already done is read first: the state machine's executions (ListExecutions, once), so an
instant whose backfill execution is still RUNNING is followed rather than started again, and one
whose execution -- ours by its deterministic name, or any other with the same ``run_at`` and
leaderboards, such as the scheduled run of that day -- SUCCEEDED is skipped; and, when a database
URL is given, the snapshots themselves (an instant whose snapshots all exist is skipped, one whose
earlier execution's snapshots are gone runs again). The rest start at most ``concurrency`` at a
time, each as the next attempt of its instant (``...-2`` after a failed first one), and are
followed by DescribeExecution until they end; their history says what they did.

Ctrl-C stops starting new executions and following the running ones, which go on on AWS: a rerun
of the same command picks them up. Only what the stack's operator policy grants is called
(StartExecution, ListExecutions, DescribeExecution, GetExecutionHistory).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from cli import backfill
from cli.backfill import BackfillInterrupted, Outcome
from cli.progress import Progress
from cli.stepfunctions import all_executions, describe, history
from common.errors import PipelineError, StepFunctionsUnavailable
from common.stepfunctions.executions import (
    ExecutionNameTaken,
    Selection,
    parse_input,
    start_execution,
)
from common.stepfunctions.history import FINAL_STATUSES, instant

DEFAULT_CONCURRENCY = 2
MAX_CONCURRENCY = 20
POLL_S = (1.0, 10.0)
"""Polling interval bounds: from 1 s, growing while nothing ends, up to 10 s."""
SCHEDULED_WINDOW = timedelta(days=1)
"""An execution started within a day after an instant may be the scheduled run of it."""


@dataclass(frozen=True)
class Backfill:
    """What to backfill and how (the CLI's arguments, checked)."""

    state_machine_arn: str
    moments: list[datetime]
    selection: Selection
    bootstrap: int
    publish: bool
    requested_by: str
    concurrency: int = DEFAULT_CONCURRENCY
    database_url: str | None = None


@dataclass
class _Running:
    moment: datetime
    name: str
    arn: str
    began: float


def run(
    sfn: Any,
    plan: Backfill,
    progress: Progress,
    *,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] | None = None,
) -> list[Outcome]:
    sleep, clock = sleep or time.sleep, clock or time.monotonic
    listed = all_executions(sfn, plan.state_machine_arn)
    by_name = {item["name"]: item for item in listed}
    outcomes: list[Outcome] = []
    counts: dict[str, int] = {}
    running: list[_Running] = []
    pending: list[tuple[datetime, int]] = []

    def finish(outcome: Outcome) -> None:
        outcomes.append(outcome)
        counts[outcome.result] = counts.get(outcome.result, 0) + 1
        progress.line(backfill.outcome_line(outcome))
        progress.update(len(outcomes), counts, _current(running))

    try:
        # What is done, what runs, what is to start.
        for moment in plan.moments:
            attempts = _attempts(by_name, moment, plan.selection)
            last = attempts[-1] if attempts else None
            if last is not None and last["status"] == "RUNNING":
                progress.line(f"{backfill.when(moment)}  following {last['name']}, still running")
                running.append(_Running(moment, last["name"], last["executionArn"], clock()))
                continue
            database = (
                backfill.snapshots_at(plan.database_url, moment) if plan.database_url else None
            )
            earlier = _earlier_success(sfn, plan, moment, last, listed)
            done = backfill.already_done(moment, plan.selection, database, earlier)
            if done is not None:
                finish(done)
            else:
                pending.append((moment, len(attempts) + 1))
        # Start and follow, at most `concurrency` at a time.
        interval = POLL_S[0]
        while pending or running:
            while pending and len(running) < plan.concurrency:
                moment, attempt = pending.pop(0)
                started = _start(sfn, plan, moment, attempt, clock)
                if isinstance(started, Outcome):
                    finish(started)
                else:
                    running.append(started)
                    progress.update(len(outcomes), counts, _current(running))
            if not running:
                continue
            sleep(interval)
            ended = False
            for item in list(running):
                described = describe(sfn, item.arn)
                if described["status"] not in FINAL_STATUSES:
                    continue
                running.remove(item)
                outcome = backfill.execution_outcome(
                    item.moment,
                    item.name,
                    history(sfn, item.arn),
                    plan.selection,
                    status=described["status"],
                )
                outcome.seconds = clock() - item.began
                finish(outcome)
                ended = True
            interval = POLL_S[0] if ended else min(interval * 1.5, POLL_S[1])
    except KeyboardInterrupt:
        raise _stopped(outcomes, running, plan, None) from None
    except PipelineError as exc:
        # Step Functions unreachable, credentials expired mid-way: the summary and the runs
        # left going are what the operator needs to pick up from.
        raise _stopped(outcomes, running, plan, exc) from None
    return outcomes


def _stopped(
    outcomes: list[Outcome], running: list[_Running], plan: Backfill, error: PipelineError | None
) -> BackfillInterrupted:
    """What each instant came to when the backfill stopped (Ctrl-C, or ``error``)."""
    for item in running:
        outcomes.append(
            Outcome(item.moment, "running", execution=item.name, note="still running on AWS")
        )
    seen = {o.moment for o in outcomes}
    outcomes += [Outcome(m, "not run") for m in plan.moments if m not in seen]
    names = ", ".join(item.name for item in running)
    note = (
        (f"{type(error).__name__}: {error}; " if error is not None else "")
        + (f"{len(running)} execution(s) go on on AWS ({names}); " if running else "")
        + "rerun the same command to follow them and start the rest"
    )
    return BackfillInterrupted(outcomes, note, failed=error is not None)


def _attempts(
    by_name: dict[str, dict[str, Any]], moment: datetime, selection: Selection
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while (name := backfill.execution_name(moment, selection, len(found) + 1)) in by_name:
        found.append(by_name[name])
    return found


def _earlier_success(
    sfn: Any,
    plan: Backfill,
    moment: datetime,
    last: dict[str, Any] | None,
    listed: list[dict[str, Any]],
) -> Outcome | None:
    """What the execution that already made this instant's snapshots did: our last attempt if it
    succeeded, else another succeeded execution with the same run_at covering the leaderboards
    (the scheduled run of that day, a backfill of more leaderboards); None if there is none."""
    candidates: list[dict[str, Any]] = []
    if last is not None and last["status"] == "SUCCEEDED":
        candidates.append(last)
    else:
        candidates += [
            item
            for item in listed
            if item["status"] == "SUCCEEDED"
            and backfill.attempt_of(item["name"], moment, plan.selection) is None
            and (
                moment <= instant(item["startDate"]) <= moment + SCHEDULED_WINDOW
                or item["name"].startswith(backfill.name_prefix(moment))
            )
        ]
    for item in candidates:
        if item is not last:
            request = parse_input(describe(sfn, item["executionArn"]).get("input"))
            if not backfill.covers(request, moment, plan.selection):
                continue
        return backfill.execution_outcome(
            moment, item["name"], history(sfn, item["executionArn"]), plan.selection,
            status="SUCCEEDED",
        )  # fmt: skip
    return None


def _start(
    sfn: Any, plan: Backfill, moment: datetime, attempt: int, clock: Callable[[], float]
) -> _Running | Outcome:
    """Start one attempt; an execution of that name already there (a rerun racing another) is
    followed instead; a refusal that is not ours to fix ends as this instant's failure."""
    name = backfill.execution_name(moment, plan.selection, attempt)
    request = backfill.request(
        moment,
        plan.selection,
        plan.bootstrap,
        publish=plan.publish,
        requested_by=plan.requested_by,
        name=name,
    )
    try:
        arn = start_execution(sfn, plan.state_machine_arn, request, name)
    except ExecutionNameTaken as taken:
        arn = taken.execution_arn
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        message = " ".join(str(exc.response.get("Error", {}).get("Message", "")).split())
        return Outcome(moment, "failed", execution=name, note=f"not started: {code}: {message}")
    except StepFunctionsUnavailable as exc:
        return Outcome(moment, "failed", execution=name, note=f"not started: {exc}")
    return _Running(moment, name, arn, clock())


def _current(running: list[_Running]) -> str:
    if not running:
        return ""
    shown = ", ".join(f"{item.moment:%Y-%m-%d %H:%M}" for item in running[:3])
    return f"running {shown}" + (" ..." if len(running) > 3 else "")
