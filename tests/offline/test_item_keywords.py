"""Item keyword summaries: the words of a description, and the keywords of an item's co-engaged items."""

from __future__ import annotations

import pandas as pd
import pytest

from serendip.offline.item_keywords import related_keywords, summary_keywords

KEYWORDS = {
    "a": ["red", "car"],
    "b": ["blue", "car"],
    "c": ["green", "tree"],
    "d": ["red", "sky"],
    "e": [],
    "f": ["car", "red"],
    "g": ["lonely"],
}
SESSIONS = [
    ("u1", ["a", "b"]),
    ("u2", ["a", "b"]),
    ("u3", ["c", "a"]),
    ("u4", ["a", "d"]),
    ("u5", ["a", "e"]),
    ("u6", ["x", "c"]),
    ("u7", ["f", "a"]),
]
"""a-b twice; a with c, d, e (no keywords) and f once each; x (no keywords) with c; g in no pair."""


def _interactions(sessions: list[tuple[str, list[str]]], satisfaction: float = 0.9) -> pd.DataFrame:
    """One session per user, a minute between views, every view with ``satisfaction``."""
    rows = [
        {"user_id": user, "item_id": item, "ts": pd.Timestamp("2026-01-01") + pd.Timedelta(minutes=step)}
        for user, items in sessions
        for step, item in enumerate(items)
    ]
    return pd.DataFrame(rows).assign(satisfaction=satisfaction)


def _related(interactions: pd.DataFrame, **limits: int) -> dict[str, tuple[str, int]]:
    frame = related_keywords(interactions, KEYWORDS, **limits)
    assert list(frame.columns) == ["item_id", "related_keywords", "neighbours"]
    assert list(frame["item_id"]) == sorted(frame["item_id"]), "rows sorted by item id"
    return {row.item_id: (row.related_keywords, row.neighbours) for row in frame.itertuples()}


def test_summary_keywords_keep_content_words_in_order_of_first_appearance() -> None:
    assert summary_keywords("navy top, mint bottom, blue block right, red accent.") == [
        *["navy", "top", "mint", "bottom", "blue", "block", "right", "red", "accent"]
    ]


def test_summary_keywords_drop_repeats_stop_words_short_words_and_digits() -> None:
    text = "The video shows a Red car, then the red CAR on 4k tv with an  owl-like bird."
    assert summary_keywords(text) == ["red", "car", "owl", "like", "bird"]
    assert summary_keywords("") == []


def test_summary_keywords_stop_at_the_limit() -> None:
    assert summary_keywords("one two three four five", limit=3) == ["one", "two", "three"]


def test_related_keywords_follow_the_most_co_engaged_neighbours_minus_the_own_words() -> None:
    related = _related(_interactions(SESSIONS))
    # a: b (2 pairs), then c, d, f tied at 1 by item id; e has no keywords; f is fourth
    assert related["a"] == ("blue green tree sky", 3)
    assert related["b"] == ("red", 1)
    assert related["c"] == ("red car", 1)
    assert related["d"] == ("car", 1)
    assert related["e"] == ("red car", 1), "an item without keywords still gets its neighbours'"
    assert related["x"] == ("green tree", 1), "an item outside the keywords too"
    assert "f" not in related, "its only neighbour adds no word of its own"
    assert "g" not in related, "no co-engaged item"


def test_related_keywords_count_both_directions() -> None:
    one_way = [("u1", ["b", "a"]), ("u2", ["b", "a"]), ("u3", ["a", "c"])]
    other_way = [("u1", ["a", "b"]), ("u2", ["b", "a"]), ("u3", ["c", "a"])]
    assert _related(_interactions(one_way)) == _related(_interactions(other_way))
    assert _related(_interactions(one_way), top_items=1)["a"] == ("blue", 1), "b (2 pairs) before c (1)"


@pytest.mark.parametrize(
    ("limits", "expected"), [({"top_items": 1}, ("blue", 1)), ({"max_words": 2}, ("blue green", 3))]
)
def test_related_keywords_limits(limits: dict[str, int], expected: tuple[str, int]) -> None:
    assert _related(_interactions(SESSIONS), **limits)["a"] == expected


def test_unsatisfied_views_and_empty_logs_give_no_related_keywords() -> None:
    assert _related(_interactions(SESSIONS, satisfaction=0.1)) == {}
    assert _related(_interactions([])) == {}


def test_related_keywords_do_not_depend_on_the_row_order() -> None:
    interactions = _interactions(SESSIONS)
    shuffled = interactions.sample(frac=1.0, random_state=4).reset_index(drop=True)
    pd.testing.assert_frame_equal(related_keywords(shuffled, KEYWORDS), related_keywords(interactions, KEYWORDS))
