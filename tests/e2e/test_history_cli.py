"""``leaderboard history`` against the real test database: the table, JSON and CSV hold what an
independent query of BixArena's tables says, the chart is a real two-panel figure, and bad
arguments are refused in one line (exit 2)."""

from __future__ import annotations

import csv
import io
import json
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from PIL import Image

from cli import history, history_plot, main

MODELS = [
    ("model-a", "Model A"),
    ("model-b", "Model B"),
    ("model-c", "Model C"),
    ("model-d", "Model D"),
]
DAY1, DAY2, DAY3, DAY4 = (datetime(2026, 1, d, 6, tzinfo=UTC) for d in (1, 2, 3, 4))
# (identifier time, visibility, {model slug: (rank, score)}); model-c is not ranked on day 2,
# model-d only on day 1; day 4 is private (not shown by BixArena, so not in the history).
OVERALL = [
    (DAY1, "public", {"model-a": (2, 1010.0), "model-b": (1, 1040.0), "model-c": (3, 980.0), "model-d": (4, 900.0)}),
    (DAY2, "public", {"model-a": (1, 1030.5), "model-b": (2, 1020.25)}),
    (DAY3, "public", {"model-a": (1, 1050.125), "model-b": (3, 990.0), "model-c": (2, 1001.0)}),
    (DAY4, "private", {"model-a": (2, 1000.0), "model-b": (1, 1100.0), "model-c": (3, 950.0)}),
]  # fmt: skip


@dataclass(frozen=True)
class Arena:
    url: str
    snapshots: dict[datetime, str]
    """overall's snapshot ids by identifier time."""


@pytest.fixture
def arena(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Arena:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    ids: dict[datetime, str] = {}
    with psycopg.connect(database_url) as conn:
        models = {
            slug: str(
                conn.execute(
                    "INSERT INTO api.model (slug, name, license, external_link, api_model_name,"
                    " api_base) VALUES (%s, %s, 'open-source', 'https://example.org', %s,"
                    " 'https://example.org/v1') RETURNING id",
                    (slug, name, slug),
                ).fetchone()[0]  # type: ignore[index]
            )
            for slug, name in MODELS
        }

        def snapshot(slug: str, at: datetime, visibility: str, entries: dict[str, tuple[int, float]]) -> str:  # fmt: skip
            board, snapshot_id = conn.execute(
                "INSERT INTO api.leaderboard_snapshot (leaderboard_id, snapshot_identifier,"
                " description, visibility, created_at, updated_at)"
                " SELECT id, %s, 'test', %s, %s, %s FROM api.leaderboard WHERE slug = %s"
                " RETURNING leaderboard_id, id",
                (f"{at:snapshot_%Y-%m-%d_%H-%M-%S}", visibility, at, at, slug),
            ).fetchone()  # type: ignore[misc]
            for model, (rank, score) in entries.items():
                conn.execute(
                    "INSERT INTO api.leaderboard_entry (leaderboard_id, model_id, snapshot_id,"
                    " bt_score, vote_count, rank, bootstrap_q025, bootstrap_q975)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    (board, models[model], snapshot_id, score, 100 + rank * 7 + at.day,
                     rank, score - 25.5, score + 30.25),
                )  # fmt: skip
            return str(snapshot_id)

        # Inserted out of time order: the history orders by created_at, not by insertion.
        for at, visibility, entries in reversed(OVERALL):
            ids[at] = snapshot("overall", at, visibility, entries)
        snapshot("genomics", DAY2, "public", {"model-d": (1, 1200.0), "model-a": (2, 1000.0)})
    return Arena(url=database_url, snapshots=ids)


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, err
    return err


_ROWS = """
    SELECT s.id::text, s.snapshot_identifier, s.created_at, m.id::text, m.slug, m.name, e.rank,
           e.bt_score, e.bootstrap_q025, e.bootstrap_q975, e.vote_count
    FROM api.leaderboard_entry e
    JOIN api.leaderboard_snapshot s ON s.id = e.snapshot_id
    JOIN api.leaderboard l ON l.id = s.leaderboard_id
    JOIN api.model m ON m.id = e.model_id
    WHERE l.slug = %s AND s.visibility = 'public'
"""


