"""Fetch benchmarks: votes from a real PostgreSQL into Parquet in (moto's) S3.

``fetch/1M``: an embedded PostgreSQL seeded by ``local.simulate`` (100 models, enough battles for
about 1M votes in ``overall`` after upstream's filters) and the fetch stage's handler exporting
``overall`` (binary COPY -> NumPy -> Parquet -> S3), best of 3 after a warm-up run; against the
baseline "as upstream does it": the same filtered rows fetched with psycopg's ``dict_row`` and
``fetchall()``, built into an Arrow table row by row, written as Parquet and put in S3.

``fetch/5M`` and ``rank-stage/5M``: peak memory of the fetch stage and of the rank stage
(B = 1000) on about 5M votes, each in a fresh process (see ``bench.isolated``). moto keeps the S3
objects in the measuring process, so its peak includes one copy of the Parquet object that a real
Lambda function would not hold; ``work_mb`` is the part above the resident size before the work.

Seeded databases are kept in ``.local/bench-postgres`` and reused when their size matches.
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import psycopg

from bench import Benchmark, isolated, mark_start
from bench.arena import MODELS, seeded_database

BUCKET = "bench-artifacts"

BASELINE_QUERY = """
SELECT e.id AS evaluation_id, b.model1_id, b.model2_id, e.outcome, e.created_at AS evaluated_at
FROM api.battle_evaluation e
JOIN api.battle b ON b.id = e.battle_id
JOIN api.battle_validation v ON v.id = b.effective_validation_id
WHERE v.is_biomedical AND e.created_at <= %(until)s
"""


def _aws_env(url: str) -> None:
    os.environ.update(
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        ARTIFACTS_BUCKET=BUCKET,
        DATABASE_URL=url,
        POWERTOOLS_LOG_LEVEL="WARNING",
        POWERTOOLS_METRICS_DISABLED="true",
    )


def _context() -> Any:
    from local.moto_lambda import InvocationContext

    return InvocationContext(
        function_name="bench",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:bench",
        memory_limit_in_mb=3008,
        timeout_s=900,
    )


def _fetch_event(run_at: str) -> dict[str, Any]:
    return {
        "request": {"leaderboards": ["overall"], "run_at": run_at},
        "execution_id": "arn:aws:states:us-east-1:123456789012:execution:bench:bench-1",
        "execution_name": "bench-1",
    }


def _ours(url: str, run_at: str, repeats: int, keep: str | None) -> dict[str, Any]:
    """The fetch stage's handler, in this fresh process; ``keep``: a folder for its objects."""
    _aws_env(url)
    import boto3
    from moto import mock_aws

    from stages.fetch.handler import handler

    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        if repeats > 1:
            handler(_fetch_event(run_at), _context())  # warm-up: server cache, imports
        mark_start()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            result = handler(_fetch_event(run_at), _context())
            times.append(time.perf_counter() - start)
        board = result["leaderboards"][0]
        key = board["votes_uri"].split("/", 3)[3]
        size = s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"]
        if keep is not None:
            for uri in (board["votes_uri"], board["models_uri"]):
                body = s3.get_object(Bucket=BUCKET, Key=uri.split("/", 3)[3])["Body"].read()
                Path(keep, uri.rsplit("/", 1)[1]).write_bytes(body)
    return {
        "seconds": min(times),
        "votes": board["vote_count"],
        "parquet_mb": size / 2**20,
        "result": result,
    }


def _baseline(url: str, run_at: str) -> dict[str, Any]:
    """Upstream's way: dict rows from fetchall(), a table built from them, Parquet, S3."""
    _aws_env(url)
    import boto3
    import pyarrow as pa
    import pyarrow.parquet as pq
    from moto import mock_aws
    from psycopg.rows import dict_row

    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        mark_start()
        start = time.perf_counter()
        with psycopg.connect(url, row_factory=dict_row) as conn:
            rows = conn.execute(
                BASELINE_QUERY, {"until": datetime.fromisoformat(run_at)}
            ).fetchall()
        table = pa.Table.from_pylist(
            [
                {
                    "evaluation_id": str(r["evaluation_id"]),
                    "model1_id": str(r["model1_id"]),
                    "model2_id": str(r["model2_id"]),
                    "outcome": r["outcome"],
                    "evaluated_at": r["evaluated_at"],
                }
                for r in rows
            ]
        )
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        s3.put_object(
            Bucket=BUCKET, Key="baseline/votes.parquet", Body=sink.getvalue().to_pybytes()
        )
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "votes": len(rows)}


