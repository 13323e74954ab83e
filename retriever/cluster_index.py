"""Per-cluster item index: the items of each planning-level cluster hold contiguous embedding rows, so a
request scores only the items of the requested clusters instead of the whole corpus followed by a filter."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from serendip.artifacts.sasrec import SASRecArtifact
from serendip.core.cluster_tree import ClusterTree


@dataclass(frozen=True)
class ClusterInfo:
    """A planning-level cluster as the API reports it."""

    cluster_id: str
    level: int
    description: str


@dataclass(frozen=True)
class ScoredItem:
    """One retrieved item."""

    item_id: str
    score: float
    cluster_id: str


class ClusterIndex:
    """Rows sorted by cluster: ``embeddings[start:end]`` are the items of one cluster."""

    def __init__(
        self,
        clusters: Sequence[ClusterInfo],
        spans: Sequence[tuple[int, int]],
        item_ids: Sequence[str],
        embeddings: np.ndarray,
        popularity: np.ndarray,
    ) -> None:
        self.clusters = {cluster.cluster_id: cluster for cluster in clusters}
        self.spans = {cluster.cluster_id: span for cluster, span in zip(clusters, spans, strict=True)}
        self.item_ids = list(item_ids)
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        self.popularity = np.asarray(popularity, dtype=np.float32)
        self.row_of = {item_id: row for row, item_id in enumerate(self.item_ids)}
        self.row_cluster = np.empty(len(self.item_ids), dtype=object)
        for cluster_id, (start, end) in self.spans.items():
            self.row_cluster[start:end] = cluster_id

    @classmethod
    def build(cls, artifact: SASRecArtifact, tree: ClusterTree, level: int) -> ClusterIndex:
        """Group the model's items by their level-``level`` node of ``tree``."""
        clusters, spans, rows = [], [], []
        for cluster_id in tree.nodes_at(level):
            indices = [artifact.vocabulary.index(item_id) for item_id in tree.items_in(cluster_id)]
            indices = [index for index in indices if index is not None]
            clusters.append(ClusterInfo(cluster_id, level, tree.description(cluster_id)))
            spans.append((len(rows), len(rows) + len(indices)))
            rows.extend(indices)
        return cls(
            clusters,
            spans,
            [artifact.vocabulary.item_id(index) for index in rows],
            artifact.item_embeddings[rows],
            artifact.popularity[rows],
        )

    def __len__(self) -> int:
        return len(self.item_ids)

    def top_k(
        self,
        user: np.ndarray | None,
        cluster_ids: Sequence[str] | None,
        k: int,
        exclude_item_ids: Iterable[str] = (),
        per_cluster_quota: int = 0,
    ) -> list[ScoredItem]:
        """The ``k`` best items of ``cluster_ids`` (all clusters when None) by ``embedding · user``.

        ``user=None`` ranks by popularity (cold start). Excluded items never appear; with
        ``per_cluster_quota > 0`` no cluster contributes more than that many items. Fewer than ``k``
        items are returned when the clusters hold fewer eligible ones.
        """
        excluded_rows = {self.row_of[i] for i in exclude_item_ids if i in self.row_of}
        if cluster_ids is None and per_cluster_quota == 0:
            segments = [(0, len(self.item_ids))]
        else:
            segments = [self.spans[c] for c in (cluster_ids if cluster_ids is not None else self.spans)]
        per_segment = min(per_cluster_quota, k) if per_cluster_quota > 0 else k
        candidate_rows, candidate_scores = [], []
        for start, end in segments:
            scores = self._scores(user, start, end)
            rows = np.arange(start, end)
            excluded_here = [row - start for row in excluded_rows if start <= row < end]
            if excluded_here:
                keep = np.ones(end - start, dtype=bool)
                keep[excluded_here] = False
                rows, scores = rows[keep], scores[keep]
            if len(rows) > per_segment:
                best = np.argpartition(-scores, per_segment - 1)[:per_segment]
                rows, scores = rows[best], scores[best]
            candidate_rows.append(rows)
            candidate_scores.append(scores)
        rows = np.concatenate(candidate_rows) if candidate_rows else np.empty(0, dtype=np.int64)
        scores = np.concatenate(candidate_scores) if candidate_scores else np.empty(0, dtype=np.float32)
        order = np.lexsort((rows, -scores))[:k]
        item_ids, clusters = self.item_ids, self.row_cluster
        return [
            ScoredItem(item_ids[row], score, clusters[row])
            for row, score in zip(rows[order].tolist(), scores[order].tolist(), strict=True)
        ]

    def _scores(self, user: np.ndarray | None, start: int, end: int) -> np.ndarray:
        if user is None:
            return self.popularity[start:end].copy()
        return self.embeddings[start:end] @ user.astype(np.float32)
