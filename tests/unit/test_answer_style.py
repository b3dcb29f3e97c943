"""The answer style rule on hand-written texts, and its fast form (numpy and RE2 over Arrow) equal
to Python's ``re`` on generated and random texts."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from common.answer_style import AnswerStyle, answer_style, side_style, style_counts
from local import answers as sim_answers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", AnswerStyle(0, 0, 0, 0)),
        # words, digit runs, punctuation runs, each non-ASCII character
        ("Hello, world!", AnswerStyle(4, 0, 0, 0)),
        ("p53 at 20-nt", AnswerStyle(6, 0, 0, 0)),
        ("αβ µg/mL", AnswerStyle(6, 0, 0, 0)),
        ("   \n\t  ", AnswerStyle(0, 0, 0, 0)),
        # headers: 1-6 '#' at the start of a line, then a space or tab
        ("# One\n## Two\n###### Six\n#\tTab", AnswerStyle(8, 4, 0, 0)),
        ("#hashtag\n####### seven\n  # indented\ntext # not", AnswerStyle(9, 0, 0, 0)),
        ("#\nbare", AnswerStyle(2, 0, 0, 0)),
        # lists: -, *, + or N. / N) then a space, after any indentation; nested items count
        ("- a\n  - nested\n    * deeper\n+ plus", AnswerStyle(8, 0, 4, 0)),
        ("1. one\n2) two\n10. ten\n3.no\n-no", AnswerStyle(14, 0, 3, 0)),
        ("---\n***\n- - -", AnswerStyle(5, 0, 1, 0)),
        # bold: **x** and __x__ on one line; ** alone is nothing
        ("**bold** and __also__", AnswerStyle(7, 0, 0, 2)),
        ("a ** b\n**\n****", AnswerStyle(5, 0, 0, 0)),
        ("**two\nlines**", AnswerStyle(4, 0, 0, 0)),
        ("* **Item** in a list", AnswerStyle(7, 0, 1, 1)),
        ("**a** b **c**", AnswerStyle(7, 0, 0, 2)),
        # fenced code: out of the markdown counts, in the length
        ("Intro\n```python\n# comment\n- item\n**x**\n```\n- real", AnswerStyle(13, 0, 1, 0)),
        ("```\n# a\n``` # after\n## h", AnswerStyle(8, 1, 0, 0)),
        ("text\n```\n# never closed\n- still code", AnswerStyle(8, 0, 0, 0)),
        ("```a``` then ```b```\n- x", AnswerStyle(9, 0, 1, 0)),
    ],
)
def test_the_rule_on_hand_written_answers(text: str, expected: AnswerStyle) -> None:
    assert answer_style(text) == expected


def test_a_side_sums_its_rounds_and_a_missing_answer_voids_it() -> None:
    rounds = ["# Plan\n- one", "**Bold** two\n1. x"]
    assert side_style(rounds) == AnswerStyle(tokens=4 + 7, headers=1, list_items=1 + 1, bold=1)
    assert side_style(["- a", None]) is None
    assert side_style([]) is None


_PIECES = [
    "#", "##", "####### ", " ", "  ", "\t", "\n", "\n\n", "**", "__", "*", "_", "```", "`", "-",
    "+", "1.", "12)", "3", "word", "Ab", "é", "日本", "—", ".", ",", "x**y**", "__z__", "\r\n",
]  # fmt: skip


def _random_texts(seed: int, count: int) -> list[str | None]:
    rng = np.random.default_rng(seed)
    texts: list[str | None] = []
    for _ in range(count):
        if rng.random() < 0.05:
            texts.append(None)
            continue
        picks = rng.integers(0, len(_PIECES), size=int(rng.integers(0, 60)))
        texts.append("".join(_PIECES[i] for i in picks))
    return texts


@pytest.mark.parametrize("seed", range(5))
def test_the_fast_counts_equal_the_rule_on_random_texts(seed: int) -> None:
    texts = _random_texts(seed, 2000)
    expected = np.array([answer_style(t) if t is not None else (0, 0, 0, 0) for t in texts])
    assert np.array_equal(style_counts(pa.array(texts, pa.string())), expected)
    # The same with large strings, a sliced array and chunks.
    assert np.array_equal(style_counts(pa.array(texts, pa.large_string())), expected)
    assert np.array_equal(style_counts(pa.array(texts).slice(7, 900)), expected[7:907])
    chunked = pa.chunked_array([pa.array(texts[:1000]), pa.array(texts[1000:])])
    assert np.array_equal(style_counts(chunked), expected)


def test_the_fast_counts_equal_the_rule_on_the_simulators_answers() -> None:
    rng = np.random.default_rng(3)
    verbosity, markdown = sim_answers.model_styles(6, rng, 300.0)
    drawn = sim_answers.draw_answers(
        rng, np.arange(400) % 6, (np.arange(400) + 1) % 6, verbosity, markdown
    )
    texts = drawn.texts(0, drawn.count)
    expected = np.array(
        [answer_style(t) if t is not None else (0, 0, 0, 0) for t in texts.to_pylist()]
    )
    assert np.array_equal(style_counts(texts), expected)
    # The simulator's unit sums are the rule's counts of the joined text.
    assert np.array_equal(drawn.style(), expected)
    assert expected[:, 1:].sum() > 0 and (expected[:, 0] > 100).mean() > 0.5
