"""Fetch benchmarks: votes from a real PostgreSQL (BixArena's schema) into Parquet in (moto's) S3.

The fetch stage makes one pass over the votes for every leaderboard (``common.fetch``); the
baseline "before" is the stage as it was, one server-sorted query per leaderboard
(``bench.fetch_before``), run in the same benchmark on the same database. Arenas are seeded by
``local.simulate`` and kept in ``.local/bench`` while their size, schema and simulator match
(``bench.arena``); those of ``fetch/`` and ``fetch-all/`` have no answer texts (battles without
rounds), so they time the votes pass, and ``fetch-style/`` times the answers pass on an arena
with answers of realistic length.

``fetch/1M``: the handler exporting ``overall`` (after a warm-up), against "before" for
``overall`` (one run: the server is warm by then); ``fetch-all/1M``: every leaderboard (overall +
20 categories) the same way, ``over_overall``: its time over ``fetch/1M``'s (target <= 1.5).
``fetch-baselines/1M`` (not in the default set): every leaderboard against "before" for all of
them, and ``overall`` against the same rows read as upstream does (psycopg's ``dict_row`` and
``fetchall()`` into Arrow, Parquet and S3).

``fetch/5M``: ``overall`` on about 5M votes, ours in a cold process (which also gives its peak
memory) and "before", one run each on the warm server; then the rank stage (B = 1000) on what
ours wrote, in a fresh process (see ``bench.isolated``). S3 is moto served over HTTP from the
bench's own process (``_s3_server``), so the measured peaks hold no copy of the objects put,
as a Lambda function's would not (moto in the process kept two, 200 MB); ``work_mb`` is the
part above the resident size before the work. ``fetch/1M`` does the same: in the process, moto
held the parts of a multipart upload beside the object made of them (+38 MB at 1M).
``fetch-baselines/1M`` keeps moto in the measured process.

``fetch-style/20k`` (and ``/100k``, not in the default set): the answers pass (``add_style``
over ``rounds_batches``: COPY as CSV, Arrow, numpy and RE2) for every vote of ``overall`` on an
arena of 20k (100k) battles whose answers average ~350 tokens, against the same counts computed
by PostgreSQL (``regexp_count``, the same patterns); both must agree.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any

import psycopg
from psycopg import sql

from bench import Benchmark, isolated, mark_start
from bench.arena import MODELS, seeded_database

BUCKET = "bench-artifacts"
BEFORE = "per-leaderboard sorted query (before)"

BASELINE_QUERY = """
SELECT e.id AS evaluation_id, b.model1_id, b.model2_id, e.outcome, e.created_at AS evaluated_at
FROM api.battle_evaluation e
JOIN api.battle b ON b.id = e.battle_id
JOIN api.battle_validation v ON v.id = b.effective_validation_id
WHERE v.is_biomedical AND e.created_at <= %(until)s
"""


def _aws_env(url: str, endpoint: str | None = None) -> None:
    """The stage's environment; ``endpoint``: S3 is the server there (``_s3_server``)."""
    if endpoint is not None:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
    os.environ.update(
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        ARTIFACTS_BUCKET=BUCKET,
        DATABASE_URL=url,
        POWERTOOLS_LOG_LEVEL="WARNING",
        POWERTOOLS_METRICS_DISABLED="true",
    )


@contextmanager
def _bucket(endpoint: str | None) -> Iterator[Any]:
    """An S3 client with the bench's bucket: moto in this process, or (``endpoint``) the server
    that ``_s3_server`` runs in the bench's own process, which made the bucket."""
    import boto3

    if endpoint is not None:
        yield boto3.client("s3")
        return
    from moto import mock_aws

    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        yield s3


@contextmanager
def _s3_server() -> Iterator[str]:
    """moto's S3 served over HTTP from this (unmeasured) process, with the bench's bucket: a
    measured process then holds the objects it puts no more than a Lambda function does (in
    process, moto keeps two copies of each, 200 MB at fetch/5M)."""
    import boto3

    from local import moto_server

    with moto_server.served() as endpoint:
        boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="bench", aws_secret_access_key="bench",
        ).create_bucket(Bucket=BUCKET)  # fmt: skip
        yield endpoint


def _context() -> Any:
    from local.moto_lambda import InvocationContext

    return InvocationContext(
        function_name="bench",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:bench",
        memory_limit_in_mb=3008,
        timeout_s=900,
    )


def _fetch_event(run_at: str, leaderboards: Any = ("overall",)) -> dict[str, Any]:
    return {
        "request": {
            "leaderboards": leaderboards if leaderboards == "all" else list(leaderboards),
            "run_at": run_at,
        },
        "execution_id": "arn:aws:states:us-east-1:123456789012:execution:bench:bench-1",
        "execution_name": "bench-1",
    }


