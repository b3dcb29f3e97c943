"""The arena simulator: shapes, rates, reproducibility, and both outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyarrow.parquet as pq

from cli.main import main
from local import simulate


def test_arena_is_reproducible_and_realistic() -> None:
    a = simulate.simulate_arena(models=30, battles=20_000, seed=7)
    b = simulate.simulate_arena(models=30, battles=20_000, seed=7)
    assert np.array_equal(a.model1, b.model1) and np.array_equal(a.outcome, b.outcome)
    assert (a.model1 != a.model2).all()
    voted = a.outcome >= 0
    assert 0.07 < (a.outcome[voted] == 2).mean() < 0.13
    assert 0.85 < a.is_biomedical.mean() < 0.95
    counts = np.bincount(np.concatenate([a.model1, a.model2]), minlength=30)
    assert counts.max() > 3 * counts.min()  # popular models meet more often
    assert any(not m.active for m in a.models) and any(m.active for m in a.models)
    assert abs(np.mean([m.true_elo for m in a.models]) - 1000) < 1e-6
    assert 50 < np.std([m.true_elo for m in a.models]) < 150


def test_stronger_models_win_more() -> None:
    arena = simulate.simulate_arena(models=10, battles=50_000, seed=1)
    elo = np.array([m.true_elo for m in arena.models])
    side1, side2, has = arena.style()
    similar_length = has & (np.abs(side1[:, 0] - side2[:, 0]) < 0.1 * (side1[:, 0] + side2[:, 0]))
    decided = (arena.outcome >= 0) & (arena.outcome <= 1) & similar_length
    stronger_first = elo[arena.model1] > elo[arena.model2]
    wins_of_stronger = np.where(stronger_first, arena.outcome == 0, arena.outcome == 1)[decided]
    assert wins_of_stronger.mean() > 0.55


def test_voters_prefer_the_longer_answer_by_the_documented_amount() -> None:
    arena = simulate.simulate_arena(models=20, battles=200_000, seed=2)
    side1, side2, has = arena.style()
    decided = has & (arena.outcome >= 0) & (arena.outcome <= 1)
    elo = np.array([m.true_elo for m in arena.models])
    offset = (np.log(10) * (elo[arena.model1] - elo[arena.model2]) / 400.0)[decided]
    d = ((side1[:, 0] - side2[:, 0]) / (side1[:, 0] + side2[:, 0] + 1.0))[decided]
    won = (arena.outcome[decided] == 0).astype(float)
    beta = 0.0
    for _ in range(20):  # Newton on the one free coefficient of the simulated outcome model
        p = 1.0 / (1.0 + np.exp(-(offset + beta * d)))
        beta += float(np.sum(d * (won - p)) / np.sum(d * d * p * (1 - p)))
    se = float(1.0 / np.sqrt(np.sum(d * d * p * (1 - p))))
    assert abs(beta - simulate.LENGTH_EFFECT) < 3 * se < 0.1
    # Verbose models also use more markdown, and lengths differ between models.
    verbosity = np.array([m.verbosity for m in arena.models])
    markdown = np.array([m.markdown for m in arena.models])
    assert np.corrcoef(verbosity, markdown)[0, 1] > 0.5
    assert verbosity.max() > 3 * verbosity.min()
    # A few battles miss an answer (or have no round): no style, voted on strength alone.
    assert 0.01 < (~has).mean() < 0.04


def test_new_battles_for_the_same_models() -> None:
    day1 = simulate.simulate_arena(models=10, battles=1000, seed=3)
    day2 = simulate.simulate_arena(models=10, battles=1000, seed=3, battle_seed=4)
    assert day1.true_strengths() == day2.true_strengths()
    assert not np.array_equal(day1.model1, day2.model1)


def test_uuids_are_valid_sorted_v4() -> None:
    import uuid

    values = simulate.uuids(np.random.default_rng(0), 1000).to_pylist()
    assert values == sorted(values) and len(set(values)) == 1000
    assert all(uuid.UUID(v).version == 4 for v in values)


def test_parquet_output(tmp_path: Path) -> None:
    out = tmp_path / "battles.parquet"
    assert (
        main(
            ["simulate", "--models", "5", "--battles", "2000", "--seed", "2", "--output", str(out)]
        )
        == 0
    )
    table = pq.ParquetFile(out).read()
    assert table.column_names == ["model_a", "model_b", "outcome", *simulate.STYLE_COLUMNS]
    assert set(table.column("outcome").to_pylist()) == {"model1", "model2", "tie"}
    assert 1800 < table.num_rows <= 2000


def test_database_output_matches_the_arena(database_url: str) -> None:
    arena = simulate.simulate_arena(models=8, battles=3000, seed=5)
    counts = simulate.write_database(arena, database_url)
    assert counts == {"models": 8, "battles": 3000, "evaluations": int((arena.outcome >= 0).sum())}
    with psycopg.connect(database_url) as conn:

        def one(query: str) -> Any:
            row = conn.execute(query).fetchone()
            assert row is not None
            return row[0]

        assert one("SELECT count(*) FROM api.battle") == 3000
        assert one("SELECT count(*) FROM api.battle_round") == arena.answers.count // 2
        assert one(
            "SELECT count(*) FROM api.battle_round WHERE model1_message_id IS NULL"
            " OR model2_message_id IS NULL"
        ) == int(arena.answers.missing.sum())
        assert one("SELECT count(*) FROM api.message WHERE role = 'assistant'") == int(
            (~arena.answers.missing).sum()
        )
        assert one("SELECT count(*) FROM api.battle_evaluation") == counts["evaluations"]
        assert one("SELECT count(*) FROM api.battle WHERE effective_validation_id IS NULL") == int(
            (~arena.validated).sum()
        )
        assert one("SELECT count(*) FROM api.battle WHERE effective_categorization_id IS NULL") == 0
        statuses: dict[str, int] = dict(
            conn.execute(
                "SELECT status, count(*) FROM api.battle_categorization GROUP BY 1"
            ).fetchall()
        )
        assert set(statuses) == {"matched", "abstained", "failed"}
        assert one("SELECT count(DISTINCT category) FROM api.battle_categorization_category") == 20
        # Every category written is a reference leaderboard, untouched by the simulator.
        assert (
            one(
                "SELECT count(*) FROM (SELECT DISTINCT category FROM api.battle_categorization_category"
                " EXCEPT SELECT slug FROM api.leaderboard) unknown"
            )
            == 0
        )
        assert one("SELECT count(*) FROM api.leaderboard") == 21
        assert one("SELECT id::text FROM api.leaderboard WHERE slug = 'genomics'") == (
            "44444444-4444-4444-4444-44444444000a"
        )
        assert one("SELECT count(*) FROM api.model WHERE NOT active") >= 1
        # model1 won as often in the database as in the arena
        assert one("SELECT count(*) FROM api.battle_evaluation WHERE outcome = 'model1'") == int(
            (arena.outcome == 0).sum()
        )
    # Writing a later day's battles reuses the models.
    simulate.write_database(
        simulate.simulate_arena(models=8, battles=100, seed=5, battle_seed=6), database_url
    )
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM api.model").fetchone() == (8,)
