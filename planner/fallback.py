"""The FALLBACK policy: the most satisfying serendipitous sibling clusters observed in the logs.

Built from the curation artifact's ``candidates`` table (mean satisfaction of serendipitous transitions
per context item and next cluster). Per context cluster c, each sibling s (same parent at level l - δ)
gets a smoothed mean satisfaction ``(Σ satisfaction·pairs + prior·m) / (Σ pairs + m)`` over the contexts
of c, where ``prior`` is the global mean and ``m`` the smoothing weight; siblings never observed get the
prior. Cheap, deterministic, and needs neither Triton nor pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from serendip.core.cluster_tree import ClusterTree, level_column


@dataclass(frozen=True)
class FallbackCluster:
    """A sibling cluster and its smoothed satisfaction."""

    cluster_id: str
    score: float


class FallbackPolicy:
    """context cluster -> its serendipitous siblings, most satisfying first."""

    def __init__(self, ranked: dict[str, list[FallbackCluster]], global_ranking: list[FallbackCluster]) -> None:
        self.ranked = ranked
        self.global_ranking = global_ranking

    def for_cluster(self, cluster_id: str | None) -> list[FallbackCluster]:
        """Siblings of ``cluster_id`` best first; for an unknown cluster, every cluster by overall satisfaction."""
        if cluster_id is None or cluster_id not in self.ranked:
            return list(self.global_ranking)
        return list(self.ranked[cluster_id])

    @classmethod
    def from_candidates(
        cls, candidates: pd.DataFrame, tree: ClusterTree, level: int, delta: int, smoothing: float = 5.0
    ) -> FallbackPolicy:
        """Aggregate ``candidates`` (context_item_id, cluster_id, satisfaction, pairs) per context cluster."""
        nodes = tree.item_nodes_frame().set_index("item_id")[level_column(level)]
        frame = candidates.assign(context_cluster=candidates["context_item_id"].map(nodes)).dropna(
            subset=["context_cluster"]
        )
        frame = frame.assign(weighted=frame["satisfaction"] * frame["pairs"])
        prior = float(frame["weighted"].sum() / frame["pairs"].sum()) if len(frame) else 0.5
        per_pair = frame.groupby(["context_cluster", "cluster_id"])[["weighted", "pairs"]].sum()
        observed = {
            key: (row.weighted + prior * smoothing) / (row.pairs + smoothing) for key, row in per_pair.iterrows()
        }
        ranked = {}
        for cluster_id in tree.nodes_at(level):
            siblings = [
                FallbackCluster(sibling, float(observed.get((cluster_id, sibling), prior)))
                for sibling in tree.siblings(cluster_id, delta)
            ]
            ranked[cluster_id] = sorted(siblings, key=lambda c: (-c.score, c.cluster_id))
        per_target = frame.groupby("cluster_id")[["weighted", "pairs"]].sum()
        overall = {
            cluster: (row.weighted + prior * smoothing) / (row.pairs + smoothing)
            for cluster, row in per_target.iterrows()
        }
        global_ranking = sorted(
            (FallbackCluster(c, float(overall.get(c, prior))) for c in tree.nodes_at(level)),
            key=lambda c: (-c.score, c.cluster_id),
        )
        return cls(ranked, global_ranking)
