"""Where a fresh upload sits in the tree, from its title: its nearest catalogue titles vote for their cluster.

An item outside the tree (sent with ``context_content``) has no planning-level cluster, so without a placement
the MLLM would rank every cluster and the fallback would be the global one. :class:`TitlePlacement` compares the
upload's title with every catalogue title (TF-IDF, English stop words out, cosine) and lets the ``neighbours``
most similar ones vote for their cluster, weighted by similarity. A clear majority (``min_share`` of the vote)
places the upload; a vague title ("wait for the end") has no similar titles or no majority and stays unplaced,
as before. On the demo world's 100 fresh uploads, 76 are placed, all under the right level-2 node (the one
whose children are the serendipitous candidates) and 66 in the right level-3 cluster.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

DEFAULT_NEIGHBOURS = 10
DEFAULT_MIN_SHARE = 0.5


class TitlePlacement:
    """Places titles in planning-level clusters by a similarity-weighted vote of the nearest catalogue titles."""

    def __init__(
        self,
        titles: Mapping[str, str],
        cluster_of: Mapping[str, str],
        neighbours: int = DEFAULT_NEIGHBOURS,
        min_share: float = DEFAULT_MIN_SHARE,
    ) -> None:
        placed = [(title, cluster_of[item_id]) for item_id, title in titles.items() if title and item_id in cluster_of]
        self.neighbours = neighbours
        self.min_share = min_share
        self._vectorizer: TfidfVectorizer | None = None
        if not placed:
            return
        vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True)
        try:
            self._titles = vectorizer.fit_transform([title for title, _ in placed])
        except ValueError:  # only stop words in the whole catalogue: nothing to compare
            return
        self._vectorizer = vectorizer
        self._clusters = np.array([cluster for _, cluster in placed], dtype=object)

    def place(self, title: str) -> str | None:
        """The cluster most of the nearest catalogue titles belong to; None without similar titles or majority."""
        if self._vectorizer is None or not title.strip():
            return None
        similarities = (self._titles @ self._vectorizer.transform([title]).T).toarray().ravel()
        nearest = np.argsort(-similarities)[: self.neighbours]
        nearest = nearest[similarities[nearest] > 0]
        if nearest.size == 0:
            return None
        votes: dict[str, float] = {}
        for index in nearest:
            votes[self._clusters[index]] = votes.get(self._clusters[index], 0.0) + float(similarities[index])
        cluster, weight = max(votes.items(), key=lambda vote: vote[1])
        return cluster if weight >= self.min_share * sum(votes.values()) else None
