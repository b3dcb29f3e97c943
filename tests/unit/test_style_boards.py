"""STYLE_CONTROL_LEADERBOARDS: which row shows which leaderboard's style-controlled ranking."""

from __future__ import annotations

import pytest

from common.errors import ConfigurationError
from common.style_boards import canonical, parse_style_boards


def test_unset_means_nothing_is_mapped() -> None:
    assert parse_style_boards(None) == {}
    assert parse_style_boards("") == {}
    assert parse_style_boards("{}") == {}


def test_a_mapping_from_text_or_an_object() -> None:
    text = '{"overall": "overall-style-control", "genomics": "genomics-sc"}'
    expected = {"overall": "overall-style-control", "genomics": "genomics-sc"}
    assert parse_style_boards(text) == expected
    assert parse_style_boards(expected) == expected
    assert canonical(expected) == '{"genomics":"genomics-sc","overall":"overall-style-control"}'
    assert parse_style_boards(canonical(expected)) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "STYLE_CONTROL_LEADERBOARDS: not valid JSON"),
        ('["overall"]', "expected a JSON object"),
        ('{"Overall": "overall-sc"}', "'Overall' is not a leaderboard slug"),
        ('{"overall": "Overall SC"}', "'Overall SC' is not a style-controlled leaderboard slug"),
        ('{"overall": 3}', "'3' is not a style-controlled leaderboard slug"),
        ('{"overall": "overall"}', "overall maps to itself"),
        ('{"overall": "genomics"}', "overall maps to genomics, a reference leaderboard"),
        ('{"overall": "sc", "genomics": "sc"}', "genomics and overall both map to sc"),
        (
            '{"overall": "overall-sc", "overall-sc": "overall-sc-2"}',
            "overall-sc is a style-controlled leaderboard and is mapped itself",
        ),
    ],
)
def test_a_bad_mapping_is_one_error_naming_the_entry(raw: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        parse_style_boards(raw)
    assert "\n" not in str(caught.value)


def test_the_error_names_the_setting_it_came_from() -> None:
    with pytest.raises(ConfigurationError, match=r"^styleControlLeaderboards: overall maps"):
        parse_style_boards({"overall": "overall"}, "styleControlLeaderboards")