def _ours(
    url: str,
    run_at: str,
    warm: bool,
    leaderboards: Any = ("overall",),
    endpoint: str | None = None,
) -> dict[str, Any]:
    """One call of the fetch stage's handler in this fresh process, after a warm-up call when
    ``warm`` (else cold: its lazy imports included); ``endpoint``: S3 there (``_s3_server``, which
    keeps the objects for ``_rank_stage``), else moto in this process."""
    _aws_env(url, endpoint)
    from stages.fetch.handler import handler

    with _bucket(endpoint) as s3:
        if warm:
            handler(_fetch_event(run_at, leaderboards), _context())
        mark_start()
        start = time.perf_counter()
        result = handler(_fetch_event(run_at, leaderboards), _context())
        seconds = time.perf_counter() - start
        board = result["leaderboards"][0]
        key = board["votes_uri"].split("/", 3)[3]
        size = s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"]
    return {
        "seconds": seconds,
        "votes": board["vote_count"],
        "all_votes": sum(b["vote_count"] for b in result["leaderboards"]),
        "parquet_mb": size / 2**20,
        "result": result,
    }


def _before(
    url: str, run_at: str, slugs: list[str] | None, endpoint: str | None = None
) -> dict[str, Any]:
    """One export as the stage did it before the shared pass (``bench.fetch_before``), in this
    fresh process (on a warm server: ``bench.arena.seeded_database`` and the calls before it);
    ``endpoint`` as for ``_ours``."""
    _aws_env(url, endpoint)
    from bench import fetch_before
    from common.storage import parse_s3_uri

    prefix = parse_s3_uri(f"s3://{BUCKET}/before/")
    at = datetime.fromisoformat(run_at)
    with _bucket(endpoint):
        mark_start()
        start = time.perf_counter()
        with psycopg.connect(url) as conn:
            counts = fetch_before.export_all(conn, slugs, at, prefix)
        seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "votes": counts.get("overall", 0),
        "all_votes": sum(counts.values()),
    }


def _baseline(url: str, run_at: str) -> dict[str, Any]:
    """Upstream's way: dict rows from fetchall(), a table built from them, Parquet, S3."""
    _aws_env(url)
    import pyarrow as pa
    import pyarrow.parquet as pq
    from psycopg.rows import dict_row

    with _bucket(None) as s3:
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


def _rank_stage(url: str, fetch_result: dict[str, Any], endpoint: str) -> dict[str, Any]:
    """The rank stage's handler (B = 1000), in this fresh process, on the objects fetch wrote to
    the S3 server at ``endpoint``."""
    _aws_env(url, endpoint)
    from stages.rank.handler import handler

    board = fetch_result["leaderboards"][0]
    mark_start()
    start = time.perf_counter()
    result = handler({"run": fetch_result["run"], "leaderboard": board}, _context())
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "ranked": result.get("ranked_count", 0)}


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _size(n: int) -> str:
    return f"{n // 1_000_000}M"


def _versus(
    bench: str, ours: dict[str, Any], base: dict[str, Any], baseline: str, **extra: Any
) -> dict[str, Any]:
    """One measurement of ``ours`` against ``base`` (two ``isolated`` results), side by side."""
    return {
        "bench": bench,
        "seconds": round(ours["seconds"], 3),
        "baseline": baseline,
        "baseline_seconds": round(base["seconds"], 3),
        "speedup": round(base["seconds"] / ours["seconds"], 2),
        "peak_mb": ours["peak_mb"],
        "work_mb": ours["work_mb"],
        "baseline_peak_mb": base["peak_mb"],
        **extra,
    }


