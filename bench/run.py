"""``run/default``: ``make run``'s default execution; ``run/threads`` also runs it as threads.

The arena ``make run`` seeds on its first run (40 models, 100k battles with answers, seed 0) is
seeded once (``bench.arena``) and cloned for each side, with the style-controlled leaderboard row
``make run`` creates (``local.style_boards``) and its tables and indexes read once
(``bench.arena.warm_page_cache``); ``leaderboard run`` with its defaults
(every leaderboard, B = 1000) executes on the clone, each side in a fresh process: with the Lambda
functions in the runner's worker processes (the default), and, in ``run/threads`` (not in the
default set), as the baseline with every invocation a thread of the runner (``--workers 0``, how
every local run worked before).
``seconds`` is the execution's wall time from its history, as the command prints it; extra keys:
each stage's time (as in ``bench.e2e``), ``command_s`` (the whole command after seeding: setup,
execution, report) and the baseline's ``baseline_command_s``; the notes carry the command's line
on where the functions ran (and how long tasks waited for a free worker, inside the stage times).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from bench import Benchmark, isolated, mark_start
from bench.arena import clone, drop, seeded_arena, warm_page_cache
from bench.e2e import stage_seconds
from local import style_boards
from local.simulate import ANSWER_TOKENS

MODELS = 40
BATTLES = 100_000
SEED = 0
"""What ``leaderboard run`` seeds on its first run (cli.local_run.seed_embedded)."""


def _run(url: str, state_dir: str, workers: int | None) -> dict[str, Any]:
    """``leaderboard run --database-url URL [--workers N]``, in this fresh process."""
    from cli.local_run import RunOptions, run

    lines: list[str] = []
    mark_start()
    started = time.perf_counter()
    record = run(
        RunOptions(database_url=url, state_dir=Path(state_dir), workers=workers), lines.append
    )
    command_s = time.perf_counter() - started
    if record.status != "SUCCEEDED":
        raise SystemExit(f"run bench: the run {record.status}: {record.error}: {record.cause}")
    return {
        "seconds": round(record.seconds, 3),
        **stage_seconds(record.history),
        "command_s": round(command_s, 3),
        "lambdas": next((line.strip() for line in lines if "Lambda functions:" in line), ""),
    }


def _side(arena: str, workers: int | None) -> dict[str, Any]:
    from local.template import REPO_ROOT, template

    template(REPO_ROOT / ".local")  # synthesized once, in the cache `make run` uses
    url = clone(arena)
    try:
        style_boards.create_rows(url)  # as make run's seeding does: overall-style-control
        warm_page_cache(url)
        with tempfile.TemporaryDirectory(prefix="bench-run-") as state_dir:
            shutil.copytree(REPO_ROOT / ".local" / "templates", Path(state_dir, "templates"))
            return isolated(_run, url, state_dir, workers)
    finally:
        drop(url)


def _default_run(threads_too: bool) -> list[dict[str, Any]]:
    arena = seeded_arena(MODELS, BATTLES, SEED, answer_tokens=ANSWER_TOKENS)
    ours = _side(arena, None)
    notes = [
        f"leaderboard run, defaults (all leaderboards, B=1000), {BATTLES:,} battles;"
        " each side on a fresh clone in a fresh process; seconds = execution time",
        f"ours: {ours['lambdas']}",
    ]
    row: dict[str, Any] = {
        "bench": "run/threads" if threads_too else "run/default",
        "seconds": ours["seconds"],
        "baseline": None,
        "baseline_seconds": None,
        "speedup": None,
        **{k: v for k, v in ours.items() if k not in ("seconds", "lambdas")},
        "models": MODELS,
        "battles": BATTLES,
    }
    if threads_too:
        base = _side(arena, 0)
        row.update(
            baseline="threads (--workers 0)",
            baseline_seconds=base["seconds"],
            speedup=round(base["seconds"] / ours["seconds"], 2),
            baseline_command_s=base["command_s"],
            baseline_rank_and_publish_s=base["rank_and_publish_s"],
        )
        notes.append(f"baseline: {base['lambdas']}")
    return [{**row, "notes": notes}]


BENCHMARKS = [
    Benchmark(
        "run/default",
        "make run's default execution (21 leaderboards, 100k battles, B=1000)",
        partial(_default_run, False),
    ),
    Benchmark(
        "run/threads",
        "the same, against every Lambda invocation as a thread of the runner (--workers 0)",
        partial(_default_run, True),
        default=False,
    ),
]
