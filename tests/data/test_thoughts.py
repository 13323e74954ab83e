"""Chain-of-thought targets a small model can learn: long descriptions become keyword lines, short ones stay."""

from __future__ import annotations

from serendip.core.prompts import THOUGHT_LEAD, thought_words
from serendip.offline.thoughts import KEYWORDS_PER_THOUGHT, MAX_THOUGHT_WORDS, learnable_thoughts

PLOT = (
    "A mentally unstable veteran works as a night-time taxi driver in a decaying city, where the violence and "
    "decadence around him fuel his urge to rescue a young runaway from her pimp, and the taxi rides go on"
)
SPACE = (
    "Luke Skywalker joins forces with a Jedi Knight, a cocky pilot, a Wookiee and two droids to save the galaxy "
    "from the Empire's world-destroying battle station, while also attempting to rescue Princess Leia"
)


def test_short_thoughts_are_kept_as_they_are() -> None:
    caption = "navy top, mint bottom, blue block right, red accent"
    assert learnable_thoughts({"v1": caption}) == {"v1": caption}


def test_long_descriptions_become_their_own_keywords() -> None:
    thoughts = learnable_thoughts({"taxi": PLOT, "space": SPACE, "short": "a red block"})
    assert thoughts["short"] == "a red block"
    for item, text in (("taxi", PLOT), ("space", SPACE)):
        keywords = thoughts[item].split(", ")
        assert len(keywords) == KEYWORDS_PER_THOUGHT and len(thoughts[item].split()) <= MAX_THOUGHT_WORDS
        assert all(keyword in text.lower() for keyword in keywords)
        assert not {"the", "and", "from", "with"} & set(keywords)
    assert "taxi" in thoughts["taxi"] and "taxi" not in thoughts["space"]  # each item's own words, not another's


def test_tags_name_a_long_thought_when_the_item_has_them() -> None:
    thoughts = learnable_thoughts({"space": SPACE, "taxi": PLOT}, tags={"space": ["science fiction", "adventure"]})
    assert thoughts["space"] == "science fiction, adventure"
    assert "taxi" in thoughts["taxi"]


def test_a_long_text_of_stop_words_only_is_cut_not_emptied() -> None:
    filler = " ".join(["and the of it"] * 10)
    assert learnable_thoughts({"x": filler})["x"] == " ".join(filler.split()[:MAX_THOUGHT_WORDS])


def test_thought_words_leave_out_the_lead_and_function_words() -> None:
    assert thought_words(f"{THOUGHT_LEAD}a taxi, the city at night.") == {"taxi", "city", "night"}
    assert thought_words("") == frozenset()
