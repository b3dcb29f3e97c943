"""``leaderboard backfill`` on this machine: the instants one after another through the local run.

One local pipeline (the deployed definition in moto, the real stages, a real PostgreSQL) runs
every instant's execution in turn. The database is the one given with --database-url, used as it
is, or the embedded one (seeded with a simulated arena only when empty: a backfill adds no votes).
Each execution is saved under the state dir with its deterministic name, which, with the
snapshots in the database, tells a rerun what is already done. Ctrl-C stops after the execution
under way has ended (the local interpreter cannot abandon it), and the summary says where it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime

from cli import backfill, local_run
from cli.backfill import BackfillInterrupted, Outcome
from cli.progress import Progress
from common.stepfunctions.executions import Selection
from local import template
from local.faults import FaultPlan
from local.pipeline import LocalPipeline
from local.store import ExecutionRecord, ExecutionStore, LocalRunError

Echo = Callable[[str], None]


def earlier_attempts(
    store: ExecutionStore, moment: datetime, selection: Selection
) -> list[ExecutionRecord]:
    """The saved executions of this instant, first attempt first."""
    found: list[ExecutionRecord] = []
    while True:
        try:
            found.append(
                store.load(backfill.execution_name(moment, selection, attempt=len(found) + 1))
            )
        except LocalRunError:
            return found


def run(
    options: local_run.RunOptions,
    moments: list[datetime],
    progress: Progress,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> list[Outcome]:
    selection = options.leaderboards
    store = ExecutionStore(options.state_dir)
    url = local_run.database(options, progress.line, new_day=False)
    requested_by = local_run.local_user()
    outcomes: list[Outcome] = []
    counts: dict[str, int] = {}

    def finish(outcome: Outcome) -> None:
        outcomes.append(outcome)
        counts[outcome.result] = counts.get(outcome.result, 0) + 1
        progress.line(backfill.outcome_line(outcome))
        progress.update(len(outcomes), counts)

    with ExitStack() as stack:
        pipeline: LocalPipeline | None = None
        started: tuple[datetime, str] | None = None
        try:
            for moment in moments:
                started = None
                attempts = earlier_attempts(store, moment, selection)
                done = backfill.already_done(
                    moment,
                    selection,
                    backfill.snapshots_at(url, moment),
                    _outcome_of(attempts[-1], moment, selection) if attempts else None,
                )
                if done is not None:
                    finish(done)
                    continue
                if pipeline is None:  # set up only once something is to run (seconds)
                    pipeline = stack.enter_context(
                        local_run.local_pipeline(
                            options,
                            template.template(options.state_dir),
                            url,
                            store,
                            FaultPlan.from_specs(options.faults),
                        )
                    )
                name = backfill.execution_name(moment, selection, len(attempts) + 1)
                request = backfill.request(
                    moment,
                    selection,
                    options.bootstrap,
                    publish=options.publish,
                    requested_by=requested_by,
                    name=name,
                )
                progress.update(len(outcomes), counts, f"{backfill.when(moment)} {name}")
                began = clock()
                started = (moment, name)
                record = pipeline.wait(pipeline.start(dict(request), name))
                outcome = _outcome_of(record, moment, selection)
                outcome.seconds = clock() - began
                if record.status != "SUCCEEDED":
                    local_run.alert_failure(pipeline, record, progress.line)
                finish(outcome)
        except KeyboardInterrupt:
            if started is not None and started[0] not in {o.moment for o in outcomes}:
                outcomes.append(
                    Outcome(started[0], "interrupted", execution=started[1], note="Ctrl-C")
                )
                progress.line("interrupted: letting the execution under way end (at most a minute)")
            seen = {o.moment for o in outcomes}
            outcomes += [Outcome(m, "not run") for m in moments if m not in seen]
            raise BackfillInterrupted(
                outcomes, "rerun the same command: it skips the instants already done"
            ) from None
    return outcomes


def _outcome_of(record: ExecutionRecord, moment: datetime, selection: Selection) -> Outcome:
    return backfill.execution_outcome(
        moment, record.name, record.history, selection, status=record.status
    )
