"""Item keyword summaries (MMSRARec-style): an item's words from the MLLM's chain of thought, and its neighbours'.

* an item's *keywords* are the content words of what the chain-of-thought planner says its video shows, in order
  of first appearance (the word rules of :func:`serendip.core.prompts.thought_words`);
* an item's *related keywords* are the keywords of the items most co-engaged with it in the logs (positive pairs
  of :func:`serendip.offline.coengagement.positive_pairs`, counted in both directions), minus its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import groupby

import pandas as pd

from serendip.artifacts.keywords import RELATED_COLUMNS
from serendip.core.prompts import thought_words
from serendip.offline.coengagement import positive_pairs


def summary_keywords(reasoning: str, limit: int = 10) -> list[str]:
    """The first ``limit`` distinct content words of a chain-of-thought text, in order of first appearance."""
    content = thought_words(reasoning)
    words = "".join(c if c.isalpha() else " " for c in reasoning.lower()).split()
    return [word for word in dict.fromkeys(words) if word in content][:limit]


def related_keywords(
    interactions: pd.DataFrame, keywords: Mapping[str, Sequence[str]], top_items: int = 3, max_words: int = 12
) -> pd.DataFrame:
    """item_id, related_keywords (space-joined), neighbours (how many items they came from), sorted by item id.

    An item's neighbours are its co-engaged items that have keywords, by pair count (both directions) descending,
    then item id; the first ``top_items`` contribute their keywords in that order, each word once, the item's own
    keywords left out, at most ``max_words``. Items with no such neighbour, or whose neighbours add no word of
    their own, get no row.
    """
    pairs = positive_pairs(interactions)
    ends = [pairs["context_item_id"].astype(str), pairs["next_item_id"].astype(str)]
    both = pd.DataFrame({"item_id": pd.concat(ends), "neighbour": pd.concat(ends[::-1])})
    described = {item_id for item_id, words in keywords.items() if len(words)}
    both = both[both["neighbour"].isin(described)]
    counts = both.groupby(["item_id", "neighbour"]).size().rename("count").reset_index()
    counts = counts.sort_values(["item_id", "count", "neighbour"], ascending=[True, False, True])
    top = counts.groupby("item_id", sort=False).head(top_items)
    rows = []
    for item_id, group in groupby(zip(top["item_id"], top["neighbour"], strict=True), key=lambda pair: pair[0]):
        neighbours = [neighbour for _, neighbour in group]
        own = set(keywords.get(item_id, ()))
        words = dict.fromkeys(word for neighbour in neighbours for word in keywords[neighbour] if word not in own)
        if words:
            rows.append((item_id, " ".join(list(words)[:max_words]), len(neighbours)))
    return pd.DataFrame(rows, columns=RELATED_COLUMNS).astype({"neighbours": "int64"})
