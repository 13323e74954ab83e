"""Recommend's cheap retrieval: each planning-level cluster's items by descending catalogue impressions.

Used when the Retriever cannot answer before the caller's deadline (or is unavailable): the planned clusters'
most-watched items, with the request's history and exclusions left out, taken from the clusters in turn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from serendip.core.cluster_tree import ClusterTree


@dataclass(frozen=True)
class PopularItem:
    """An item of a planned cluster and its impressions (the score)."""

    item_id: str
    cluster_id: str
    impressions: float


class PopularInCluster:
    """cluster id -> its items, most impressions first (ties by item id)."""

    def __init__(self, tree: ClusterTree, level: int, impressions: Mapping[str, float]) -> None:
        self._ranked = {
            cluster: [
                PopularItem(item, cluster, float(impressions.get(item, 0.0)))
                for item in sorted(tree.items_in(cluster), key=lambda item: (-impressions.get(item, 0.0), item))
            ]
            for cluster in tree.nodes_at(level)
        }

    def top(self, cluster_ids: Sequence[str], k: int, quota: int, excluded: set[str]) -> list[PopularItem]:
        """Up to ``k`` items, at most ``quota`` per cluster, taken from the clusters in turn (best first)."""
        queues = [[i for i in self._ranked.get(c, []) if i.item_id not in excluded][:quota] for c in cluster_ids]
        chosen: list[PopularItem] = []
        for rank in range(max((len(queue) for queue in queues), default=0)):
            chosen += [queue[rank] for queue in queues if rank < len(queue)]
        return chosen[:k]
