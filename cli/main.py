"""The ``leaderboard`` command line: argument parsing and exit codes, nothing else.

Each subcommand is a small function that calls into the module owning its concern. Heavy imports
(numpy, boto3, the CDK) happen inside the functions so ``--help`` stays instant.
Exit codes: 0 success, 1 the run or command failed, 2 bad usage or bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from cli.arguments import (
    UsageError,
    checked_database_url,
    echo,
    int_between,
    non_negative_int,
    positive_int,
)
from common.errors import InvalidInput, NotEnoughData, PipelineError

if TYPE_CHECKING:
    from datetime import datetime

    from cli.backfill import Outcome
    from cli.local_run import RunOptions
    from cli.progress import Progress
    from common import ranking, votes
    from common.stepfunctions.executions import Selection

Handler = Callable[[argparse.Namespace], int]


def _snapshots(name: str) -> Handler:
    """A ``cli.snapshots`` command, imported when it runs: the module loads psycopg, which
    ``leaderboard rank`` and ``--help`` do not need."""

    def run(args: argparse.Namespace) -> int:
        command: Handler = getattr(importlib.import_module("cli.snapshots"), name)
        return command(args)

    return run


BAD_DATA_HELP = (
    "also write the data problems real arenas produce (a ladder without upsets, thin evidence,"
    " a self-battle, a vote of a vanished model, a nameless model, leaderboard rows our"
    " contract cannot carry; see local/bad_data.py): each leaderboard they touch is skipped"
    " with its reason or publishes without the bad rows, and the run still succeeds"
)
PRIVATE_HELP = (
    "write the snapshots private (the request's publish: false): BixArena keeps showing what it "
    "shows until `leaderboard snapshots publish`"
)
PRIVATE_HINT = (
    "private (BixArena shows nothing new): review with `leaderboard snapshots show`, "
    "then `leaderboard snapshots publish`"
)


# --- db ------------------------------------------------------------------------------------------
def cmd_db_init(args: argparse.Namespace) -> int:
    from local import schema

    try:
        applied = schema.apply_migrations(args.database_url)
    except schema.SchemaChanged as exc:
        raise UsageError(f"--database-url: {exc}") from None
    print(f"schema ready ({len(applied)} migration(s) applied: {', '.join(applied) or 'none'})")
    return 0


# --- simulate --------------------------------------------------------------------------------------
def cmd_simulate(args: argparse.Namespace) -> int:
    from local import simulate

    if args.output and args.database_url:
        raise UsageError("give either --output or --database-url, not both")
    if args.output and args.with_bad_data:
        raise UsageError("--with-bad-data writes rows into a database: give --database-url")
    arena = simulate.simulate_arena(models=args.models, battles=args.battles, seed=args.seed)
    if args.output:
        simulate.write_parquet(arena, args.output)
        print(f"wrote {args.battles} battles between {args.models} models to {args.output}")
        return 0
    from datetime import UTC, datetime

    from local import bad_data, postgres, schema

    try:
        with postgres.database(args.database_url) as url:
            counts = simulate.write_database(arena, url)
            problems = (
                bad_data.write_bad_data(url, now=datetime.now(UTC)) if args.with_bad_data else []
            )
    except schema.SchemaChanged as exc:
        raise UsageError(f"--database-url: {exc}") from None
    print(
        f"wrote {counts['battles']} battles ({counts['evaluations']} evaluations) between "
        f"{counts['models']} models to {postgres.redact(url)}"
    )
    for line in problems:
        print(f"  data problem {line}")
    return 0


# --- rank ----------------------------------------------------------------------------------------
def cmd_rank(args: argparse.Namespace) -> int:
    import json

    from common import ranking, votes

    style = None
    if args.style_control and votes.has_style_columns(args.battles):
        style = votes.read_votes_with_style(args.battles)
        data = style.votes
    else:
        data = votes.read_votes(args.battles)
    if data.n_votes == 0:
        raise UsageError(f"{args.battles}: the file holds no votes")
    if len(data.models) < 2:
        raise UsageError(f"{args.battles}: the votes name fewer than two models")
    if args.style_control and style is None:
        raise UsageError(
            f"{args.battles}: no style columns ({', '.join(votes.STYLE_COLUMNS)}) for "
            "--style-control"
        )
    options = {
        "bootstrap": args.bootstrap,
        "seed": args.seed,
        "ci_method": args.ci,
        "significant": args.significant,
        "min_evals": args.min_evals,
    }
    result = ranking.rank_votes(data, **options)
    if args.style_control and style is not None:
        text = _style_comparison(result, style, args.format, options)
    elif args.format == "json":
        text = json.dumps(result.to_records(), indent=2)
    else:
        text = result.to_table()
    if not args.output:
        print(text)
        return 0
    try:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text + "\n")
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    print(
        f"ranked {len(result.ranked)} of {len(result.entries)} models from {result.n_votes} votes"
    )
    return 0


def _style_comparison(
    plain: ranking.Ranking,
    style: votes.VotesWithStyle,
    output_format: str,
    options: dict[str, Any],
) -> str:
    """Both rankings side by side with the rank shifts, then the style coefficients."""
    import json

    from common.ranking import rank_with_style, shifts

    styled_votes = style.styled_votes()
    if styled_votes.n_votes == 0:
        raise UsageError("--style-control: no vote has style counts (every answer is missing)")
    try:
        styled = rank_with_style(styled_votes, style.features, **options)
    except NotEnoughData as exc:
        raise UsageError(f"--style-control: {exc}") from None
    if output_format == "json":
        return json.dumps(shifts.comparison_records(plain, styled, style.left_out), indent=2)
    return shifts.comparison_table(plain, styled, style.left_out)


# --- local runs ----------------------------------------------------------------------------------
def _run_options(args: argparse.Namespace) -> RunOptions:
    from pathlib import Path

    from cli.local_run import RunOptions
    from common.contracts import parse_bootstrap, parse_leaderboards

    return RunOptions(
        leaderboards=parse_leaderboards(getattr(args, "leaderboards", "all"), "--leaderboards"),
        bootstrap=parse_bootstrap(getattr(args, "bootstrap", 1000), "--bootstrap"),
        database_url=args.database_url,
        battles=getattr(args, "battles", 100_000),
        models=getattr(args, "models", 40),
        slack_webhook=args.slack_webhook,
        faults=tuple(getattr(args, "inject_fault", None) or ()),
        state_dir=Path(args.state_dir),
        bad_data=getattr(args, "with_bad_data", False),
        publish=not getattr(args, "private", False),
        workers=getattr(args, "workers", None),
    )


def cmd_run(args: argparse.Namespace) -> int:
    from cli import local_run

    options = _run_options(args)
    record = local_run.run(options, echo())
    return 0 if record.status == "SUCCEEDED" else 1


def cmd_redrive(args: argparse.Namespace) -> int:
    from cli import local_run
    from cli.stepfunctions import is_execution_arn
    from local.store import LocalRunError

    if is_execution_arn(args.execution):
        return _redrive_aws(args)
    _aws_only(args, "a local execution is redriven on this machine")
    try:
        record = local_run.redrive(args.execution, _run_options(args), echo())
    except LocalRunError as exc:
        raise UsageError(str(exc)) from None
    return 0 if record.status == "SUCCEEDED" else 1


def cmd_executions(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cli import local_run

    local_run.executions(Path(args.state_dir), print)
    return 0


# --- operator tools: trigger, status, AWS redrive (cli.stepfunctions) ------------------------------
def _state_machine_arn(args: argparse.Namespace) -> str | None:
    import os

    from cli.stepfunctions import STATE_MACHINE_ARN_ENV
    from common.stepfunctions.history import parse_state_machine_arn

    arn = args.state_machine_arn or os.environ.get(STATE_MACHINE_ARN_ENV) or None
    return parse_state_machine_arn(arn) if arn else None


def _aws_only(args: argparse.Namespace, why: str) -> None:
    given = [
        flag for flag, value in (("--region", args.region), ("--profile", args.profile)) if value
    ]
    if given:
        raise UsageError(f"{' and '.join(given)} apply to AWS only: {why}")


def cmd_trigger(args: argparse.Namespace) -> int:
    from cli import execution_view, stepfunctions
    from common.contracts import parse_bootstrap, parse_leaderboards
    from common.stepfunctions import history

    leaderboards = stepfunctions.known_leaderboards(
        parse_leaderboards(args.leaderboards, "--leaderboards")
    )
    bootstrap = parse_bootstrap(args.bootstrap, "--bootstrap")
    arn = _state_machine_arn(args)
    if arn is None:
        _aws_only(args, f"give --state-machine-arn or set {stepfunctions.STATE_MACHINE_ARN_ENV}")
        echo()(
            f"no state machine ARN given: running the pipeline on this machine ({args.state_dir})"
        )
        return cmd_run(args)
    sfn, session = stepfunctions.stepfunctions(args.region or history.region_of(arn), args.profile)
    started = stepfunctions.trigger(
        sfn, arn, leaderboards, bootstrap, stepfunctions.caller(session), publish=not args.private
    )
    print(f"started {started.name}")
    print(f"  execution      {started.execution_arn}")
    print(f"  correlation id {started.correlation_id}")
    if args.private:
        print(f"  snapshots      {PRIVATE_HINT}")
    if not args.wait:
        print(f"  follow it      leaderboard status {started.execution_arn}")
        return 0
    final = stepfunctions.follow(sfn, started.execution_arn, echo())
    view = execution_view.aws_view(final, stepfunctions.history(sfn, started.execution_arn))
    print("\n".join(["", *execution_view.format_view(view)]))
    return 0 if final["status"] == "SUCCEEDED" else 1


def cmd_backfill(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from cli import backfill, stepfunctions
    from cli.backfill_aws import DEFAULT_CONCURRENCY, MAX_CONCURRENCY
    from cli.progress import Progress
    from common.contracts import parse_bootstrap, parse_leaderboards
    from local.template import REPO_ROOT

    arn = _state_machine_arn(args)
    selection = parse_leaderboards(args.leaderboards, "--leaderboards")
    if arn is not None:  # as the admin endpoint checks; a local database may hold others
        selection = stepfunctions.known_leaderboards(selection)
    bootstrap = parse_bootstrap(args.bootstrap, "--bootstrap")
    every = backfill.parse_every(args.every)
    at = (
        backfill.parse_at(args.at)
        if args.at
        else backfill.deployed_schedule(REPO_ROOT / "cdk.json")
    )
    first = backfill.parse_date(args.start, "--from")
    last = backfill.parse_date(args.to, "--to")
    moments = backfill.instants(first, last, at, every, datetime.now(UTC))
    if arn is None:
        _aws_only(args, f"give --state-machine-arn or set {stepfunctions.STATE_MACHINE_ARN_ENV}")
        if args.concurrency is not None:
            raise UsageError(
                "--concurrency applies to AWS only: locally the instants run one after another"
            )
    concurrency = args.concurrency or DEFAULT_CONCURRENCY
    if concurrency > MAX_CONCURRENCY:
        raise UsageError(f"--concurrency: at most {MAX_CONCURRENCY}")
    where = (
        f"on {arn}, at most {concurrency} at a time"
        if arn
        else f"on this machine, one after another (state in {args.state_dir})"
    )
    print(
        f"backfill {len(moments)} instant(s) from {backfill.when(moments[0])} to "
        f"{backfill.when(moments[-1])}, every {args.every}, at {at.at:%H:%M} ({at.source})"
    )
    print(
        f"  leaderboards {','.join(selection) if selection != 'all' else 'all'}, bootstrap "
        f"{bootstrap}, {'private (for review)' if args.private else 'public'}; {where}"
    )
    if args.dry_run:
        for moment in moments:
            print(
                f"  {backfill.when(moment)}  run_at {backfill.run_at(moment)}  "
                f"{backfill.execution_name(moment, selection)}"
            )
        return 0
    progress = Progress(len(moments), sys.stdout)
    interrupted: backfill.BackfillInterrupted | None = None
    try:
        outcomes = (
            _backfill_aws(args, arn, moments, selection, bootstrap, concurrency, progress)
            if arn
            else _backfill_local(args, moments, selection, bootstrap, progress)
        )
    except backfill.BackfillInterrupted as exc:
        interrupted, outcomes = exc, exc.outcomes
    finally:
        progress.close()
    print("")
    print("\n".join(backfill.summary(outcomes)))
    if interrupted is not None and interrupted.failed:
        print(f"stopped: {interrupted.note}")
        return 1
    if interrupted is not None:
        print(f"interrupted: {interrupted.note}")
        return 130
    if not backfill.succeeded(outcomes):
        print("some instants failed: fix the cause, then rerun the same command to retry them")
        return 1
    return 0


def _backfill_aws(
    args: argparse.Namespace,
    arn: str,
    moments: list[datetime],
    selection: Selection,
    bootstrap: int,
    concurrency: int,
    progress: Progress,
) -> list[Outcome]:
    import os

    from cli import backfill_aws, stepfunctions
    from common.stepfunctions import history

    sfn, session = stepfunctions.stepfunctions(args.region or history.region_of(arn), args.profile)
    plan = backfill_aws.Backfill(
        state_machine_arn=arn,
        moments=moments,
        selection=selection,
        bootstrap=bootstrap,
        publish=not args.private,
        requested_by=stepfunctions.caller(session),
        concurrency=concurrency,
        database_url=args.database_url or os.environ.get("DATABASE_URL") or None,
    )
    return backfill_aws.run(sfn, plan, progress)


def _backfill_local(
    args: argparse.Namespace,
    moments: list[datetime],
    selection: Selection,
    bootstrap: int,
    progress: Progress,
) -> list[Outcome]:
    from dataclasses import replace

    from cli import backfill_local

    options = replace(_run_options(args), leaderboards=selection, bootstrap=bootstrap)
    return backfill_local.run(options, moments, progress)


def cmd_status(args: argparse.Namespace) -> int:
    from cli import execution_view, stepfunctions
    from common.stepfunctions import history

    machine = _state_machine_arn(args)
    if not stepfunctions.is_execution_arn(args.execution) and machine is None:
        _aws_only(
            args,
            f"give an execution ARN, --state-machine-arn or {stepfunctions.STATE_MACHINE_ARN_ENV}",
        )
        return _local_status(args)
    arn: str | None = None
    if stepfunctions.is_execution_arn(args.execution):
        arn = history.parse_execution_arn(args.execution).arn
    elif args.execution and machine:
        arn = history.execution_arn(machine, args.execution)
    target = arn or str(machine)
    sfn, _ = stepfunctions.stepfunctions(args.region or history.region_of(target), args.profile)
    if arn is None:
        print(f"latest executions of {target}")
        print(
            "\n".join(
                execution_view.format_executions(
                    stepfunctions.latest_executions(sfn, target, args.limit)
                )
            )
        )
        return 0
    view = execution_view.aws_view(
        stepfunctions.describe(sfn, arn), stepfunctions.history(sfn, arn)
    )
    print("\n".join(execution_view.format_view(view)))
    return 0


def _local_status(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cli import execution_view
    from local.store import ExecutionStore, LocalRunError

    store = ExecutionStore(Path(args.state_dir))
    try:
        if args.execution:
            record = store.load(args.execution)
        else:
            originals = [r for r in store.all() if r.redrive_of is None]
            if not originals:
                print(f"no local executions in {args.state_dir}: `leaderboard run` starts one")
                return 0
            record = originals[-1]
        lines = execution_view.format_view(execution_view.local_view(record))
        for number, name in enumerate(record.redrives, start=1):
            redriven = execution_view.format_view(execution_view.local_view(store.load(name)))
            lines += ["", f"redrive {number}: {redriven[0]}", *redriven[1:]]
    except LocalRunError as exc:
        raise UsageError(str(exc)) from None
    print("\n".join(lines))
    return 0


def _redrive_aws(args: argparse.Namespace) -> int:
    from cli import stepfunctions
    from common.stepfunctions import history

    arn = history.parse_execution_arn(args.execution).arn
    sfn, _ = stepfunctions.stepfunctions(args.region or history.region_of(arn), args.profile)
    print("\n".join(stepfunctions.format_redrive(stepfunctions.redrive(sfn, arn))))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leaderboard",
        description="BixArena leaderboard snapshots: simulate an arena, rank it, run the pipeline.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p_db = sub.add_parser("db", help="manage the BixArena schema in a database (tests, local runs)")
    db_sub = p_db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    p_init = db_sub.add_parser("init", help="create the api schema and reference leaderboards")
    p_init.add_argument(
        "--database-url", required=True, help="postgresql:// URL of an empty database"
    )
    p_init.set_defaults(func=cmd_db_init)

    p_sim = sub.add_parser("simulate", help="make a synthetic arena with hidden true strengths")
    p_sim.add_argument(
        "--models", type=positive_int, default=40, help="number of models (default 40)"
    )
    p_sim.add_argument(
        "--battles", type=positive_int, default=100_000, help="number of battles (default 100000)"
    )
    p_sim.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    target = p_sim.add_mutually_exclusive_group()
    target.add_argument(
        "--database-url", help="write into this database (schema created if missing)"
    )
    target.add_argument("--output", help="write battles to this Parquet file instead of a database")
    p_sim.add_argument("--with-bad-data", action="store_true", help=BAD_DATA_HELP)
    p_sim.set_defaults(func=cmd_simulate)

    p_rank = sub.add_parser(
        "rank", help="rank the models of a battles Parquet file (Bradley-Terry)"
    )
    p_rank.add_argument("battles", help="Parquet file with columns model_a, model_b, outcome")
    p_rank.add_argument(
        "--bootstrap", type=positive_int, default=1000, help="replicates (default 1000)"
    )
    p_rank.add_argument(
        "--seed", type=non_negative_int, default=0, help="bootstrap seed (default 0)"
    )
    p_rank.add_argument(
        "--significant", action="store_true", help="rank = 1 + models whose CI lies entirely above"
    )
    p_rank.add_argument(
        "--min-evals",
        type=non_negative_int,
        default=10,
        help="drop models with fewer votes (default 10)",
    )
    p_rank.add_argument(
        "--ci", choices=("bootstrap", "sandwich"), default="bootstrap", help="CI method"
    )
    p_rank.add_argument(
        "--format", choices=("table", "json"), default="table", help="output format"
    )
    p_rank.add_argument("--output", help="write to this file instead of standard output")
    p_rank.add_argument(
        "--style-control",
        action="store_true",
        help="also rank with answer length and markdown held equal (the file's model1_tokens, "
        "..., model2_bold columns) and print both rankings side by side with the rank shifts "
        "and the style coefficients",
    )
    p_rank.set_defaults(func=cmd_rank)

    local = argparse.ArgumentParser(add_help=False)
    local.add_argument(
        "--database-url", help="use this PostgreSQL as it is (default: the embedded one, seeded)"
    )
    local.add_argument(
        "--slack-webhook", help="post to this webhook (default: a local capture, printed)"
    )
    local.add_argument(
        "--state-dir", default=".local", help="where local executions are kept (default .local)"
    )
    local.add_argument(
        "--workers", type=non_negative_int, metavar="N",
        help="processes running the Lambda functions (default: the Map's MaxConcurrency, at most"
        " one per core); 0 runs them as threads of this process",
    )  # fmt: skip
    p_run = sub.add_parser(
        "run",
        parents=[local],
        help="execute the deployed state machine on this machine (moto + real PostgreSQL)",
    )
    p_run.add_argument(
        "--leaderboards", default="all", help="'all' (default) or comma-separated slugs"
    )
    p_run.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap replicates, 10..10000 (default 1000)"
    )
    p_run.add_argument(
        "--battles", type=positive_int, default=100_000,
        help="battles to simulate into the embedded database (default 100000)",
    )  # fmt: skip
    p_run.add_argument(
        "--models", type=positive_int, default=40, help="models to simulate (default 40)"
    )
    p_run.add_argument(
        "--inject-fault", action="append", metavar="SPEC",
        help=(
            "STAGE:transient[:N], STAGE:timeout[:N], STAGE:permanent,"
            " db:down[:STAGE[:DURATION]] (e.g. db:down:publish:180s), slack:500|429|timeout"
        ),
    )  # fmt: skip
    p_run.add_argument("--with-bad-data", action="store_true", help=BAD_DATA_HELP)
    p_run.add_argument("--private", action="store_true", help=PRIVATE_HELP)
    p_run.set_defaults(func=cmd_run)

    p_redrive = sub.add_parser(
        "redrive",
        parents=[local],
        help="resume a failed execution where it stopped (AWS: an ARN; else a local one)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Resume a failed execution where it stopped, with the same input.\n"
            "EXECUTION an ARN: Step Functions RedriveExecution (FAILED, TIMED_OUT or ABORTED,\n"
            "stopped less than 14 days ago, no redrive running; exit 1 with the reason if not).\n"
            "EXECUTION a local name, or none: the local execution (default: the last failed one)."
        ),
        epilog=(
            "examples:\n"
            "  leaderboard redrive arn:aws:states:us-east-1:123456789012:execution:"
            "bixarena-leaderboard-prod:manual-20260101T1200Z-3f2a9c0e1b7d\n"
            "  leaderboard redrive                  (the last failed local execution)"
        ),
    )
    p_redrive.add_argument(
        "execution",
        nargs="?",
        metavar="EXECUTION",
        help="an AWS execution ARN, or a local execution name (default: the last failed one)",
    )
    p_redrive.add_argument("--region", help="AWS region (default: the ARN's region)")
    p_redrive.add_argument("--profile", help="AWS profile (default: the usual AWS configuration)")
    p_redrive.set_defaults(func=cmd_redrive)

    p_execs = sub.add_parser("executions", help="list local executions and their status")
    p_execs.add_argument("--state-dir", default=".local", help="default .local")
    p_execs.set_defaults(func=cmd_executions)

    # --- operator tools ----------------------------------------------------------------------------
    aws = argparse.ArgumentParser(add_help=False)
    aws.add_argument(
        "--state-machine-arn",
        metavar="ARN",
        help="the deployed state machine (default: $LEADERBOARD_STATE_MACHINE_ARN)",
    )
    aws.add_argument("--region", help="AWS region (default: the ARN's region)")
    aws.add_argument("--profile", help="AWS profile (default: the usual AWS configuration)")
    examples = argparse.RawDescriptionHelpFormatter

    p_trigger = sub.add_parser(
        "trigger",
        parents=[aws, local],
        formatter_class=examples,
        help="start a manual run now (on AWS, or locally without a state machine ARN)",
        description=(
            "Start a manual run of the pipeline: the execution input has trigger 'manual',\n"
            "requested_by = your AWS identity (STS), a correlation id and run_at = now.\n"
            "Refused (exit 1) while a RUNNING execution covers one of the leaderboards.\n"
            "With neither --state-machine-arn nor LEADERBOARD_STATE_MACHINE_ARN, the run\n"
            "happens on this machine instead, exactly like `leaderboard run`\n"
            "(--database-url, --slack-webhook and --state-dir apply to that local run only)."
        ),
        epilog=(
            "examples:\n"
            "  export LEADERBOARD_STATE_MACHINE_ARN=arn:aws:states:us-east-1:123456789012:"
            "stateMachine:bixarena-leaderboard-prod\n"
            "  leaderboard trigger --leaderboards all\n"
            "  leaderboard trigger --leaderboards overall,genomics --bootstrap 2000 --wait\n"
            "  leaderboard trigger --leaderboards overall --private   (snapshots for review)\n"
            "  leaderboard trigger --leaderboards overall --profile ops --region us-east-1\n"
            "  leaderboard trigger --leaderboards overall          (no ARN: a local run)"
        ),
    )
    p_trigger.add_argument(
        "--leaderboards",
        required=True,
        metavar="all|SLUG,...",
        help="'all' or comma-separated slugs of BixArena's reference leaderboards",
    )
    p_trigger.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap replicates, 10..10000 (default 1000)"
    )
    p_trigger.add_argument(
        "--wait",
        action="store_true",
        help="follow the execution to its end, printing states as they complete "
        "(exit 1 when it does not succeed); a local run always waits",
    )
    p_trigger.add_argument("--private", action="store_true", help=PRIVATE_HELP)
    p_trigger.set_defaults(func=cmd_trigger)

    p_backfill = sub.add_parser(
        "backfill",
        parents=[aws],
        formatter_class=examples,
        help="snapshots for past instants: one run per instant, each counting the votes up to then",
        description=(
            "One pipeline execution per past instant from --from to --to (every --every, at\n"
            "the schedule's time of day from cdk.json, or --at), each with that instant as its\n"
            "run_at: it counts only the votes cast up to then and writes the snapshot the\n"
            "scheduled run of that moment would have written (private with --private).\n"
            "Resumable: an instant whose snapshots exist, or whose execution succeeded or is\n"
            "still running, is not started again, so after Ctrl-C or failures rerun the same\n"
            "command. With a state machine ARN: executions on AWS, named\n"
            "backfill-<instant>-<leaderboards key>, at most --concurrency at a time\n"
            "(--database-url, if given, is checked for existing snapshots). Without one: on\n"
            "this machine like `leaderboard run` (--database-url is used as it is; default the\n"
            "embedded database, seeded once). Exit 0 only if no instant failed; 130 if interrupted."
        ),
        epilog=(
            "examples:\n"
            "  leaderboard backfill --from 2026-01-01 --to 2026-01-31 --dry-run\n"
            "  leaderboard backfill --from 2026-01-01 --to 2026-01-31 --state-machine-arn ARN\n"
            "  leaderboard backfill --from 2026-01-01 --to 2026-03-31 --every 1w --leaderboards overall --private\n"
            "  leaderboard backfill --from 2025-05-01 --to 2025-05-03 --at 06:00   (locally)"
        ),
    )
    p_backfill.add_argument(
        "--from", dest="start", required=True, metavar="DATE", help="first day, YYYY-MM-DD"
    )
    p_backfill.add_argument(
        "--to", required=True, metavar="DATE", help="last day, YYYY-MM-DD (included)"
    )
    p_backfill.add_argument(
        "--every", default="1d", metavar="INTERVAL", help="e.g. 1d (default), 12h, 1w"
    )
    p_backfill.add_argument(
        "--at", metavar="HH:MM", help="time of day in UTC (default: the deployed schedule's)"
    )
    p_backfill.add_argument(
        "--leaderboards", default="all", metavar="all|SLUG,...", help="'all' (default) or slugs"
    )
    p_backfill.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap replicates, 10..10000 (default 1000)"
    )
    p_backfill.add_argument("--private", action="store_true", help=PRIVATE_HELP)
    p_backfill.add_argument(
        "--concurrency",
        type=positive_int,
        default=None,
        metavar="N",
        help="AWS: executions running at once, 1..20 (default 2)",
    )
    p_backfill.add_argument(
        "--dry-run", action="store_true", help="print the instants and execution names, run nothing"
    )
    p_backfill.add_argument(
        "--database-url",
        metavar="URL",
        help="locally: run on this PostgreSQL as it is (default: the embedded one); AWS: check "
        "BixArena's database for snapshots that already exist (default: $DATABASE_URL, if set)",
    )
    p_backfill.add_argument(
        "--state-dir", default=".local", help="where local executions are kept (default .local)"
    )
    p_backfill.add_argument(
        "--slack-webhook", help="locally: post to this webhook (default: a local capture)"
    )
    p_backfill.add_argument(
        "--battles", type=positive_int, default=100_000,
        help="locally: battles to seed an empty embedded database with (default 100000)",
    )  # fmt: skip
    p_backfill.add_argument(
        "--models", type=positive_int, default=40, help="locally: models to seed (default 40)"
    )
    p_backfill.add_argument(
        "--inject-fault", action="append", metavar="SPEC", help="locally: as for `leaderboard run`"
    )
    p_backfill.add_argument(
        "--workers", type=non_negative_int, metavar="N", help="locally: as for `leaderboard run`"
    )
    p_backfill.set_defaults(func=cmd_backfill)

    p_status = sub.add_parser(
        "status",
        parents=[aws],
        formatter_class=examples,
        help="show an execution state by state, or the latest executions",
        description=(
            "Show one execution: its states with their durations (each leaderboard's Map\n"
            "iteration on its own line), the failing state with its error and cause, the\n"
            "redrive count and status, and the console link.\n"
            "EXECUTION is an execution ARN, or a name (with a state machine ARN). With a state\n"
            "machine ARN and no EXECUTION: the latest executions. Without any ARN: the local\n"
            "executions of `leaderboard run` (a name, or the latest one)."
        ),
        epilog=(
            "examples:\n"
            "  leaderboard status arn:aws:states:us-east-1:123456789012:execution:"
            "bixarena-leaderboard-prod:manual-20260101T1200Z-3f2a9c0e1b7d\n"
            "  leaderboard status manual-20260101T1200Z-3f2a9c0e1b7d --state-machine-arn ARN\n"
            "  leaderboard status --state-machine-arn ARN     (the 10 latest executions)\n"
            "  leaderboard status                             (the latest local execution)"
        ),
    )
    p_status.add_argument("execution", nargs="?", metavar="EXECUTION", help="ARN or name")
    p_status.add_argument(
        "--limit",
        type=int_between(1, 1000),  # ListExecutions' maxResults
        default=10,
        help="executions to list without EXECUTION (default 10, at most 1000)",
    )
    p_status.add_argument(
        "--state-dir", default=".local", help="where local executions are kept (default .local)"
    )
    p_status.set_defaults(func=cmd_status)

    p_snap = sub.add_parser(
        "snapshots",
        help="list, show, publish, unpublish or delete leaderboard snapshots in a database",
        description=(
            "Leaderboard snapshots in BixArena's database (--database-url or DATABASE_URL;\n"
            "without either, the database of this machine's local runs, after `make run`).\n"
            "BixArena shows, per leaderboard, its newest public snapshot."
        ),
        formatter_class=examples,
    )
    snap_sub = p_snap.add_subparsers(dest="snapshots_command", required=True, metavar="ACTION")
    database = argparse.ArgumentParser(add_help=False)
    database.add_argument(
        "--database-url",
        metavar="URL",
        help="BixArena's PostgreSQL (default: $DATABASE_URL, else the local runs' database)",
    )
    database.add_argument(
        "--state-dir",
        default=".local",
        help="where the local runs keep their database, used without a URL (default .local)",
    )
    formats = argparse.ArgumentParser(add_help=False)
    formats.add_argument(
        "--format", choices=("table", "json"), default="table", help="output format"
    )
    named = argparse.ArgumentParser(add_help=False)
    named.add_argument(
        "snapshot", metavar="SNAPSHOT", help="snapshot id (UUID), or identifier with --leaderboard"
    )
    named.add_argument(
        "--leaderboard", metavar="SLUG", help="the leaderboard of a snapshot named by identifier"
    )
    by_name = "examples:\n  leaderboard snapshots {0} 0b9f6c1e-8d1a-4c1e-9a34-2f1f0f7a6d11\n  leaderboard snapshots {0} snapshot_2026-01-01_06-00-00 --leaderboard overall"

    p_list = snap_sub.add_parser(
        "list",
        parents=[database, formats],
        formatter_class=examples,
        help="snapshots newest first, with their entry counts",
        epilog="examples:\n  leaderboard snapshots list --leaderboard overall --visibility public --limit 5",
    )
    p_list.add_argument("--leaderboard", metavar="SLUG", help="only this leaderboard's snapshots")
    p_list.add_argument("--visibility", choices=("public", "private"), help="only these")
    p_list.add_argument(
        "--limit", type=positive_int, default=20, help="at most this many (default 20)"
    )
    p_list.set_defaults(func=_snapshots("cmd_list"))

    p_show = snap_sub.add_parser(
        "show",
        parents=[named, database, formats],
        formatter_class=examples,
        help="a snapshot and its entries: rank, model, score, CI, votes",
        epilog=by_name.format("show"),
    )
    p_show.set_defaults(func=_snapshots("cmd_show"))

    for action, visibility, text in (
        ("publish", "public", "make a snapshot public (BixArena shows the newest public one)"),
        ("unpublish", "private", "make a snapshot private again"),
    ):
        p_vis = snap_sub.add_parser(
            action,
            parents=[named, database],
            formatter_class=examples,
            help=text,
            epilog=by_name.format(action),
        )
        p_vis.set_defaults(func=_snapshots("cmd_visibility"), visibility=visibility)

    p_delete = snap_sub.add_parser(
        "delete",
        parents=[named, database],
        formatter_class=examples,
        help="delete a snapshot and its entries (asks first unless --yes)",
        description=(
            "Delete a snapshot; its entries go with it. Asks for confirmation on a terminal;\n"
            "without a terminal, --yes is required (else exit 2). Declining exits 1."
        ),
        epilog=by_name.format("delete") + " --yes",
    )
    p_delete.add_argument("--yes", action="store_true", help="delete without asking")
    p_delete.set_defaults(func=_snapshots("cmd_delete"))

    p_history = sub.add_parser(
        "history",
        parents=[database],
        formatter_class=examples,
        help="score, CI and rank of each model across a leaderboard's public snapshots",
        description=(
            "Each model's score, 95% CI and rank across a leaderboard's public snapshots, in\n"
            "the order BixArena reads them (created_at, the time the votes count up to), from\n"
            "BixArena's database (--database-url, DATABASE_URL, else the local runs' one).\n"
            "The models: those named with --models, else the top N of the newest snapshot.\n"
            "--plot draws score (with its CI band) and rank over time into a PNG or SVG."
        ),
        epilog=(
            "examples:\n"
            "  leaderboard history\n"
            "  leaderboard history --leaderboard genomics --top 5 --since 2026-01-01\n"
            "  leaderboard history --models gpt-4o,claude-3-5-sonnet --format csv > history.csv\n"
            "  leaderboard history --top 8 --plot history.png"
        ),
    )
    p_history.add_argument(
        "--leaderboard", metavar="SLUG", default="overall", help="the leaderboard (default overall)"
    )
    chosen = p_history.add_mutually_exclusive_group()
    chosen.add_argument(
        "--models", metavar="A,B,...", help="these models (slugs, names or ids), comma-separated"
    )
    chosen.add_argument(
        "--top",
        type=positive_int,
        default=None,
        metavar="N",
        help="the top N of the newest snapshot (default 10)",
    )
    p_history.add_argument(
        "--since", metavar="DATE", help="only snapshots from this date (YYYY-MM-DD, UTC) or instant"
    )
    p_history.add_argument(
        "--format", choices=("table", "json", "csv"), default="table", help="output format"
    )
    p_history.add_argument(
        "--plot", metavar="FILE", help="also draw the chart into FILE.png or FILE.svg"
    )
    p_history.set_defaults(func=_snapshots("cmd_history"))

    return parser


@contextmanager
def termination_as_exit() -> Iterator[None]:
    """Let SIGTERM and SIGHUP (a closed terminal, ``timeout``, a cancelled CI job) end the command
    as an exception does, so that what it started is stopped on the way out: the embedded
    PostgreSQL, the Lambda workers, moto. Python's default for them is to die on the spot. Only
    the main thread may set handlers; the previous ones are put back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _exit_for) for signum in TERMINATING}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


TERMINATING = (signal.SIGTERM, signal.SIGHUP)


def _exit_for(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.func
    try:
        if getattr(args, "database_url", None):
            checked_database_url(args.database_url, "--database-url")
        with termination_as_exit():
            return handler(args)
    except (UsageError, InvalidInput) as exc:
        print(f"leaderboard: error: {exc}", file=sys.stderr)
        return 2
    except PipelineError as exc:
        print(f"leaderboard: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as other command-line tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
