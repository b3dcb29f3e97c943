"""The local run's Map iterations run in separate worker processes, no more at once than the
Map's MaxConcurrency (and the cores) allow, and publish exactly what the in-process threads do:
the same snapshots, and the same bytes in S3."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psycopg

from cli.report import most_at_once, published_results
from tests.e2e_fixtures import (
    RANKED,
    SnapshotView,
    e2e_arena,
    e2e_db,
    e2e_template,
    execute,
    expected,
    pipeline,
    snapshots_in,
)

__all__ = ["e2e_arena", "e2e_db", "e2e_template", "expected"]


def _objects(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _without_ids(found: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> Any:
    """Publish results without the snapshot rows' ids (each run inserts its own rows)."""
    results, skipped = found
    return [{k: v for k, v in r.items() if k != "snapshot_id"} for r in results], skipped


def _map_concurrency(definition: dict[str, Any]) -> int:
    (limit,) = [
        int(state["MaxConcurrency"])
        for state in definition["States"].values()
        if state["Type"] == "Map"
    ]
    return limit


def test_iterations_run_in_worker_processes_bounded_by_the_map_and_match_threads(
    e2e_template: dict[str, Any],
    e2e_db: str,
    expected: dict[str, SnapshotView],
    tmp_path: Path,
) -> None:
    with pipeline(e2e_template, e2e_db, tmp_path / "workers") as running:
        record = execute(running, "e2e-workers")
        invocations = running.invocations
        workers = running.worker_count
        limit = _map_concurrency(running.definition)
    assert record.status == "SUCCEEDED", record.error
    assert snapshots_in(e2e_db) == {slug: [expected[slug]] for slug in RANKED}

    cores = len(os.sched_getaffinity(0))
    assert workers == min(limit, cores)
    assert os.getpid() not in {i.pid for i in invocations}
    in_map = [i for i in invocations if i.function.startswith(("Rank", "Publish"))]
    # 4 leaderboards: 3 ranked and published, one skipped by fetch before the Map.
    assert len(in_map) == 2 * len(RANKED)
    assert len({i.pid for i in in_map}) == min(workers, len(RANKED))
    assert most_at_once(invocations) <= min(limit, cores)

    # The same run as threads of this process, on the same votes, publishes the same snapshots
    # and writes the same bytes.
    with psycopg.connect(e2e_db, autocommit=True) as conn:
        conn.execute("DELETE FROM api.leaderboard_snapshot")
    with pipeline(e2e_template, e2e_db, tmp_path / "threads", workers=0) as running:
        threaded = execute(running, "e2e-workers")
        assert {i.pid for i in running.invocations} == {os.getpid()}
    assert threaded.status == "SUCCEEDED", threaded.error
    assert snapshots_in(e2e_db) == {slug: [expected[slug]] for slug in RANKED}
    assert _without_ids(published_results(threaded.history)) == _without_ids(
        published_results(record.history)
    )
    ours, theirs = _objects(tmp_path / "workers" / "s3"), _objects(tmp_path / "threads" / "s3")
    assert ours and ours == theirs
