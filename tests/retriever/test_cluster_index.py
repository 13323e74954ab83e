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


def _reference_top_k(
    scores: np.ndarray, spans: dict[str, tuple[int, int]], clusters: list[str], k: int, excluded: set[int], quota: int
) -> list[int]:
    """Rows by the contract, one row at a time: per cluster its eligible rows by (-score, row), at most
    ``quota`` of them (0: no limit), then all clusters merged by (-score, row), the first ``k``."""
    chosen = []
    for cluster in clusters:
        start, end = spans[cluster]
        ranked = sorted((row for row in range(start, end) if row not in excluded), key=lambda r: (-scores[r], r))
        chosen += ranked[: quota or None]
    return sorted(chosen, key=lambda r: (-scores[r], r))[:k]


@pytest.mark.parametrize("seed", range(6))
def test_matches_the_contract_on_random_requests(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 40, size=12)
    sizes[0] = 5000  # far above the quota: the cluster is cut to its best rows before the final sort
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    names = [f"c{i}" for i in range(len(sizes))]
    spans = {name: (int(bounds[i]), int(bounds[i + 1])) for i, name in enumerate(names)}
    dims = 4
    # Scores rounded to one decimal so that ties are common and must be broken by row.
    embeddings = np.round(rng.normal(size=(bounds[-1], dims)), 1) * np.array([1.0, 0, 0, 0])
    popularity = rng.integers(0, 5, size=bounds[-1]).astype(np.float64)
    item_ids = [f"i{row}" for row in range(bounds[-1])]
    index = ClusterIndex(
        [ClusterInfo(name, 3, name) for name in names], list(spans.values()), item_ids, embeddings, popularity
    )
    for _ in range(40):
        clusters = list(rng.choice(names, size=rng.integers(1, 5), replace=False))
        k, quota = int(rng.integers(1, 30)), int(rng.integers(0, 6))
        excluded = {int(row) for row in rng.choice(bounds[-1], size=rng.integers(0, 60))}
        user = None if rng.random() < 0.3 else np.array([1.0, 0, 0, 0])
        scores = popularity.astype(np.float32) if user is None else (embeddings @ user).astype(np.float32)
        found = index.top_k(user, clusters, k, [item_ids[row] for row in excluded] + ["unknown"], quota)
        expected = _reference_top_k(scores, spans, clusters, k, excluded, quota)
        assert [item.item_id for item in found] == [item_ids[row] for row in expected]
        assert [item.score for item in found] == pytest.approx([float(scores[row]) for row in expected])
