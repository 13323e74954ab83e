"""The per-cluster index scores only requested clusters and honours k, exclusions and quotas."""

from __future__ import annotations

import numpy as np
import pytest

from retriever.cluster_index import ClusterIndex, ClusterInfo


@pytest.fixture()
def index() -> ClusterIndex:
    clusters = [ClusterInfo("a", 3, "alpha"), ClusterInfo("b", 3, "beta"), ClusterInfo("c", 3, "gamma")]
    # 1-d embeddings so that the score of an item equals its embedding when user = [1].
    embeddings = np.array([[5.0], [1.0], [3.0], [4.0], [2.0], [9.0]])
    popularity = np.array([1.0, 7.0, 3.0, 2.0, 8.0, 0.0])
    return ClusterIndex(
        clusters, [(0, 3), (3, 5), (5, 6)], ["a1", "a2", "a3", "b1", "b2", "c1"], embeddings, popularity
    )


def test_only_requested_clusters_in_score_order(index: ClusterIndex) -> None:
    items = index.top_k(np.array([1.0]), ["a", "b"], k=4)
    assert [(i.item_id, i.score, i.cluster_id) for i in items] == [
        ("a1", 5.0, "a"),
        ("b1", 4.0, "b"),
        ("a3", 3.0, "a"),
        ("b2", 2.0, "b"),
    ]


def test_fewer_items_than_k_returns_what_exists(index: ClusterIndex) -> None:
    assert [i.item_id for i in index.top_k(np.array([1.0]), ["c"], k=10)] == ["c1"]


def test_exclusions_never_returned(index: ClusterIndex) -> None:
    items = index.top_k(np.array([1.0]), ["a"], k=3, exclude_item_ids=["a1", "zz"])
    assert [i.item_id for i in items] == ["a3", "a2"]


def test_per_cluster_quota(index: ClusterIndex) -> None:
    items = index.top_k(np.array([1.0]), ["a", "b", "c"], k=6, per_cluster_quota=1)
    assert [i.item_id for i in items] == ["c1", "a1", "b1"]


def test_unrestricted_scores_everything(index: ClusterIndex) -> None:
    assert [i.item_id for i in index.top_k(np.array([1.0]), None, k=2)] == ["c1", "a1"]


def test_cold_start_ranks_by_popularity(index: ClusterIndex) -> None:
    assert [i.item_id for i in index.top_k(None, ["a", "b"], k=3)] == ["b2", "a2", "a3"]