def _public_rows(url: str, slug: str = "overall") -> list[tuple[object, ...]]:
    """Every public entry of a leaderboard, straight from the tables, by snapshot time then name."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(_ROWS, (slug,)).fetchall()
    return sorted(rows, key=lambda r: (r[2], r[5]))


# --- table, JSON, CSV -------------------------------------------------------------------------------
def test_csv_holds_every_public_entry_of_the_models_shown(
    arena: Arena, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(capsys, "history", "--database-url", arena.url, "--format", "csv")
    assert (code, err) == (0, "")
    read = list(csv.DictReader(io.StringIO(out)))
    assert list(read[0]) == list(history.CSV_COLUMNS)
    # The default is the top 10 of the newest public snapshot (day 3): a, c, b; d left out.
    expected = [
        {
            "leaderboard": "overall",
            "snapshot_id": r[0],
            "snapshot_identifier": r[1],
            "created_at": r[2].astimezone(UTC).isoformat(),  # type: ignore[attr-defined]
            "model_id": r[3],
            "model_slug": r[4],
            "model_name": r[5],
            "rank": str(r[6]),
            "bt_score": str(r[7]),
            "bootstrap_q025": str(r[8]),
            "bootstrap_q975": str(r[9]),
            "vote_count": str(r[10]),
        }
        for r in _public_rows(arena.url)
        if r[4] != "model-d"
    ]
    by_model_then_time = {"model-a": 0, "model-c": 1, "model-b": 2}
    expected.sort(key=lambda r: (by_model_then_time[r["model_slug"]], r["created_at"]))
    assert read == expected
    assert {r["snapshot_id"] for r in read} == {arena.snapshots[d] for d in (DAY1, DAY2, DAY3)}


def test_json_series_follow_the_public_snapshots_in_time_order(
    arena: Arena, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _cli(
        capsys, "history", "--database-url", arena.url, "--format", "json", "--models", "model-d,Model A"
    )  # fmt: skip
    assert code == 0
    document = json.loads(out)
    assert document["leaderboard"] == "overall"
    assert [s["id"] for s in document["snapshots"]] == [
        arena.snapshots[d] for d in (DAY1, DAY2, DAY3)
    ]
    assert [s["created_at"] for s in document["snapshots"]] == [
        d.isoformat() for d in (DAY1, DAY2, DAY3)
    ]
    # Ranked in the newest snapshot first (model-a), then the others by their last rank.
    assert [m["slug"] for m in document["models"]] == ["model-a", "model-d"]
    rows = _public_rows(arena.url)
    for model in document["models"]:
        mine = [r for r in rows if r[4] == model["slug"]]
        assert [
            (p["snapshot_id"], p["rank"], Decimal(str(p["bt_score"])), Decimal(str(p["bootstrap_q025"])), Decimal(str(p["bootstrap_q975"])), p["vote_count"])
            for p in model["points"]
        ] == [(r[0], r[6], r[7], r[8], r[9], r[10]) for r in mine]  # fmt: skip


def test_the_table_shows_each_model_snapshot_by_snapshot_with_its_moves(
    arena: Arena, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _cli(capsys, "history", "--database-url", arena.url, "--top", "2")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == (
        "overall: 3 public snapshot(s), 2026-01-01 06:00:00 .. 2026-01-03 06:00:00 UTC; "
        "the top 2 of the newest snapshot"
    )
    assert lines[1].split() == [
        "model", "snapshot", "(UTC)", "rank", "move", "score", "95%", "CI", "votes",
    ]  # fmt: skip
    rows = [line.split() for line in lines[3:]]
    assert rows == [
        ["Model", "A", "2026-01-01", "06:00:00", "2", "1010.0", "984.5", "..", "1040.2", "115"],
        ["2026-01-02", "06:00:00", "1", "↑1", "1030.5", "1005.0", "..", "1060.8", "109"],
        ["2026-01-03", "06:00:00", "1", "=", "1050.1", "1024.6", "..", "1080.4", "110"],
        ["Model", "C", "2026-01-01", "06:00:00", "3", "980.0", "954.5", "..", "1010.2", "122"],
        ["2026-01-02", "06:00:00", "-", "not", "ranked"],
        ["2026-01-03", "06:00:00", "2", "new", "1001.0", "975.5", "..", "1031.2", "117"],
    ]


def test_since_and_another_leaderboard(arena: Arena, capsys: pytest.CaptureFixture[str]) -> None:
    url = ["--database-url", arena.url, "--format", "json"]
    _, out, _ = _cli(capsys, "history", *url, "--since", "2026-01-02")
    assert [s["id"] for s in json.loads(out)["snapshots"]] == [
        arena.snapshots[DAY2],
        arena.snapshots[DAY3],
    ]
    _, out, _ = _cli(capsys, "history", *url, "--since", "2026-01-02T06:00:01Z")
    assert [s["id"] for s in json.loads(out)["snapshots"]] == [arena.snapshots[DAY3]]
    _, out, _ = _cli(capsys, "history", *url, "--leaderboard", "genomics")
    document = json.loads(out)
    assert [(m["slug"], [p["rank"] for p in m["points"]]) for m in document["models"]] == [
        ("model-d", [1]),
        ("model-a", [2]),
    ]
    code, out, _ = _cli(capsys, "history", "--database-url", arena.url, "--leaderboard", "neuroscience")  # fmt: skip
    assert (code, out) == (0, "neuroscience: no public snapshot\n")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--leaderboard", "astrology"], "leaderboard: no leaderboard 'astrology'"),
        (["--models", "model-z"], "--models: no model 'model-z' in these snapshots (known: Model A, Model B, Model C, Model D)"),
        (["--since", "yesterday"], "--since: 'yesterday' is not a date (YYYY-MM-DD) or an instant"),
        (["--plot", "chart.pdf"], "--plot: 'chart.pdf' must end in .png or .svg"),
        (["--plot", "/no/such/folder/chart.png"], "--plot: no folder '/no/such/folder' to write into"),
        (["--leaderboard", "neuroscience", "--plot", "{tmp}/c.png"], "--plot: neuroscience has no public snapshot to draw"),
    ],
)  # fmt: skip
def test_bad_arguments_are_one_line(
    arena: Arena,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    arguments: list[str],
    message: str,
) -> None:
    arguments = [a.replace("{tmp}", str(tmp_path)) for a in arguments]
    code, _, err = _cli(capsys, "history", "--database-url", arena.url, *arguments)
    assert code == 2
    assert message in _one_line(err)
    assert list(tmp_path.iterdir()) == []


# --- the chart -----------------------------------------------------------------------------------
def test_the_plot_is_a_png_or_svg_chart(
    arena: Arena, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    png, svg = tmp_path / "history.png", tmp_path / "history.svg"
    for path in (png, svg):
        code, _, err = _cli(capsys, "history", "--database-url", arena.url, "--plot", str(path))
        assert code == 0
        assert f"chart of 3 model(s) over 3 snapshot(s) written to {path}" in err
    with Image.open(png) as image:
        assert image.format == "PNG"
        assert image.size == (
            round(history_plot.WIDTH_IN * history_plot.DPI),
            round(history_plot.HEIGHT_IN * history_plot.DPI),
        )
        # A chart, not a blank canvas: many distinct colours (lines, bands, text).
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 16) or []) > 50
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    assert root.attrib["width"] == f"{history_plot.WIDTH_IN * 72:g}pt"
    assert svg.read_text().count("<path") > 50, "lines, bands, markers and glyphs"


def test_the_figure_has_a_score_panel_with_bands_and_a_rank_panel_with_rank_1_on_top(
    arena: Arena,
) -> None:
    with psycopg.connect(arena.url) as conn:
        found = history.read(conn, "overall", models=["model-a", "model-c"])
    fig = history_plot.figure(found)
    score_ax, rank_ax = fig.axes
    assert score_ax.get_shared_x_axes().joined(score_ax, rank_ax)
    low, high = rank_ax.get_ylim()
    assert low > high, "rank 1 at the top"
    assert len(score_ax.collections) == 2, "one CI band per model"
    rows = _public_rows(arena.url)
    for line, rank_line, slug in zip(score_ax.lines, rank_ax.lines, ["model-a", "model-c"], strict=True):  # fmt: skip
        mine = {r[0]: r for r in rows if r[4] == slug}
        days = [arena.snapshots[d] for d in (DAY1, DAY2, DAY3)]
        expected_scores = [float(mine[s][7]) if s in mine else math.nan for s in days]  # type: ignore[arg-type]
        expected_ranks = [float(mine[s][6]) if s in mine else math.nan for s in days]  # type: ignore[arg-type]
        assert _same(list(line.get_ydata()), expected_scores)  # type: ignore[arg-type]
        assert _same(list(rank_line.get_ydata()), expected_ranks)  # type: ignore[arg-type]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["1. Model A", "2. Model C"]
    assert "score and rank across 3 public snapshots" in score_ax.get_title(loc="left")


def _same(got: list[float], expected: list[float]) -> bool:
    return len(got) == len(expected) and all(
        (math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(got, expected, strict=True)
    )


def test_snapshots_of_the_same_time_follow_data_order(
    arena: Arena, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two public snapshots dated alike (a backfilled instant and a run of the same data time):
    # the history orders them as BixArena's data order does, by identifier, not by row id.
    at = datetime(2026, 1, 5, 6, tzinfo=UTC)
    with psycopg.connect(arena.url) as conn:
        for snapshot_id, identifier in (
            ("ffffffff-0000-4000-8000-000000000001", "snapshot_2026-01-05_06-00-00"),
            ("00000000-0000-4000-8000-000000000002", "snapshot_2026-01-05_06-00-01"),
        ):
            conn.execute(
                "INSERT INTO api.leaderboard_snapshot (id, leaderboard_id, snapshot_identifier,"
                " description, visibility, created_at, updated_at)"
                " SELECT %s, id, %s, 'test', 'public', %s, %s FROM api.leaderboard"
                " WHERE slug = 'genomics'",
                (snapshot_id, identifier, at, at),
            )
    code, out, _ = _cli(
        capsys, "history", "--database-url", arena.url, "--leaderboard", "genomics", "--format", "json"
    )  # fmt: skip
    assert code == 0
    assert [s["identifier"] for s in json.loads(out)["snapshots"]][-2:] == [
        "snapshot_2026-01-05_06-00-00",
        "snapshot_2026-01-05_06-00-01",
    ]
