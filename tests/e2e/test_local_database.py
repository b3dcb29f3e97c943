"""A new user's flow on a fresh state dir: `make run` twice (and once --private), then
`leaderboard snapshots list` and `leaderboard history --plot` with no database URL read what the
local runs published, from the embedded database they keep, which the command starts for itself
and stops after; with no local database, one line names both ways to get one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from PIL import Image

from cli.main import main
from local import postgres
from local.style_boards import LOCAL_STYLE_CONTROL
from local.template import REPO_ROOT
from tests.e2e_fixtures import TEMPLATE_CACHE

SMALL = ["--battles", "3000", "--models", "8", "--bootstrap", "10"]
STYLE_BOARD = LOCAL_STYLE_CONTROL["overall"]


def _leaderboard(*argv: str) -> subprocess.CompletedProcess[str]:
    """The command in a process of its own, as a user runs it (no DATABASE_URL)."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *argv],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def state_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh state dir with the session's template. Not under pytest's tmp_path: another
    pytest session on this machine resets that folder's mode to 0700, which the embedded
    server (running as its own user when we are root) then cannot traverse."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    root = Path(tempfile.mkdtemp(prefix="leaderboard-local-"))
    shutil.copytree(TEMPLATE_CACHE / "templates", root / "templates")
    yield root
    postgres.stop_server(root / "postgres")
    shutil.rmtree(root, ignore_errors=True)


def _public(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT l.slug, s.snapshot_identifier FROM api.leaderboard_snapshot s"
            " JOIN api.leaderboard l ON l.id = s.leaderboard_id WHERE s.visibility = 'public'"
            " ORDER BY s.created_at, l.slug"
        ).fetchall()
    return [(str(a), str(b)) for a, b in rows]


def test_after_two_runs_the_snapshots_and_the_history_read_the_local_database(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = ["run", "--state-dir", str(state_dir), "--leaderboards", "overall,genetics", *SMALL]
    assert main(run) == 0
    assert main(run) == 0
    assert main([*run, "--private"]) == 0
    out = capsys.readouterr().out
    assert "private" in out and "leaderboard snapshots publish snapshot_" in out
    data_dir = state_dir / "postgres"
    url = postgres.with_database(postgres.embedded_server(data_dir), postgres.LOCAL_DATABASE)
    # The style-controlled overall, when the votes carry style counts, is test_style_e2e's.
    public = [(slug, i) for slug, i in _public(url) if slug != STYLE_BOARD]
    assert sorted(slug for slug, _ in public) == ["genetics", "genetics", "overall", "overall"]
    postgres.stop_server(data_dir)
    assert not postgres.is_running(data_dir), "the server stops when no process holds it"

    listed = _leaderboard("snapshots", "list", "--state-dir", str(state_dir))
    assert listed.returncode == 0, listed.stderr
    assert f"the local runs' database ({data_dir})" in listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()[2:]]
    rows = [row for row in rows if row[2] != STYLE_BOARD]
    assert len(rows) == 6
    assert sorted(row[3] for row in rows) == ["private"] * 2 + ["public"] * 4
    assert not postgres.is_running(data_dir), "started for the command, stopped after it"

    chart = state_dir / "history.png"
    drawn = _leaderboard(
        "history", "--state-dir", str(state_dir), "--plot", str(chart), "--format", "csv"
    )
    assert drawn.returncode == 0, drawn.stderr
    overall = [i for slug, i in public if slug == "overall"]
    snapshot_ids = {line.split(",")[2] for line in drawn.stdout.splitlines()[1:]}
    assert snapshot_ids == set(overall), "the two public snapshots, not the private one"
    with Image.open(chart) as image:
        assert image.format == "PNG" and image.size[0] > 1000
    assert "chart of 8 model(s) over 2 snapshot(s)" in drawn.stderr
    assert not postgres.is_running(data_dir)


def test_a_server_already_running_is_left_running(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--state-dir", str(state_dir), "--leaderboards", "overall", *SMALL]) == 0
    data_dir = state_dir / "postgres"
    assert postgres.is_running(data_dir), "this process (a run going on) holds it"
    listed = _leaderboard("snapshots", "list", "--state-dir", str(state_dir))
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()[2:]]
    assert [row[2] for row in rows if row[2] != STYLE_BOARD] == ["overall"]
    assert postgres.is_running(data_dir)


def test_without_a_url_or_a_local_database_one_line_names_both_ways(tmp_path: Path) -> None:
    for command in (["snapshots", "list"], ["history"]):
        done = _leaderboard(*command, "--state-dir", str(tmp_path))
        assert (done.returncode, done.stdout) == (2, ""), done.stderr
        assert done.stderr.splitlines()[-1] == (
            "leaderboard: error: no database: give --database-url URL (or set DATABASE_URL), or "
            f"run `leaderboard run` (make run) first to create the local one in {tmp_path}/postgres"
        )
        assert len(done.stderr.splitlines()) == 1, done.stderr
    assert list(tmp_path.iterdir()) == []
