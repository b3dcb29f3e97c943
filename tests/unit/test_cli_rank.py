"""``leaderboard rank``: outputs, options, and one-line errors with exit code 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.style import StyleArena, style_arena
from cli.main import main
from common.votes import STYLE_COLUMNS

OUTCOMES = np.array(["model1", "model2", "tie"])


def battles(path: Path, models: int = 5, votes: int = 600, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    names = np.array([f"model-{i}" for i in range(models)])
    a = rng.integers(0, models, votes)
    b = (a + rng.integers(1, models, votes)) % models
    pq.write_table(
        pa.table(
            {
                "model_a": names[a],
                "model_b": names[b],
                "outcome": OUTCOMES[rng.integers(0, 3, votes)],
            }
        ),
        path,
    )
    return path


def test_table_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rank", str(battles(tmp_path / "b.parquet")), "--bootstrap", "50"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["rank", "model", "score"]
    assert "5 ranked, 0 not ranked, 600 votes" in out


def test_json_output_to_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "ranking.json"
    path = battles(tmp_path / "b.parquet")
    args = ["rank", str(path), "--format", "json", "--output", str(target), "--seed", "3"]
    assert main([*args, "--bootstrap", "50"]) == 0
    assert "ranked 5 of 5 models from 600 votes" in capsys.readouterr().out
    records = json.loads(target.read_text())
    assert [r["rank"] for r in records] == [1, 2, 3, 4, 5]
    for r in records:
        assert set(r) == {
            "model",
            "bt_score",
            "bootstrap_q025",
            "bootstrap_q975",
            "rank",
            "vote_count",
        }
        assert r["bootstrap_q025"] <= r["bt_score"] <= r["bootstrap_q975"]


def test_unrankable_model_has_null_rank_and_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "b.parquet"
    base = pq.ParquetFile(battles(tmp_path / "base.parquet")).read().to_pydict()
    for key, value in (("model_a", "champion"), ("model_b", "model-0"), ("outcome", "model1")):
        base[key] += [value] * 12
    pq.write_table(pa.table(base), path)
    args = ["rank", str(path), "--format", "json", "--bootstrap", "20", "--significant"]
    assert main(args) == 0
    records = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    assert records["champion"]["rank"] is None
    assert records["champion"]["reason"] == "never lost"
    assert records["champion"]["bt_score"] is None
    assert records["champion"]["vote_count"] == 12


def test_sandwich_and_min_evals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = battles(tmp_path / "b.parquet", votes=40)
    assert (
        main(["rank", str(path), "--ci", "sandwich", "--min-evals", "1000", "--format", "json"])
        == 0
    )
    records = json.loads(capsys.readouterr().out)
    assert all(r["rank"] is None and r["reason"] == "fewer than 1000 evaluations" for r in records)


def _write(tmp_path: Path, columns: dict[str, list[str]]) -> Path:
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({k: pa.array(v, pa.string()) for k, v in columns.items()}), path)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.parquet", "no such file"),
        (lambda p: _write(p, {"model_a": ["a"], "model_b": ["b"]}), "missing column(s) outcome"),
        (
            lambda p: _write(p, {"model_a": ["a"], "model_b": ["b"], "outcome": ["win"]}),
            "unknown outcome 'win'",
        ),
        (lambda p: _write(p, {"model_a": [], "model_b": [], "outcome": []}), "no votes"),
        (
            lambda p: _write(p, {"model_a": ["a"], "model_b": ["a"], "outcome": ["tie"]}),
            "fewer than two models",
        ),
        (
            lambda p: _write(
                p, {"model_a": ["a", "a"], "model_b": ["b", "a"], "outcome": ["tie"] * 2}
            ),
            "compares a model with itself",
        ),
        (lambda p: (p / "x.parquet").write_text("not parquet") and p / "x.parquet", "Parquet"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make, message: str
) -> None:
    assert main(["rank", str(make(tmp_path))]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1
    assert captured.err.startswith("leaderboard: error: ") and message in captured.err
    assert "Traceback" not in captured.err


def test_unwritable_output_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = battles(tmp_path / "b.parquet", votes=60)
    target = tmp_path / "no" / "such" / "dir.json"
    assert main(["rank", str(path), "--bootstrap", "10", "--output", str(target)]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_bad_option_values_exit_2(tmp_path: Path) -> None:
    path = str(battles(tmp_path / "b.parquet", votes=60))
    for args in (["--bootstrap", "0"], ["--ci", "jackknife"], ["--seed", "-1"]):
        with pytest.raises(SystemExit) as exc:
            main(["rank", path, *args])
        assert exc.value.code == 2


# --- --style-control -----------------------------------------------------------------------------
def styled_battles(path: Path, missing_every: int = 25) -> StyleArena:
    """A simulated arena where strong models answer tersely and voters prefer longer answers
    (the plain ranking is biased, the style-controlled one is not), written as the CLI reads it;
    every ``missing_every``-th battle lacks an answer (its 8 style counts are null)."""
    arena = style_arena(
        8, 60_000, seed=11, length_effect=1.5, markdown_effect=0.0, verbosity_by_strength=-0.6
    )
    votes = arena.votes
    names = np.array(votes.models)
    missing = np.arange(votes.n_votes) % missing_every == 0
    columns: dict[str, object] = {
        "model_a": names[votes.model_a],
        "model_b": names[votes.model_b],
        "outcome": OUTCOMES[votes.outcome],
    }
    for j, column in enumerate(STYLE_COLUMNS):
        side = arena.features.a if column.startswith("model1_") else arena.features.b
        columns[column] = pa.array(side[:, j % 4], pa.int32(), mask=missing)
    pq.write_table(pa.table(columns), path)
    return arena


def test_style_control_recovers_the_truth_the_plain_ranking_misses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "styled.parquet"
    arena = styled_battles(path)
    args = ["rank", str(path), "--style-control", "--bootstrap", "100", "--format", "json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    truth = dict(zip(arena.votes.models, 1000.0 + arena.elo, strict=True))
    missing = (arena.votes.n_votes + 24) // 25
    assert out["votes_without_style"] == missing
    styled = out["style_control"]
    assert styled["votes_used"] == arena.votes.n_votes - missing
    assert styled["votes_left_out"] == 0
    plain = {e["model"]: e for e in out["plain"]}
    controlled = {e["model"]: e for e in styled["entries"]}
    assert set(plain) == set(controlled) == set(truth)
    missed_by_plain = 0
    for name, true_elo in truth.items():
        p, s = plain[name], controlled[name]
        # 10 Elo of slack: eight 95% intervals checked at once (as in the engine's tests).
        assert s["bootstrap_q025"] - 10 < true_elo < s["bootstrap_q975"] + 10, name
        missed_by_plain += not p["bootstrap_q025"] - 10 < true_elo < p["bootstrap_q975"] + 10
    assert missed_by_plain >= 3
    length = next(c for c in styled["style"] if c["feature"] == "length")
    # The true effect in Elo per SD: per unit of normalized difference, times its SD.
    true_elo_per_sd = arena.effect[0] * length["sd"] * 400 / np.log(10)
    half = (length["elo_q975"] - length["elo_q025"]) / 2
    assert length["elo_q025"] - half < true_elo_per_sd < length["elo_q975"] + half
    assert length["elo"] == pytest.approx(length["estimate"] * 400 / np.log(10), abs=1e-3)
    for shift in out["shifts"]:
        name = shift["model"]
        assert (shift["plain_rank"], shift["style_rank"]) == (
            plain[name]["rank"],
            controlled[name]["rank"],
        )
        assert shift["shift"] == plain[name]["rank"] - controlled[name]["rank"]
    assert any(shift["shift"] != 0 for shift in out["shifts"])


def test_style_control_table_shows_both_ranks_the_shift_and_the_coefficients(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "styled.parquet"
    styled_battles(path)
    common = ["rank", str(path), "--style-control", "--bootstrap", "20"]
    assert main([*common, "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    ranks = {e["model"]: e["rank"] for e in records["plain"]}
    style_ranks = {e["model"]: e["rank"] for e in records["style_control"]["entries"]}
    assert main(common) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["plain", "style", "shift", "model"]
    rows = lines[1 : 1 + len(ranks)]
    assert [int(row.split()[1]) for row in rows] == list(range(1, len(ranks) + 1))
    for row in rows:
        plain_rank, style_rank, shift, model = row.split()[:4]
        assert (int(plain_rank), int(style_rank)) == (ranks[model], style_ranks[model])
        moved = ranks[model] - style_ranks[model]
        assert shift == ("=" if moved == 0 else f"↑{moved}" if moved > 0 else f"↓{-moved}")
    names = ("length", "headers", "lists", "bold")
    features = [line.split()[0] for line in lines if line.split()[:1] and line.split()[0] in names]
    assert features == list(names)
    assert "style feature    log-odds/SD" in "\n".join(lines)
    assert lines[-1].startswith("57600 votes in the style-controlled fit, 2400 left out (2400")


def test_style_control_without_style_columns_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = battles(tmp_path / "b.parquet")
    assert main(["rank", str(path), "--style-control"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert captured.err.startswith(f"leaderboard: error: {path}: no style columns (model1_tokens")
    with_some = (
        pq.ParquetFile(path).read().append_column("model1_tokens", pa.array([1] * 600, pa.int32()))
    )
    pq.write_table(with_some, path)
    assert main(["rank", str(path), "--style-control"]) == 2
    assert "missing column(s) model1_headers" in capsys.readouterr().err