def _rank_stage(url: str, folder: str, fetch_result: dict[str, Any]) -> dict[str, Any]:
    """The rank stage's handler (B = 1000) on the objects fetch wrote, in this fresh process."""
    _aws_env(url)
    import boto3
    from moto import mock_aws

    from stages.rank.handler import handler

    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        board = fetch_result["leaderboards"][0]
        for uri in (board["votes_uri"], board["models_uri"]):
            body = Path(folder, uri.rsplit("/", 1)[1]).read_bytes()
            s3.put_object(Bucket=BUCKET, Key=uri.split("/", 3)[3], Body=body)
        del body
        mark_start()
        start = time.perf_counter()
        result = handler({"run": fetch_result["run"], "leaderboard": board}, _context())
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "ranked": result.get("ranked_count", 0)}


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _size(n: int) -> str:
    return f"{n // 1_000_000}M"


def _fetch_speed(votes: int) -> list[dict[str, Any]]:
    url = seeded_database(votes)
    run_at = _now()
    ours = isolated(_ours, url, run_at, 3, None)
    base = isolated(_baseline, url, run_at)
    if base["votes"] != ours["votes"]:
        raise SystemExit(f"fetch bench: baseline read {base['votes']} votes, ours {ours['votes']}")
    return [
        {
            "bench": f"fetch/{_size(votes)}",
            "seconds": round(ours["seconds"], 3),
            "baseline": "dict_row-fetchall",
            "baseline_seconds": round(base["seconds"], 3),
            "speedup": round(base["seconds"] / ours["seconds"], 1),
            "peak_mb": ours["peak_mb"],
            "work_mb": ours["work_mb"],
            "baseline_peak_mb": base["peak_mb"],
            "votes": ours["votes"],
            "models": MODELS,
            "parquet_mb": round(ours["parquet_mb"], 1),
            "notes": [
                "ours: fetch handler for `overall` (COPY binary -> Parquet -> moto S3), best of 3 "
                "after a warm-up; baseline: same rows via dict_row fetchall -> Arrow -> Parquet -> S3",
            ],
        }
    ]


def _memory(votes: int) -> list[dict[str, Any]]:
    url = seeded_database(votes)
    run_at = _now()
    with tempfile.TemporaryDirectory(prefix="bench-fetch-") as folder:
        fetched = isolated(_ours, url, run_at, 1, folder)
        ranked = isolated(_rank_stage, url, folder, fetched["result"])
    note = "peak_mb includes moto's in-process copy of the S3 objects; work_mb excludes the setup"
    return [
        {
            "bench": f"fetch/{_size(votes)}",
            "seconds": round(fetched["seconds"], 3),
            "baseline": None,
            "baseline_seconds": None,
            "speedup": None,
            "peak_mb": fetched["peak_mb"],
            "work_mb": fetched["work_mb"],
            "votes": fetched["votes"],
            "parquet_mb": round(fetched["parquet_mb"], 1),
            "notes": [f"fetch handler, one cold run; {note}"],
        },
        {
            "bench": f"rank-stage/{_size(votes)}",
            "seconds": round(ranked["seconds"], 3),
            "baseline": None,
            "baseline_seconds": None,
            "speedup": None,
            "peak_mb": ranked["peak_mb"],
            "work_mb": ranked["work_mb"],
            "votes": fetched["votes"],
            "ranked": ranked["ranked"],
            "notes": [f"rank handler (S3 read, B=1000, entries write); {note}"],
        },
    ]


BENCHMARKS = [
    Benchmark(
        "fetch/1M",
        "fetch stage: 1M votes PostgreSQL -> Parquet in S3 vs dict rows",
        partial(_fetch_speed, 1_000_000),
    ),
    Benchmark(
        "fetch/5M",
        "peak memory of the fetch and rank stages on 5M votes",
        partial(_memory, 5_000_000),
    ),
]