def _fetch_speed(votes: int) -> list[dict[str, Any]]:
    url = seeded_database(votes)
    run_at = _now()
    with _s3_server() as s3:
        ours = isolated(_ours, url, run_at, True, ("overall",), s3)
        ours_all = isolated(_ours, url, run_at, True, "all", s3)
        before = isolated(_before, url, run_at, ["overall"], s3)
    if ours["votes"] != before["votes"]:
        raise SystemExit(f"fetch bench: ours {ours['votes']} votes, before {before['votes']}")
    return [
        _versus(
            f"fetch/{_size(votes)}",
            ours,
            before,
            BEFORE,
            votes=ours["votes"],
            models=MODELS,
            parquet_mb=round(ours["parquet_mb"], 1),
            notes=[
                "ours: fetch handler for `overall` (one unsorted pass, sorted in numpy, COPY binary"
                " -> Parquet -> S3) after a warm-up; baseline: the stage before the shared pass"
                " (server-sorted query), one run on the warm server; S3 is moto served from the"
                " bench's process over HTTP",
            ],
        ),
        {
            "bench": f"fetch-all/{_size(votes)}",
            "seconds": round(ours_all["seconds"], 3),
            "baseline": f"fetch/{_size(votes)} (overall only)",
            "baseline_seconds": round(ours["seconds"], 3),
            "speedup": None,
            "over_overall": round(ours_all["seconds"] / ours["seconds"], 2),
            "peak_mb": ours_all["peak_mb"],
            "work_mb": ours_all["work_mb"],
            "votes": ours_all["all_votes"],
            "leaderboards": len(ours_all["result"]["leaderboards"]),
            "notes": [
                "every leaderboard (overall + 20 categories) in one pass, after a warm-up;"
                " over_overall = this / fetch of `overall` alone (target <= 1.5)",
            ],
        },
    ]


def _fetch_baselines(votes: int) -> list[dict[str, Any]]:
    url = seeded_database(votes)
    run_at = _now()
    ours_all = isolated(_ours, url, run_at, True, "all")
    before_all = isolated(_before, url, run_at, None)
    ours = isolated(_ours, url, run_at, True)
    upstream = isolated(_baseline, url, run_at)
    if ours_all["all_votes"] != before_all["all_votes"] or ours["votes"] != upstream["votes"]:
        raise SystemExit(
            f"fetch bench: all leaderboards: ours {ours_all['all_votes']} votes, before"
            f" {before_all['all_votes']}; overall: ours {ours['votes']}, upstream"
            f" {upstream['votes']}"
        )
    return [
        _versus(
            f"fetch-all-before/{_size(votes)}",
            ours_all,
            before_all,
            BEFORE,
            votes=ours_all["all_votes"],
            notes=["every leaderboard: ours one pass, before one query each"],
        ),
        _versus(
            f"fetch-upstream/{_size(votes)}",
            ours,
            upstream,
            "dict_row fetchall -> Arrow (upstream)",
            votes=ours["votes"],
            notes=["`overall`: ours against the rows as upstream reads them, into Parquet"],
        ),
    ]


