"""Per-cluster item index: the items of each planning-level cluster hold contiguous embedding rows, so a
request scores only the items of the requested clusters instead of the whole corpus followed by a filter.

A cluster with an ANN index (``sasrec_ann`` artifact) takes its candidates from it: ``k`` plus the cluster's
excluded items are fetched, the excluded dropped, the rest rescored exactly; when fewer than the cluster can
supply remain, that cluster is ranked exactly. Clusters without one, cold start and UNRESTRICTED stay exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from serendip.artifacts.sasrec import SASRecAnnIndexes, SASRecArtifact, cluster_members
from serendip.core.cluster_tree import ClusterTree
from serendip.core.errors import ArtifactError

if TYPE_CHECKING:
    import faiss

PREFILTER_SLACK = 256
"""A cluster with more than this many rows beyond those it may contribute is cut to its best before the sort."""


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
        ann: Mapping[str, faiss.Index] | None = None,
    ) -> None:
        self.clusters = {cluster.cluster_id: cluster for cluster in clusters}
        self.spans = {cluster.cluster_id: span for cluster, span in zip(clusters, spans, strict=True)}
        self.ann = dict(ann or {})
        for cluster_id, index in self.ann.items():
            start, end = self.spans.get(cluster_id, (0, 0))
            if index.ntotal != end - start:
                raise ArtifactError(
                    f"ANN index of cluster {cluster_id!r} holds {index.ntotal} items, not {end - start}"
                )
        self.item_ids = list(item_ids)
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        self.popularity = np.asarray(popularity, dtype=np.float32)
        self.row_of = {item_id: row for row, item_id in enumerate(self.item_ids)}
        self.row_cluster = np.empty(len(self.item_ids), dtype=object)
        for cluster_id, (start, end) in self.spans.items():
            self.row_cluster[start:end] = cluster_id

    @classmethod
    def build(
        cls, artifact: SASRecArtifact, tree: ClusterTree, level: int, ann: SASRecAnnIndexes | None = None
    ) -> ClusterIndex:
        """Group the model's items by their level-``level`` node of ``tree``; ``ann`` indexes some of the nodes."""
        clusters, spans, rows = [], [], []
        for cluster_id, indices in cluster_members(artifact.vocabulary, tree, level):
            clusters.append(ClusterInfo(cluster_id, level, tree.description(cluster_id)))
            spans.append((len(rows), len(rows) + len(indices)))
            rows.extend(indices)
        return cls(
            clusters,
            spans,
            [artifact.vocabulary.item_id(index) for index in rows],
            artifact.item_embeddings[rows],
            artifact.popularity[rows],
            ann.indexes if ann is not None else None,
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
        items are returned when the clusters hold fewer eligible ones. Equal scores rank by row.
        """
        if cluster_ids is None and per_cluster_quota == 0:
            segments = [(None, 0, len(self.item_ids))]
        else:
            segments = [(c, *self.spans[c]) for c in (cluster_ids if cluster_ids is not None else self.spans)]
        per_segment = min(per_cluster_quota, k) if per_cluster_quota > 0 else k
        query = None if user is None else np.ascontiguousarray(user, dtype=np.float32)
        row_of = self.row_of
        excluded = {row_of[i] for i in exclude_item_ids if i in row_of}
        candidate_rows, candidate_scores = [], []
        for cluster_id, start, end in segments:
            excluded_here = np.fromiter((row for row in excluded if start <= row < end), dtype=np.int64)
            index = self.ann.get(cluster_id) if query is not None and cluster_id is not None else None
            found = None
            if index is not None:
                found = self._ann_candidates(index, query, start, end, excluded_here, per_segment)
            if found is None:
                found = self._exact_candidates(query, start, end, per_segment + len(excluded_here))
            candidate_rows.append(found[0])
            candidate_scores.append(found[1])
        if not candidate_rows:
            return []
        rows, scores = np.concatenate(candidate_rows), np.concatenate(candidate_scores)
        order = np.lexsort((rows, -scores))
        return self._take(rows[order].tolist(), scores[order].tolist(), k, per_segment, excluded)

    def _exact_candidates(
        self, query: np.ndarray | None, start: int, end: int, limit: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows of ``[start, end)`` with their scores; a cluster far larger than ``limit`` keeps its ``limit`` best."""
        scores = self.popularity[start:end] if query is None else self.embeddings[start:end] @ query
        best = _best(scores, limit)
        return (np.arange(start, end), scores) if best is None else (start + best, scores[best])

    def _take(
        self, rows: list[int], scores: list[float], k: int, per_cluster: int, excluded: set[int]
    ) -> list[ScoredItem]:
        """The first ``k`` of the ranked ``rows`` that are not ``excluded``, at most ``per_cluster`` per cluster."""
        item_ids, clusters = self.item_ids, self.row_cluster
        taken: list[ScoredItem] = []
        per_cluster_taken: dict[str, int] = {}
        for row, score in zip(rows, scores, strict=True):
            if row in excluded:
                continue
            cluster_id = clusters[row]
            if per_cluster < k:
                count = per_cluster_taken.get(cluster_id, 0)
                if count == per_cluster:
                    continue
                per_cluster_taken[cluster_id] = count + 1
            taken.append(ScoredItem(item_ids[row], score, cluster_id))
            if len(taken) == k:
                break
        return taken

    def _ann_candidates(
        self, index: faiss.Index, user: np.ndarray, start: int, end: int, excluded: np.ndarray, limit: int
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Up to ``limit`` rows of ``[start, end)`` but ``excluded`` from the ANN index, scored exactly; None when
        it returns fewer than ``min(limit, eligible rows)``."""
        wanted = min(limit, end - start - len(excluded))
        if wanted <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        query = np.ascontiguousarray(user, dtype=np.float32).reshape(1, -1)
        _, labels = index.search(query, min(limit + len(excluded), end - start))
        rows = labels[0][labels[0] >= 0] + start
        rows = rows[~np.isin(rows, excluded)]
        if len(rows) < wanted:
            return None
        return rows, self.embeddings[rows] @ query[0]


def _best(scores: np.ndarray, limit: int) -> np.ndarray | None:
    """Positions of the ``limit`` highest ``scores`` (every tie at the cut kept, in no particular order); None
    when there are no more than ``limit`` + ``PREFILTER_SLACK`` scores (keep them all)."""
    if len(scores) <= limit + PREFILTER_SLACK:
        return None
    threshold = np.partition(scores, len(scores) - limit)[len(scores) - limit]
    return np.flatnonzero(scores >= threshold)
