"""The ``leaderboard`` command line: argument parsing and exit codes, nothing else.

Each subcommand is a small function that calls into the module owning its concern. Heavy imports
(numpy, boto3, the CDK) happen inside the functions so ``--help`` stays instant.
Exit codes: 0 success, 1 the run or command failed, 2 bad usage or bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from common.errors import InvalidInput, PipelineError

Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """Bad arguments or bad input file: printed as one line, exit code 2."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


# --- db ------------------------------------------------------------------------------------------
def cmd_db_init(args: argparse.Namespace) -> int:
    from common import db

    applied = db.apply_migrations(args.database_url)
    print(f"schema ready ({len(applied)} migration(s) applied: {', '.join(applied) or 'none'})")
    return 0


# --- simulate --------------------------------------------------------------------------------------
def cmd_simulate(args: argparse.Namespace) -> int:
    from common import simulate

    if args.output and args.database_url:
        raise UsageError("give either --output or --database-url, not both")
    arena = simulate.simulate_arena(models=args.models, battles=args.battles, seed=args.seed)
    if args.output:
        simulate.write_parquet(arena, args.output)
        print(f"wrote {args.battles} battles between {args.models} models to {args.output}")
        return 0
    from common import localdb

    with localdb.database(args.database_url) as url:
        counts = simulate.write_database(arena, url)
        print(
            f"wrote {counts['battles']} battles ({counts['evaluations']} evaluations) between "
            f"{counts['models']} models to {localdb.redact(url)}"
        )
    return 0


# --- rank ----------------------------------------------------------------------------------------
def cmd_rank(args: argparse.Namespace) -> int:
    import json

    from common import ranking, votes

    data = votes.read_votes(args.battles)
    if data.n_votes == 0:
        raise UsageError(f"{args.battles}: the file holds no votes")
    if len(data.models) < 2:
        raise UsageError(f"{args.battles}: the votes name fewer than two models")
    result = ranking.rank_votes(
        data,
        bootstrap=args.bootstrap,
        seed=args.seed,
        ci_method=args.ci,
        significant=args.significant,
        min_evals=args.min_evals,
    )
    text = json.dumps(result.to_records(), indent=2) if args.format == "json" else result.to_table()
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


# --- local runs ----------------------------------------------------------------------------------
def _run_options(args: argparse.Namespace) -> object:
    from pathlib import Path

    from common.contracts import parse_bootstrap, parse_leaderboards
    from common.local_commands import RunOptions

    return RunOptions(
        leaderboards=parse_leaderboards(getattr(args, "leaderboards", "all"), "--leaderboards"),
        bootstrap=parse_bootstrap(getattr(args, "bootstrap", 1000), "--bootstrap"),
        database_url=args.database_url,
        battles=getattr(args, "battles", 100_000),
        models=getattr(args, "models", 40),
        slack_webhook=args.slack_webhook,
        faults=tuple(getattr(args, "inject_fault", None) or ()),
        state_dir=Path(args.state_dir),
    )


def _echo() -> Callable[[str], None]:
    """Print to the terminal even while the local functions' stdout goes to their log file."""
    stream = sys.stdout

    def echo(line: str) -> None:
        print(line, file=stream, flush=True)

    return echo


def cmd_run(args: argparse.Namespace) -> int:
    from common import local_commands

    options = _run_options(args)
    record = local_commands.run(options, _echo())  # type: ignore[arg-type]
    return 0 if record.status == "SUCCEEDED" else 1


def cmd_redrive(args: argparse.Namespace) -> int:
    from common import local_commands
    from common.local_runner import LocalRunError

    try:
        record = local_commands.redrive(args.execution, _run_options(args), _echo())  # type: ignore[arg-type]
    except LocalRunError as exc:
        raise UsageError(str(exc)) from None
    return 0 if record.status == "SUCCEEDED" else 1


def cmd_executions(args: argparse.Namespace) -> int:
    from pathlib import Path

    from common import local_commands

    local_commands.executions(Path(args.state_dir), print)
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
        "--models", type=_positive_int, default=40, help="number of models (default 40)"
    )
    p_sim.add_argument(
        "--battles", type=_positive_int, default=100_000, help="number of battles (default 100000)"
    )
    p_sim.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (default 0)")
    target = p_sim.add_mutually_exclusive_group()
    target.add_argument(
        "--database-url", help="write into this database (schema created if missing)"
    )
    target.add_argument("--output", help="write battles to this Parquet file instead of a database")
    p_sim.set_defaults(func=cmd_simulate)

    p_rank = sub.add_parser(
        "rank", help="rank the models of a battles Parquet file (Bradley-Terry)"
    )
    p_rank.add_argument("battles", help="Parquet file with columns model_a, model_b, outcome")
    p_rank.add_argument(
        "--bootstrap", type=_positive_int, default=1000, help="replicates (default 1000)"
    )
    p_rank.add_argument(
        "--seed", type=_non_negative_int, default=0, help="bootstrap seed (default 0)"
    )
    p_rank.add_argument(
        "--significant", action="store_true", help="rank = 1 + models whose CI lies entirely above"
    )
    p_rank.add_argument(
        "--min-evals",
        type=_non_negative_int,
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
        "--battles", type=_positive_int, default=100_000,
        help="battles to simulate into the embedded database (default 100000)",
    )  # fmt: skip
    p_run.add_argument(
        "--models", type=_positive_int, default=40, help="models to simulate (default 40)"
    )
    p_run.add_argument(
        "--inject-fault", action="append", metavar="SPEC",
        help="STAGE:transient[:N], STAGE:permanent, db:down[:STAGE], slack:500|429|timeout",
    )  # fmt: skip
    p_run.set_defaults(func=cmd_run)

    p_redrive = sub.add_parser(
        "redrive", parents=[local], help="resume a failed local execution where it stopped"
    )
    p_redrive.add_argument(
        "execution", nargs="?", help="execution name (default: the last failed one)"
    )
    p_redrive.set_defaults(func=cmd_redrive)

    p_execs = sub.add_parser("executions", help="list local executions and their status")
    p_execs.add_argument("--state-dir", default=".local", help="default .local")
    p_execs.set_defaults(func=cmd_executions)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.func
    try:
        return handler(args)
    except (UsageError, InvalidInput) as exc:
        print(f"leaderboard: error: {exc}", file=sys.stderr)
        return 2
    except PipelineError as exc:
        print(f"leaderboard: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