def _memory(votes: int) -> list[dict[str, Any]]:
    url = seeded_database(votes)
    run_at = _now()
    with _s3_server() as s3:
        fetched = isolated(_ours, url, run_at, False, ("overall",), s3)
        before = isolated(_before, url, run_at, ["overall"], s3)
        ranked = isolated(_rank_stage, url, fetched["result"], s3)
    if fetched["votes"] != before["votes"]:
        raise SystemExit(f"fetch bench: ours {fetched['votes']} votes, before {before['votes']}")
    note = "S3 is moto served from the bench's process over HTTP; work_mb excludes the setup"
    return [
        _versus(
            f"fetch/{_size(votes)}",
            fetched,
            before,
            BEFORE,
            votes=fetched["votes"],
            parquet_mb=round(fetched["parquet_mb"], 1),
            notes=[
                "one run each on the warm server, ours in a cold process (its lazy imports"
                f" included), which also gives its peak; {note}"
            ],
        ),
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


REALISTIC_TOKENS = 350.0
"""fetch-style's answers: the median model's mean answer length, as on real arenas."""

STYLE_SQL = """
SELECT sum(regexp_count(m.content, %(token)s)),
       sum(regexp_count(m.markdown, %(header)s, 1, 'n')),
       sum(regexp_count(m.markdown, %(list_item)s, 1, 'n')),
       sum(regexp_count(m.markdown, %(bold_stars)s) + regexp_count(m.markdown, %(bold_under)s))
FROM (SELECT s.id FROM ({votes}) s) v
JOIN api.battle_evaluation e ON e.id = v.id
  AND NOT EXISTS (SELECT 1 FROM api.battle_round r2 WHERE r2.battle_id = e.battle_id
                  AND (r2.model1_message_id IS NULL OR r2.model2_message_id IS NULL))
JOIN api.battle_round r ON r.battle_id = e.battle_id
JOIN LATERAL (
  SELECT x.content, regexp_replace(x.content, %(fence)s, '`', 'g') AS markdown
  FROM api.message x WHERE x.id IN (r.model1_message_id, r.model2_message_id)
) m ON true
"""


def _style_pass(url: str, run_at: str, sql_too: bool) -> dict[str, Any]:
    """The answers pass of the fetch stage for `overall`, then (``sql_too``) the same counts by
    PostgreSQL, in this fresh process."""
    from common import answer_style, copy_stream, fetch
    from common.filters import LeaderboardFilters, plan_fetch, votes_query

    plan = plan_fetch(["overall"], LeaderboardFilters(), datetime.fromisoformat(run_at))
    with psycopg.connect(url) as conn:
        fetch.open_snapshot(conn)
        with conn.transaction():
            catalogue = fetch.model_catalogue(conn)
            statement, params = votes_query(plan)
            with closing(copy_stream.copy_out(conn, statement, params)) as messages:
                votes = fetch.shared_votes(
                    copy_stream.copy_row_batches(messages, fetch.BATCH_ROWS, fetch.copy_row(0)),
                    catalogue,
                    0,
                )
            text_mb = conn.execute(
                "SELECT sum(octet_length(content)) / 1048576.0 FROM api.message"
                " WHERE role = 'assistant'"
            ).fetchone()
            mark_start()
            start = time.perf_counter()
            styled = fetch.add_style(votes, fetch.rounds_batches(conn, plan))
            arrow_seconds = time.perf_counter() - start
            ours = styled.style[styled.has_style]
            totals = [int(ours[:, j].sum() + ours[:, j + 4].sum()) for j in range(4)]
            sql_seconds = None
            if sql_too:
                start = time.perf_counter()
                row = conn.execute(
                    sql.SQL(STYLE_SQL).format(votes=statement),
                    {
                        **params,
                        "token": answer_style.TOKEN, "header": answer_style.HEADER,
                        "list_item": answer_style.LIST_ITEM, "bold_stars": answer_style.BOLD_STARS,
                        "bold_under": answer_style.BOLD_UNDERSCORES, "fence": answer_style.FENCE,
                    },
                ).fetchone()  # fmt: skip
                sql_seconds = time.perf_counter() - start
                if row is None or [int(x) for x in row] != totals:
                    raise SystemExit(f"fetch-style: PostgreSQL counts {row}, ours {totals}")
    return {
        "seconds": arrow_seconds,
        "sql_seconds": sql_seconds,
        "text_mb": float(text_mb[0]) if text_mb and text_mb[0] is not None else 0.0,
        "votes": len(votes.ids),
        "styled": int(styled.has_style.sum()),
        "totals": totals,
    }


def _style_speed(battles: int) -> list[dict[str, Any]]:
    from bench.arena import OVERALL_SHARE

    url = seeded_database(int(battles * OVERALL_SHARE), answer_tokens=REALISTIC_TOKENS)
    run_at = _now()
    isolated(_style_pass, url, run_at, False)  # warm-up: the server's cache
    ours = isolated(_style_pass, url, run_at, True)
    return [
        {
            "bench": f"fetch-style/{battles // 1000}k",
            "seconds": round(ours["seconds"], 3),
            "baseline": "PostgreSQL regexp_count",
            "baseline_seconds": round(ours["sql_seconds"], 3),
            "speedup": round(ours["sql_seconds"] / ours["seconds"], 1),
            "peak_mb": ours["peak_mb"],
            "work_mb": ours["work_mb"],
            "votes": ours["votes"],
            "styled_votes": ours["styled"],
            "answer_text_mb": round(ours["text_mb"], 1),
            "text_mb_per_s": round(ours["text_mb"] / ours["seconds"], 1),
            "notes": [
                "ours: the answers pass (COPY CSV -> Arrow; tokens in numpy, markdown in RE2) for"
                " every `overall` vote; baseline: the same rule as regexp_count in PostgreSQL 18"
                " (needs PostgreSQL >= 15)",
            ],
        }
    ]


BENCHMARKS = [
    Benchmark(
        "fetch/1M",
        "fetch stage: 1M votes, overall (vs the stage before) and all 21 leaderboards",
        partial(_fetch_speed, 1_000_000),
    ),
    Benchmark(
        "fetch-baselines/1M",
        "fetch of all 21 leaderboards vs the stage before, and of overall vs upstream's rows",
        partial(_fetch_baselines, 1_000_000),
        default=False,
    ),
    Benchmark(
        "fetch-style/20k",
        "answers pass: style counts of 20k battles' answers, Arrow vs PostgreSQL",
        partial(_style_speed, 20_000),
    ),
    Benchmark(
        "fetch-style/100k",
        "answers pass: style counts of 100k battles' answers, Arrow vs PostgreSQL",
        partial(_style_speed, 100_000),
        default=False,
    ),
    Benchmark(
        "fetch/5M",
        "fetch on 5M votes vs the stage before; peak memory of the fetch and rank stages",
        partial(_memory, 5_000_000),
    ),
]
