"""Plain and style-controlled rankings side by side: shifts worked out by hand."""

from __future__ import annotations

from common.ranking import ModelRanking, Ranking
from common.ranking.shifts import biggest_shifts, rank_shifts, shift_text, side_by_side


def ranking(*entries: tuple[str, int | None]) -> Ranking:
    lines = tuple(
        ModelRanking(
            model=name,
            bt_score=None if rank is None else 1100.0 - 10 * rank,
            bootstrap_q025=None if rank is None else 1095.0 - 10 * rank,
            bootstrap_q975=None if rank is None else 1105.0 - 10 * rank,
            rank=rank,
            vote_count=100,
            reason=None if rank is not None else "fewer than 10 evaluations",
        )
        for name, rank in entries
    )
    return Ranking(lines, n_votes=500, ci_method="bootstrap", bootstrap=10, seed=0,
                   separable_replicates=0)  # fmt: skip


PLAIN = ranking(("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5), ("f", None))
STYLE = ranking(("c", 1), ("a", 2), ("e", 3), ("b", 4), ("d", 5), ("f", None))
# By hand (plain rank - style rank): c 3 -> 1 is +2, e 5 -> 3 is +2, a 1 -> 2 is -1,
# b 2 -> 4 is -2, d 4 -> 5 is -1; f is ranked in neither.


def test_every_model_with_both_ranks_and_the_shift() -> None:
    rows = rank_shifts(PLAIN, STYLE)
    assert [(r.model, r.plain_rank, r.style_rank, r.shift) for r in rows] == [
        ("c", 3, 1, 2),
        ("a", 1, 2, -1),
        ("e", 5, 3, 2),
        ("b", 2, 4, -2),
        ("d", 4, 5, -1),
        ("f", None, None, None),
    ]


def test_biggest_shifts_either_way_ties_by_style_rank() -> None:
    moved = biggest_shifts(rank_shifts(PLAIN, STYLE), 3)
    assert [(s.model, s.shift) for s in moved] == [("c", 2), ("e", 2), ("b", -2)]
    assert biggest_shifts(rank_shifts(PLAIN, PLAIN), 3) == []


def test_a_model_in_one_ranking_only_has_no_shift() -> None:
    style = ranking(("a", 1), ("b", 2))
    plain = ranking(("a", 2), ("b", 1), ("z", 3))
    rows = {r.model: r for r in rank_shifts(plain, style)}
    assert rows["z"].style is None and rows["z"].shift is None
    assert [r.model for r in rank_shifts(plain, style)] == ["a", "b", "z"]


def test_shift_text_and_the_table() -> None:
    assert [shift_text(x) for x in (2, -5, 0, None)] == ["↑2", "↓5", "=", "-"]
    lines = side_by_side(rank_shifts(PLAIN, STYLE)).splitlines()
    assert lines[0].split()[:4] == ["plain", "style", "shift", "model"]
    assert lines[1].split() == [
        "3", "1", "↑2", "c", "1070.00", "[1065.00,", "1075.00]", "1090.00", "[1085.00,",
        "1095.00]", "100", "100",
    ]  # fmt: skip
    assert lines[-1].split()[:4] == ["-", "-", "-", "f"]


def test_a_model_the_style_fit_leaves_out_moves_nobody() -> None:
    """The plain leader's votes have no style counts, so the style-controlled fit ranks the
    others only, in the same order: ranks 2, 3, 4 become 1, 2, 3 without any model passing
    another. That is no shift."""
    plain = ranking(("top", 1), ("m1", 2), ("m2", 3), ("m3", 4))
    style = ranking(("m1", 1), ("m2", 2), ("m3", 3))
    rows = {r.model: r for r in rank_shifts(plain, style)}
    assert [rows[m].shift for m in ("m1", "m2", "m3")] == [0, 0, 0]
    assert (rows["m1"].plain_rank, rows["m1"].style_rank) == (2, 1)
    assert rows["top"].shift is None
    assert biggest_shifts(rank_shifts(plain, style), 3) == []
    # A real pass among the models in both is still one.
    passed = ranking(("m2", 1), ("m1", 2), ("m3", 3))
    moved = biggest_shifts(rank_shifts(plain, passed), 3)
    assert [(s.model, s.shift) for s in moved] == [("m2", 1), ("m1", -1)]
