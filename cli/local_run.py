"""The local commands behind ``leaderboard run``, ``redrive`` and ``executions``.

A recipe over the local runner: get the stack's template (synthesized by the CDK app, cached by
the hash of the code that shapes it), get a real PostgreSQL (the one given, or the embedded one
seeded by the simulator), execute, print progress and the published leaderboard.
"""

from __future__ import annotations

import getpass
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from cli.report import (
    ProgressPrinter,
    lambda_summary,
    left_out_votes,
    published_results,
    slack_preview,
    stage_durations,
)
from cli.tables import entries_table, style_control_table
from common import db, snapshots, standing
from common.contracts import parse_publish_result, parse_run_request
from common.slack import PLAIN, style_control_line
from common.stepfunctions.failures import summarize_cause
from local import bad_data, lambda_workers, postgres, simulate, style_boards, template
from local.faults import FaultPlan
from local.pipeline import LocalPipeline, new_execution_name
from local.store import ExecutionRecord, ExecutionStore, database_label

Echo = Callable[[str], None]


@dataclass(frozen=True)
class RunOptions:
    leaderboards: list[str] | Literal["all"] = "all"
    bootstrap: int = 1000
    database_url: str | None = None
    battles: int = 100_000
    models: int = 40
    slack_webhook: str | None = None
    faults: tuple[str, ...] = ()
    state_dir: Path = Path(".local")
    trigger: Literal["scheduled", "manual"] = "manual"
    requested_by: str | None = None
    bad_data: bool = False
    """Write ``local.bad_data``'s problems into the database before the run."""
    publish: bool = True
    """False: the snapshots are written private (the request's ``publish: false``)."""
    workers: int | None = None
    """Lambda worker processes (None: sized to the Map and the cores; 0: threads, in-process)."""


