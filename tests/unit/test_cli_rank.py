"""``leaderboard rank``: outputs, options, and one-line errors with exit code 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cli.main import main

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
    base = pq.read_table(battles(tmp_path / "base.parquet")).to_pydict()
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
