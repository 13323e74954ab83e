"""Per-cluster ANN indexes: built offline into a sasrec_ann artifact, they give the exact top-k on easy data and keep
exclusions and quotas exact; small clusters, cold start and UNRESTRICTED stay exact."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from retriever.cluster_index import ClusterIndex, ClusterInfo
from retriever.loading import load_retrieval_model
from serendip.artifacts.sasrec import (
    ANN_CLUSTERS,
    SASREC_KIND,
    ItemVocabulary,
    SASRecAnnIndexes,
    SASRecConfig,
    searched_index_name,
    write_ann_indexes,
    write_sasrec_tables,
)
from serendip.artifacts.store import ArtifactWriter
from serendip.artifacts.tree import TREE_KIND
from serendip.core.cluster_tree import ClusterNode, ClusterTree
from serendip.core.errors import ArtifactError
from serendip.models.sasrec.ann import AnnOptions, BuildAnnJob, build_index, run

SIZES = {"c3-big": 1500, "c3-mid": 900, "c3-small": 40}
DIMENSION = 16
OPTIONS = {"exact_below": 500, "ivf_from": 1000}


def _tree() -> ClusterTree:
    nodes = [ClusterNode("c1", 1, None, "all"), ClusterNode("c2", 2, "c1", "one area")]
    leaves = {}
    for cluster_id, size in SIZES.items():
        nodes.append(ClusterNode(cluster_id, 3, "c2", f"{cluster_id} niche"))
        nodes.append(ClusterNode(f"c4{cluster_id[2:]}", 4, cluster_id, f"{cluster_id} leaf"))
        leaves.update({f"{cluster_id}-{i:04d}": f"c4{cluster_id[2:]}" for i in range(size)})
    return ClusterTree(nodes, leaves)


def _publish_sasrec(root: Path, tree: ClusterTree, seed: int) -> Path:
    """A sasrec version without the user encoder files: clustered item embeddings, one centre per cluster."""
    rng = np.random.default_rng(seed)
    vocabulary = ItemVocabulary(tree.item_ids)
    centres = {cluster_id: rng.standard_normal(DIMENSION) for cluster_id in SIZES}
    rows = [centres[item_id.rsplit("-", 1)[0]] + 0.7 * rng.standard_normal(DIMENSION) for item_id in tree.item_ids]
    embeddings = np.vstack([np.zeros(DIMENSION), *rows]).astype(np.float32)
    popularity = rng.integers(0, 100, len(vocabulary) + 1).astype(np.float64)
    with ArtifactWriter(root, SASREC_KIND, {"seed": seed}) as writer:
        write_sasrec_tables(
            writer.dir, SASRecConfig(num_items=len(vocabulary), hidden=DIMENSION), vocabulary, embeddings, popularity
        )
    return writer.final_dir


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ann-artifacts")
    tree = _tree()
    with ArtifactWriter(root, TREE_KIND, {}) as writer:
        tree.save(writer.dir)
    _publish_sasrec(root, tree, seed=0)
    run(BuildAnnJob(**OPTIONS, planning_level=3, artifacts=root))
    return root


@pytest.fixture(scope="module")
def indexes(root: Path) -> tuple[ClusterIndex, ClusterIndex]:
    """The same items with the ANN indexes and without them."""
    approximate = load_retrieval_model(root, root, "127.0.0.1:1", planning_level=3, ann_path=root).index
    exact = load_retrieval_model(root, root, "127.0.0.1:1", planning_level=3).index
    return approximate, exact


def _users(count: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, DIMENSION)).astype(np.float32)


def _recall(found: list, expected: list) -> float:
    return len({item.item_id for item in found} & {item.item_id for item in expected}) / max(len(expected), 1)


def test_index_type_follows_cluster_size(root: Path, indexes: tuple[ClusterIndex, ClusterIndex]) -> None:
    listing = json.loads(
        (root / "sasrec_ann" / (root / "sasrec_ann" / "LATEST").read_text().strip() / ANN_CLUSTERS).read_text()
    )
    assert {entry["cluster_id"]: entry["index"] for entry in listing["clusters"]} == {
        "c3-big": "IndexIVFFlat",
        "c3-mid": "IndexPQFastScan",
    }
    assert set(indexes[0].ann) == {"c3-big", "c3-mid"}
    assert build_index(np.zeros((499, DIMENSION), dtype=np.float32), AnnOptions(**OPTIONS)) is None
    hnsw = build_index(_users(600), AnnOptions(**OPTIONS, mid_index="hnsw"))
    assert hnsw is not None and searched_index_name(hnsw) == "IndexHNSWFlat"
    assert build_index(_users(15), AnnOptions(exact_below=1)) is None  # too few rows to train 16 centroids


@pytest.mark.parametrize("cluster_id", ["c3-big", "c3-mid"])
def test_ann_top_k_matches_exact(indexes: tuple[ClusterIndex, ClusterIndex], cluster_id: str) -> None:
    approximate, exact = indexes
    recalls = []
    for user in _users(50):
        found, expected = approximate.top_k(user, [cluster_id], k=10), exact.top_k(user, [cluster_id], k=10)
        recalls.append(_recall(found, expected))
        scores = {item.item_id: item.score for item in expected}
        assert all(
            item.score == pytest.approx(scores[item.item_id], rel=1e-5) for item in found if item.item_id in scores
        )
    assert np.mean(recalls) >= 0.98


def test_exclusions_honoured(indexes: tuple[ClusterIndex, ClusterIndex]) -> None:
    approximate, exact = indexes
    for user in _users(20, seed=2):
        excluded = [item.item_id for item in exact.top_k(user, ["c3-mid", "c3-big"], k=40)]
        found = approximate.top_k(user, ["c3-mid", "c3-big"], k=10, exclude_item_ids=excluded)
        assert len(found) == 10 and not {item.item_id for item in found} & set(excluded)
        assert _recall(found, exact.top_k(user, ["c3-mid", "c3-big"], k=10, exclude_item_ids=excluded)) >= 0.9


def test_quota_honoured(indexes: tuple[ClusterIndex, ClusterIndex]) -> None:
    approximate, exact = indexes
    clusters = ["c3-big", "c3-mid", "c3-small"]
    for user in _users(20, seed=3):
        found = approximate.top_k(user, clusters, k=9, per_cluster_quota=3)
        assert [sum(item.cluster_id == c for item in found) for c in clusters] == [3, 3, 3]
        assert _recall(found, exact.top_k(user, clusters, k=9, per_cluster_quota=3)) >= 0.88


def test_cold_start_and_unrestricted_stay_exact(indexes: tuple[ClusterIndex, ClusterIndex]) -> None:
    approximate, exact = indexes
    user = _users(1)[0]
    assert approximate.top_k(None, ["c3-big"], k=10) == exact.top_k(None, ["c3-big"], k=10)
    assert approximate.top_k(user, None, k=10) == exact.top_k(user, None, k=10)


class _EmptyIndex:
    """Stands in for a FAISS index that finds nothing."""

    ntotal = 3

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((1, k), dtype=np.float32), np.full((1, k), -1, dtype=np.int64)


def test_too_few_ann_results_fall_back_to_exact() -> None:
    clusters, spans, item_ids = [ClusterInfo("a", 3, "alpha")], [(0, 3)], ["a1", "a2", "a3"]
    embeddings, popularity = np.array([[5.0], [1.0], [3.0]]), np.zeros(3)
    index = ClusterIndex(clusters, spans, item_ids, embeddings, popularity, ann={"a": _EmptyIndex()})
    assert [item.item_id for item in index.top_k(np.array([1.0]), ["a"], k=2, exclude_item_ids=["a1"])] == ["a3", "a2"]


def test_artifact_round_trip(tmp_path: Path) -> None:
    vectors = np.random.default_rng(4).standard_normal((1600, DIMENSION)).astype(np.float32)
    options = AnnOptions(exact_below=100, ivf_from=1000, refine_factor=7)
    hnsw = build_index(vectors[:400], AnnOptions(exact_below=100, ivf_from=1000, mid_index="hnsw"))
    scan, ivf = build_index(vectors[:400], options), build_index(vectors, options)
    write_ann_indexes(tmp_path, 3, {"x": hnsw, "y": ivf, "z": scan})
    (tmp_path / "manifest.json").write_text("{}")
    loaded = SASRecAnnIndexes.load(tmp_path)
    assert loaded.planning_level == 3
    assert faiss.downcast_index(loaded.indexes["x"].index).hnsw.efSearch == options.ef_search
    assert faiss.downcast_index(loaded.indexes["y"].index).nprobe == faiss.downcast_index(ivf.index).nprobe
    assert loaded.indexes["z"].k_factor == 7
    queries = vectors[:5]
    for name, original in (("x", hnsw), ("y", ivf), ("z", scan)):
        np.testing.assert_array_equal(loaded.indexes[name].search(queries, 10)[1], original.search(queries, 10)[1])


def test_refine_factor_must_be_positive() -> None:
    with pytest.raises(ValueError, match="--refine-factor"):
        AnnOptions(refine_factor=0)


def test_indexes_of_another_sasrec_version_are_refused(root: Path, tmp_path: Path) -> None:
    _publish_sasrec(tmp_path, _tree(), seed=5)
    with pytest.raises(ArtifactError, match="indexes sasrec"):
        load_retrieval_model(tmp_path, root, "127.0.0.1:1", planning_level=3, ann_path=root)
    with pytest.raises(ArtifactError, match="level 3, not 2"):
        load_retrieval_model(root, root, "127.0.0.1:1", planning_level=2, ann_path=root)


def test_default_options_index_no_small_cluster(tmp_path: Path, root: Path) -> None:
    """Clusters of the demo world's size (tens of items) get no index: the Retriever ranks them exactly."""
    built = run(BuildAnnJob(planning_level=3, artifacts=tmp_path, sasrec=root / SASREC_KIND, tree=root / TREE_KIND))
    assert SASRecAnnIndexes.load(built).indexes == {}