def seed_embedded(url: str, *, models: int, battles: int, echo: Echo, new_day: bool = True) -> None:
    """First run: a simulated arena. Later runs: a new day's votes, so rankings move (unless
    ``new_day`` is False: a backfill looks at the past and adds nothing)."""
    with db.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM api.battle").fetchone()
    existing = int(row[0]) if row else 0
    if existing and not new_day:
        return
    if existing == 0:
        arena = simulate.simulate_arena(models=models, battles=battles, seed=0)
        echo(f"seeding the local database: {battles:,} battles between {models} models")
    else:
        new = max(battles // 10, 100)
        arena = simulate.simulate_arena(models=models, battles=new, seed=0, battle_seed=existing)
        echo(f"adding a new day's votes: {new:,} battles (the database had {existing:,})")
    simulate.write_database(arena, url)


def run(options: RunOptions, echo: Echo) -> ExecutionRecord:
    """Execute the pipeline once and print what happened; returns the saved execution."""
    store = ExecutionStore(options.state_dir)
    faults = FaultPlan.from_specs(options.faults)
    if options.workers != 0:
        lambda_workers.warm_up()  # the workers' imports, while the database starts and is seeded
    stack = template.template(options.state_dir)
    url = database(options, echo)
    if options.bad_data:
        _write_bad_data(url, echo)
    now = datetime.now(UTC).replace(microsecond=0)
    request = parse_run_request(
        {
            "leaderboards": options.leaderboards,
            "bootstrap": options.bootstrap,
            "trigger": options.trigger,
            "requested_by": options.requested_by or local_user(),
            "correlation_id": str(uuid.uuid4()),
            "run_at": now.isoformat().replace("+00:00", "Z"),
            "publish": options.publish,
        }
    )
    with local_pipeline(options, stack, url, store, faults) as pipeline:
        name = new_execution_name(now)
        echo(
            f"execution {name}: leaderboards={_selection(request['leaderboards'])} bootstrap={request['bootstrap']}"
            + ("" if options.publish else " private")
        )
        arn = pipeline.start(dict(request), name)
        try:
            record = pipeline.wait(arn, on_event=_printer(echo))
        except KeyboardInterrupt:
            echo("interrupted: stopping the execution (the invocations under way end first)")
            stopped = pipeline.abort(arn)
            echo(f"{stopped.name} stopped; `{stopped.redrive_command}` resumes it where it stopped")
            raise
        _conclude(pipeline, record, url, echo)
    return record


def local_pipeline(
    options: RunOptions, stack: dict[str, Any], url: str, store: ExecutionStore, faults: FaultPlan
) -> LocalPipeline:
    """The local runner for ``options`` on the database at ``url``, executions kept in ``store``,
    function logs under the state dir."""
    return LocalPipeline(
        stack,
        database_url=url,
        store=store,
        slack_webhook=options.slack_webhook,
        faults=faults,
        log_path=options.state_dir / "logs" / "functions.jsonl",
        workers=options.workers,
        database_label=database_label(options.database_url),
    )


def _conclude(pipeline: LocalPipeline, record: ExecutionRecord, url: str, echo: Echo) -> None:
    """What a finished local execution prints: the failure alert, if any, then the report."""
    alert_failure(pipeline, record, echo)
    report(
        record,
        url,
        echo,
        slack=pipeline.slack.received if pipeline.slack else None,
        lambdas=lambda_summary(pipeline.invocations, pipeline.worker_count),
    )


def redrive(name: str | None, options: RunOptions, echo: Echo) -> ExecutionRecord:
    """Resume a failed local execution (the last one when ``name`` is None)."""
    store = ExecutionStore(options.state_dir)
    original = store.load(name) if name else store.last_failed()
    if original.redrive_of is not None:
        # A redrive's name (as `status` shows it) stands for the execution it resumed.
        original = store.load(original.redrive_of)
    original.check_database(database_label(options.database_url))
    url = database(options, echo, seed=False)
    faults = FaultPlan.from_specs(options.faults)
    with local_pipeline(
        options, template.template(options.state_dir), url, store, faults
    ) as pipeline:
        echo(f"redriving {original.name} (failed: {original.error})")
        record = pipeline.redrive(original, on_event=_printer(echo))
        _conclude(pipeline, record, url, echo)
    return record


def executions(state_dir: Path, echo: Echo) -> list[ExecutionRecord]:
    records = [r for r in ExecutionStore(state_dir).all() if r.redrive_of is None]
    if not records:
        echo("no local executions yet: `make run` starts one")
        return records
    echo(f"{'execution':<38} {'status':<10} {'started (UTC)':<20} {'seconds':>8}  error / redrives")
    for r in records:
        extra = r.error or ""
        if r.redrives:
            extra = f"{extra} redriven {len(r.redrives)}x".strip()
        started = r.started_at[:19].replace("T", " ")
        echo(f"{r.name:<38} {r.status:<10} {started:<20} {r.seconds:>8.1f}  {extra}")
    return records


def alert_failure(pipeline: LocalPipeline, record: ExecutionRecord, echo: Echo) -> None:
    """A failed run alerts as on AWS (the stack's rule sends it to notify in failure mode)."""
    if record.status == "SUCCEEDED":
        return
    result = pipeline.notify_failure(record)
    if isinstance(result, dict) and "errorType" in result:
        echo(f"the failure alert was not sent: {result['errorType']}: {result.get('errorMessage')}")


def report(
    record: ExecutionRecord,
    database_url: str,
    echo: Echo,
    *,
    slack: list[dict[str, Any]] | None,
    lambdas: str | None = None,
) -> None:
    """Stage timings, the published leaderboards, and where things went."""
    echo("")
    echo(f"{record.name}: {record.status} in {record.seconds:.1f} s")
    if record.error:
        echo(f"  failed with {record.error}: {summarize_cause(record.cause)}")
        # The alert names the console and the AWS CLI; on this machine the redrive is ours.
        echo(f"  fix the cause, then `{record.redrive_command}` resumes it where it stopped")
    timings = ", ".join(
        f"{name} {seconds:.2f} s" for name, seconds in stage_durations(record.history)
    )
    if timings:
        echo(f"  stage time (Map stages summed over leaderboards): {timings}")
    if lambdas:
        echo(f"  {lambdas}")
    results, skipped = published_results(record.history)
    results.sort(key=lambda r: (r["slug"] != "overall", r["slug"]))
    for item in skipped:
        echo(f"  skipped {item['slug'] or '(empty slug)'}: {item['reason']}")
    for item in left_out_votes(record.history):
        echo(f"  left out of {item['slug']}: {item['count']:,} vote(s), {item['reason']}")
    if record.status == "SUCCEEDED" and not results:
        echo("  nothing was published: BixArena still shows the previous snapshots")
    for result in results[:1]:
        echo("")
        echo(
            f"{result['slug']}: snapshot {result['snapshot_identifier']} ({result['visibility']}), {result['vote_count']:,} votes"
        )
        _standing(result, echo)
        echo(snapshot_table(database_url, result["snapshot_id"]))
        report_style_control(result, database_url, echo)
    for result in results[1:]:
        top = result["top"][0]["model"] if result.get("top") else "-"
        echo(
            f"{result['slug']}: snapshot {result['snapshot_identifier']} ({result['visibility']}),"
            f" {result['entry_count']} models, {result['vote_count']:,} votes, #1 {top}"
        )
        _standing(result, echo)
        line = _style_line(result)
        if line is not None:
            echo(f"  {line}")
    if results:
        echo(f"snapshots written to {postgres.redact(database_url)}")
    private = [r for r in results if r["visibility"] == "private"]
    for result in private[:1]:
        echo(
            f"{len(private)} snapshot(s) private, BixArena shows nothing new: review, then publish"
            f" each, e.g. `leaderboard snapshots publish {result['snapshot_identifier']}"
            f" --leaderboard {result['slug']}`"
        )
    if slack:
        echo("")
        echo("Slack message (local capture):")
        for message in slack:
            echo(_indent(slack_preview(message)))


def _standing(result: dict[str, Any], echo: Echo) -> None:
    """A snapshot that BixArena does not show (history, private) says so under its line."""
    placed = standing.of_result(parse_publish_result(result))
    if placed.standing != "live":
        echo(f"  {standing.describe(placed)}")


def report_style_control(result: dict[str, Any], database_url: str, echo: Echo) -> None:
    """After a leaderboard's table: its style-controlled table when it was published, else the
    style-control line (effect, shifts, why not published)."""
    line = _style_line(result)
    board = result.get("style_board") or {}
    style = result.get("style") or {}
    if not board.get("snapshot_id"):
        if line is not None:
            echo(line)
        return
    echo("")
    echo(
        f"{board['slug']}: {result['slug']} with style control (answer length and markdown held"
        f" equal), snapshot {result['snapshot_identifier']}, {style.get('votes_used', 0):,} votes"
    )
    with db.connect(database_url, read_only=True) as conn:
        rows = snapshots.snapshot_entries(conn, board["snapshot_id"])
        plain = snapshots.snapshot_entries(conn, result["snapshot_id"])
    echo(style_control_table(rows, {row.model_id: row.rank for row in plain}))
    if line is not None:
        echo(line)


def _style_line(result: dict[str, Any]) -> str | None:
    return style_control_line(parse_publish_result(result), PLAIN)


def snapshot_table(database_url: str, snapshot_id: str) -> str:
    """A snapshot's entries, with each model's move since the leaderboard's previous public one."""
    with db.connect(database_url, read_only=True) as conn:
        snapshot = snapshots.get_snapshot(conn, snapshot_id)
        previous = snapshots.previous_public_snapshot(conn, snapshot)
        rows = snapshots.snapshot_entries(conn, snapshot_id)
        before = snapshots.snapshot_entries(conn, previous.id) if previous else []
    return entries_table(rows, {row.model_id: row.rank for row in before})


def database(options: RunOptions, echo: Echo, *, seed: bool = True, new_day: bool = True) -> str:
    """The database a local command runs on: --database-url as it is, else the embedded one
    (seeded by ``seed_embedded`` when ``seed``)."""
    if options.database_url:
        # Reached once before anything starts: an unreachable server is one line now, not a
        # Fetch retrying for minutes.
        with db.connect(options.database_url):
            return options.database_url
    url = postgres.create_database(
        postgres.embedded_server(options.state_dir / "postgres"), postgres.LOCAL_DATABASE
    )
    if seed:
        seed_embedded(
            url, models=options.models, battles=options.battles, echo=echo, new_day=new_day
        )
        for slug in style_boards.create_rows(url):
            echo(f"created the style-controlled leaderboard {slug} (BixArena's admins do on AWS)")
    return url


def _write_bad_data(url: str, echo: Echo) -> None:
    written = bad_data.write_bad_data(url, now=datetime.now(UTC))
    echo(f"data problems written: {len(written)} (each already there is left as it is)")
    for line in written:
        echo(f"  {line}")


def _printer(echo: Echo) -> Callable[[dict[str, Any], list[dict[str, Any]]], None]:
    progress = ProgressPrinter()

    def on_event(event: dict[str, Any], history: list[dict[str, Any]]) -> None:
        line = progress(event, history)
        if line is not None:
            echo(line)

    return on_event


def _selection(leaderboards: list[str] | str) -> str:
    return leaderboards if isinstance(leaderboards, str) else ",".join(leaderboards)


def local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "local"


def _indent(text: str) -> str:
    return "\n".join(f"  | {line}" for line in text.splitlines())
