"""Fixtures and helpers for the end-to-end tests: the deployed definition, executed locally.

One synthesized template per session (the repo's ``.local`` cache, the one ``make run`` uses, so
synthesis happens only when the infrastructure code changed); one simulated arena per session (the
stage tests' seeded database, plus a category leaderboard that no battle has reached yet, so one
requested leaderboard is always skipped as sparse); a fresh clone of it per test; LocalPipelines
over that clone. What a run should publish is recomputed independently: votes read back with
upstream's filters written out here in SQL, ranked by ``common.ranking``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from common.config import Settings
from common.contracts import parse_timestamp, snapshot_description, snapshot_identifier
from common.ranking import Votes, rank_votes
from common.scores import as_decimal
from common.stepfunctions.history import iteration_of
from infra import stack_template
from local import postgres
from local.faults import FaultPlan, Timeline, wall_time
from local.pipeline import LocalPipeline
from local.store import ExecutionRecord, ExecutionStore
from local.template import REPO_ROOT, template
from tests.stage_fixtures import RUN_AT

SPARSE = "rare-diseases"
"""A category leaderboard created before any battle was categorized into it."""
RANKED = ("overall", "genetics", "immunology")
BOARDS = (*RANKED, SPARSE)
BOOTSTRAP = 50
STATE_NAMES = {"fetch": "Fetch", "rank": "Rank", "publish": "Publish", "notify": "Notify"}
DATABASE_WAIT_CAPS = [2.0, 4.0, 8.0, 16.0] + [30.0] * 24
"""docs/state-machine.md: DatabaseUnavailable is retried 28 times (a task that keeps failing runs
29 times); before retry k it waits a random time between 0 and min(2 * 2**k, 30) s (full jitter)."""
TRANSIENT_WAIT_CAPS = [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
"""The other transient errors: 6 retries (7 runs), the same jittered waits."""
OUTAGE_S = 180
"""The database outage a run must ride out (issue 11): a failover or restart, with room."""
TEMPLATE_CACHE = REPO_ROOT / ".local"

_clones = itertools.count()


@dataclass(frozen=True)
class EntryView:
    model_id: str
    model: str
    rank: int
    bt_score: Decimal
    bootstrap_q025: Decimal
    bootstrap_q975: Decimal
    vote_count: int


@dataclass(frozen=True)
class SnapshotView:
    """A snapshot as BixArena's readers see it: identifier, visibility, description, entries."""

    identifier: str
    visibility: str
    description: str
    entries: tuple[EntryView, ...]


# --- fixtures ----------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def e2e_template() -> dict[str, Any]:
    """The stack's CloudFormation template, exactly what is deployed."""
    return template(TEMPLATE_CACHE)


@pytest.fixture(scope="session")
def e2e_arena(pg_admin_url: str, seeded_template: str) -> Iterator[str]:
    """Name of the database every e2e test clones: the seeded arena plus the sparse leaderboard."""
    name = f"e2e_seed_{os.getpid()}"
    _clone(pg_admin_url, seeded_template, name)
    with psycopg.connect(postgres.with_database(pg_admin_url, name), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO api.leaderboard (slug, name) VALUES (%s, %s)", (SPARSE, "Rare diseases")
        )
    yield name
    _drop(pg_admin_url, name)


@pytest.fixture(scope="session")
def expected(
    pg_admin_url: str, e2e_arena: str, e2e_template: dict[str, Any]
) -> dict[str, SnapshotView]:
    """What a clean run at RUN_AT publishes for each ranked leaderboard, by the ranking engine."""
    url = postgres.with_database(pg_admin_url, e2e_arena)
    min_evals = deployed_settings(e2e_template).min_evals
    return {slug: engine_snapshot(url, slug, RUN_AT, min_evals=min_evals) for slug in RANKED}


@pytest.fixture
def e2e_db(pg_admin_url: str, e2e_arena: str) -> Iterator[str]:
    """A fresh clone of the arena for one test."""
    name = f"e2e_{os.getpid()}_{next(_clones)}"
    _clone(pg_admin_url, e2e_arena, name)
    yield postgres.with_database(pg_admin_url, name)
    _drop(pg_admin_url, name)


def _clone(admin_url: str, source: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(source)
            )
        )


