"""Where a fresh upload sits in the tree: its nearest catalogue items, by pixels or by title, vote for their cluster.

An item outside the tree (sent with ``context_content``) has no planning-level cluster, so without a placement
the MLLM would rank every cluster and the fallback would be the global one. :class:`ContentPlacement` places it
by its pixels when it has some, else (or when the pixels give no majority) by its title:

* :class:`VisualPlacement` -- the colour features of the upload's thumbnail (or frames) against every catalogue
  thumbnail's (``serendip.core.frames.frame_visual_features``); the ``neighbours`` nearest vote, weighted by
  inverse distance. The catalogue's features are computed when the Planner starts (about 0.6 ms a thumbnail).
* :class:`TitlePlacement` -- TF-IDF (English stop words out) cosine against every catalogue title; the
  ``neighbours`` most similar vote, weighted by similarity. A vague title ("wait for the end") has no similar
  titles or no majority.

A clear majority (``min_share`` of the vote) places the upload; otherwise it stays unplaced, as before. On the
demo world's 100 fresh uploads: by pixels 96 placed, all under the right level-2 node (the one whose children
are the serendipitous candidates), 90 in the right level-3 cluster; by title alone 76 placed, all under the right
level-2 node, 66 in the right level-3 cluster.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from planner.content import ContextContent
from serendip.core.errors import VideoDecodeError
from serendip.core.frames import frame_visual_features, load_image

DEFAULT_NEIGHBOURS = 10
DEFAULT_VISUAL_NEIGHBOURS = 5
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
        return _vote(self._clusters[nearest], similarities[nearest], self.min_share)


def _vote(clusters: np.ndarray, weights: np.ndarray, min_share: float) -> str | None:
    """The cluster with most of the weight, when it holds at least ``min_share`` of it."""
    votes: dict[str, float] = {}
    for cluster, weight in zip(clusters, weights, strict=True):
        votes[cluster] = votes.get(cluster, 0.0) + float(weight)
    if not votes:
        return None
    cluster, weight = max(votes.items(), key=lambda vote: vote[1])
    return cluster if weight >= min_share * sum(votes.values()) else None


def pixel_features(pixels: np.ndarray) -> np.ndarray:
    """One vector of an image (H, W, 3) or of frames (N, H, W, 3): colour histogram and 2x2 / 4x4 mean colours."""
    parts = frame_visual_features(pixels[None] if pixels.ndim == 3 else pixels)
    return np.concatenate([parts["histogram"], parts["grid2"], parts["grid4"]])


class VisualPlacement:
    """Places pixels in planning-level clusters by an inverse-distance vote of the nearest catalogue thumbnails."""

    def __init__(
        self,
        features: Mapping[str, np.ndarray],
        cluster_of: Mapping[str, str],
        neighbours: int = DEFAULT_VISUAL_NEIGHBOURS,
        min_share: float = DEFAULT_MIN_SHARE,
    ) -> None:
        placed = [item_id for item_id in features if item_id in cluster_of]
        self.neighbours = neighbours
        self.min_share = min_share
        self._features = np.stack([features[item_id] for item_id in placed]) if placed else np.empty((0, 0))
        self._clusters = np.array([cluster_of[item_id] for item_id in placed], dtype=object)

    @classmethod
    def from_thumbnails(
        cls, thumbnails: Mapping[str, str], cluster_of: Mapping[str, str], **options: object
    ) -> VisualPlacement:
        """Features of every readable catalogue thumbnail (unreadable ones are left out)."""
        features = {}
        for item_id, path in thumbnails.items():
            if item_id in cluster_of:
                try:
                    features[item_id] = pixel_features(load_image(path))
                except VideoDecodeError:
                    continue
        return cls(features, cluster_of, **options)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self._clusters)

    def place(self, pixels: np.ndarray) -> str | None:
        """The cluster most of the nearest catalogue thumbnails belong to; None without a majority."""
        if not len(self):
            return None
        distances = ((self._features - pixel_features(pixels)) ** 2).sum(axis=1)
        nearest = np.argsort(distances)[: self.neighbours]
        return _vote(self._clusters[nearest], 1.0 / (distances[nearest] + 1e-6), self.min_share)


class ContentPlacement:
    """By pixels first (thumbnail, else frames), then by title."""

    def __init__(self, titles: TitlePlacement, visual: VisualPlacement | None = None) -> None:
        self.titles = titles
        self.visual = visual

    def place(self, content: ContextContent) -> str | None:
        """The upload's planning-level cluster, or None when neither its pixels nor its title place it."""
        pixels = content.thumbnail if content.thumbnail is not None else content.frames
        if self.visual is not None and pixels is not None:
            cluster = self.visual.place(pixels)
            if cluster is not None:
                return cluster
        return self.titles.place(content.title)