def _drop(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


# --- running -----------------------------------------------------------------------------------------
@contextmanager
def pipeline(
    stack: dict[str, Any],
    database_url: str,
    state_dir: Path,
    *faults: str,
    timeline: Timeline = wall_time,
    workers: int | None = None,
) -> Iterator[LocalPipeline]:
    """A LocalPipeline over ``database_url`` keeping its executions (and logs) in ``state_dir``;
    timed faults read ``timeline`` (``RecordedSleeps.timeline`` when the test spares the waits),
    ``workers`` is as ``leaderboard run --workers`` (by default the runner's own choice)."""
    with LocalPipeline(
        stack,
        database_url=database_url,
        store=ExecutionStore(state_dir),
        faults=FaultPlan.from_specs(faults, timeline=timeline),
        log_path=state_dir / "functions.jsonl",
        workers=workers,
    ) as running:
        yield running


def run_request(
    run_at: str = RUN_AT, leaderboards: tuple[str, ...] | list[str] | str = BOARDS
) -> dict[str, Any]:
    """The input EventBridge Scheduler sends (its scheduled time as run_at)."""
    return {
        "leaderboards": leaderboards if isinstance(leaderboards, str) else list(leaderboards),
        "bootstrap": BOOTSTRAP,
        "trigger": "scheduled",
        "run_at": run_at,
        "correlation_id": f"e2e-{run_at}",
    }


def execute(running: LocalPipeline, name: str, run_at: str = RUN_AT) -> ExecutionRecord:
    return running.wait(running.start(run_request(run_at), name))


def cli_process(argv: list[str], *, own_session: bool = False) -> subprocess.Popen[str]:
    """``leaderboard ARGV`` in a child process (stdout and stderr piped, no DATABASE_URL), which
    meets Ctrl-C as a terminal's would; ``own_session``: in a process group of its own, for a
    test that signals the whole group as a terminal does.

    A shell's background job (CI launched with `&`) ignores SIGINT, and an ignored signal stays
    ignored across exec: the child would never raise KeyboardInterrupt. A handled one is reset to
    the default, as a terminal's Ctrl-C meets it (not preexec_fn: unsafe with threads)."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "cli.main", *argv],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=own_session,
        )
    finally:
        signal.signal(signal.SIGINT, previous)


def deployed_settings(stack: dict[str, Any]) -> Settings:
    """The rank function's settings as the stack configures them (literal values only)."""
    rank = next(s for s in stack_template.functions(stack).values() if ".rank." in s.handler)
    return Settings.from_env({k: v for k, v in rank.environment.items() if isinstance(v, str)})


# --- what the database shows ----------------------------------------------------------------------
_SNAPSHOTS = """
    SELECT l.slug, s.id::text, s.snapshot_identifier, s.visibility, s.description
    FROM api.leaderboard_snapshot s JOIN api.leaderboard l ON l.id = s.leaderboard_id
    ORDER BY l.slug, s.created_at, s.id
"""
_ENTRIES = """
    SELECT e.snapshot_id::text, e.model_id::text, m.name, e.rank, e.bt_score, e.bootstrap_q025,
           e.bootstrap_q975, e.vote_count
    FROM api.leaderboard_entry e JOIN api.model m ON m.id = e.model_id
    ORDER BY e.rank, e.model_id
"""


def snapshots_in(url: str) -> dict[str, list[SnapshotView]]:
    """Every snapshot (public or not) per leaderboard slug, oldest first, with its entries."""
    with psycopg.connect(url) as conn:
        snapshots = conn.execute(_SNAPSHOTS).fetchall()
        entries: dict[str, list[EntryView]] = {}
        for snapshot_id, *row in conn.execute(_ENTRIES).fetchall():
            entries.setdefault(snapshot_id, []).append(EntryView(*row))
    found: dict[str, list[SnapshotView]] = {}
    for slug, snapshot_id, identifier, visibility, description in snapshots:
        found.setdefault(slug, []).append(
            SnapshotView(identifier, visibility, description, tuple(entries.get(snapshot_id, ())))
        )
    return found


# --- what the ranking engine says -------------------------------------------------------------------
# Upstream's filters, written out independently of common.filters: an evaluation counts for
# `overall` when its battle's effective validation says biomedical; for a category leaderboard
# the battle's effective categorization must also be matched with that category. Evaluations
# recorded after the run's start do not count, nor do the bad rows fetch leaves out: a battle of
# a model against itself, or one naming a model that is not in api.model.
_VOTES = """
    SELECT b.model1_id::text, b.model2_id::text, e.outcome
    FROM api.battle_evaluation e
    JOIN api.battle b ON b.id = e.battle_id
    JOIN api.battle_validation v ON v.id = b.effective_validation_id
    JOIN api.model m1 ON m1.id = b.model1_id
    JOIN api.model m2 ON m2.id = b.model2_id
    WHERE v.is_biomedical AND e.created_at <= %(run_at)s AND b.model1_id <> b.model2_id
      AND (%(slug)s = 'overall' OR EXISTS (
          SELECT 1 FROM api.battle_categorization c
          JOIN api.battle_categorization_category cc ON cc.categorization_id = c.id
          WHERE c.id = b.effective_categorization_id AND c.status = 'matched'
            AND cc.category = %(slug)s))
"""


def engine_snapshot(
    url: str, slug: str, run_at: str, *, min_evals: int, bootstrap: int = BOOTSTRAP
) -> SnapshotView:
    """The public snapshot a run at ``run_at`` should publish for ``slug``."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            _VOTES, {"slug": slug, "run_at": parse_timestamp(run_at, "run_at")}
        ).fetchall()
        names: dict[str, str] = dict(
            conn.execute("SELECT id::text, name FROM api.model").fetchall()
        )
    votes = Votes.from_labels([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    ranking = rank_votes(votes, bootstrap=bootstrap, seed=0, min_evals=min_evals)
    entries = tuple(
        sorted(
            (
                EntryView(
                    model_id=e.model,
                    model=names[e.model],
                    rank=e.rank,
                    bt_score=_stored(e.bt_score),
                    bootstrap_q025=_stored(e.bootstrap_q025),
                    bootstrap_q975=_stored(e.bootstrap_q975),
                    vote_count=e.vote_count,
                )
                for e in ranking.ranked
                if e.rank is not None
            ),
            key=lambda e: (e.rank, e.model_id),
        )
    )
    return SnapshotView(
        identifier=snapshot_identifier(parse_timestamp(run_at, "run_at")),
        visibility="public",
        description=snapshot_description(len(rows), len(entries)),
        entries=entries,
    )


def _stored(value: float | None) -> Decimal:
    """A score as DECIMAL(10,6) holds it."""
    assert value is not None
    return as_decimal(value)


# --- what the history says -----------------------------------------------------------------------
def _details(event: dict[str, Any]) -> dict[str, Any]:
    return next((v for k, v in event.items() if k.endswith("EventDetails")), {})


def task_failures(record: ExecutionRecord, state: str) -> dict[int | None, list[str]]:
    """The errors each run of ``state`` failed with, by Map iteration (None: top level)."""
    by_id = {int(e["id"]): e for e in record.history}
    failed: dict[int | None, list[str]] = {}
    for event in record.history:
        if event["type"] != "TaskFailed":
            continue
        entered: dict[str, Any] | None = event
        while entered is not None and not entered["type"].endswith("StateEntered"):
            entered = by_id.get(int(entered.get("previousEventId") or 0))
        if entered is not None and _details(entered).get("name") == state:
            failed.setdefault(iteration_of(by_id, event), []).append(_details(event)["error"])
    return failed


def within_caps(waits: list[float], caps: list[float]) -> bool:
    """Whether one task's retry waits follow its jittered policy: the k-th in [0, caps[k]]."""
    return len(waits) <= len(caps) and all(
        0 <= wait <= cap for wait, cap in zip(waits, caps, strict=False)
    )


_TOP_LINE = re.compile(r"^(\d+)\. \*(.+?)\*  .*?\]\)(?:  (\S+))?$")


def slack_top_lines(text: str) -> list[tuple[int, str, str | None]]:
    """(rank, model, movement) of each top-model line of a leaderboard section."""
    return [(int(m[1]), m[2], m[3]) for line in text.splitlines() if (m := _TOP_LINE.match(line))]


def slack_sections(message: dict[str, Any]) -> dict[str, str]:
    """A success message's leaderboard sections by slug (the section's first bold word)."""
    sections: dict[str, str] = {}
    for block in message.get("blocks") or []:
        text = block.get("text", {}).get("text", "") if block.get("type") == "section" else ""
        if match := re.match(r"^\*([a-z0-9-]+)\* — ", text):
            sections[match[1]] = text
    return sections


def missed_day_metric_sum(template: dict[str, Any], log_path: Path) -> float:
    """The sum, over the run's EMF records, of the metric the missed-day alarm watches."""
    alarms = stack_template.resources_of_type(template, "AWS::CloudWatch::Alarm")
    (stale,) = [a["Properties"] for key, a in alarms.items() if key.startswith("NoRecentSuccess")]
    assert (stale["Statistic"], stale["Threshold"]) == ("Sum", 1)
    assert stale["ComparisonOperator"] == "LessThanThreshold"
    dimensions = {d["Name"]: d["Value"] for d in stale.get("Dimensions", [])}
    total = 0.0
    for line in log_path.read_text().splitlines():
        record = json.loads(line) if line.startswith("{") else {}
        for directive in record.get("_aws", {}).get("CloudWatchMetrics", []):
            names = {m["Name"] for m in directive["Metrics"]}
            if directive["Namespace"] != stale["Namespace"] or stale["MetricName"] not in names:
                continue
            if any(set(keys) == set(dimensions) for keys in directive["Dimensions"]) and all(
                record.get(k) == v for k, v in dimensions.items()
            ):
                total += sum(record[stale["MetricName"]])
    return total
