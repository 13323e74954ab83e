"""Tree building: balanced k-means, the 4-level k-means tree of the test world, taxonomy import."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from serendip.artifacts.world import World
from serendip.core.cluster_tree import ClusterTree, level_column
from serendip.core.errors import TreeError
from serendip.offline.tree_builder import (
    TreeBuild,
    TreeBuildConfig,
    _balanced_assign,
    balanced_kmeans,
    build_tree,
    import_taxonomy,
    rank_terms,
    term_presence,
    tree_report,
)
from tests.data.worlds import TEST_BRANCHING


def _blobs(sizes: list[int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = np.vstack([centre + rng.normal(0, 0.5, (size, 2)) for centre, size in zip(centres, sizes, strict=False)])
    return points, np.repeat(np.arange(len(sizes)), sizes)


def test_balanced_kmeans_equalises_sizes_at_zero_tolerance() -> None:
    points, _ = _blobs([50, 30, 20])
    labels = balanced_kmeans(points, 3, size_tolerance=0.0)
    assert sorted(np.bincount(labels)) == [33, 33, 34]


def test_balanced_kmeans_recovers_unequal_blobs_within_a_loose_tolerance() -> None:
    points, truth = _blobs([50, 30, 20])
    labels = balanced_kmeans(points, 3, size_tolerance=0.6)  # capacity 53.3 >= 50
    assert pd.crosstab(labels, truth).max(axis=1).sum() == 100


def test_balanced_kmeans_by_mass_caps_each_cluster() -> None:
    points, _ = _blobs([60, 40])
    mass = np.where(np.arange(100) < 60, 2.0, 1.0)  # total 160, capacity 80
    labels = balanced_kmeans(points, 2, mass=mass)
    assert [mass[labels == cluster].sum() for cluster in range(2)] == [80.0, 80.0]
    with pytest.raises(TreeError, match="cannot split 2 items into 3 clusters"):
        balanced_kmeans(points[:2], 3)
    heavy = np.r_[100.0, np.ones(99)]  # one item heavier than a cluster's share still leaves room for others
    labels = balanced_kmeans(points, 2, mass=heavy, min_members=10)
    assert min(np.bincount(labels)) >= 10


def _item_by_item_assign(distances: np.ndarray, mass: np.ndarray, capacity: float, min_members: int) -> np.ndarray:
    """The former ``_balanced_assign``, one item at a time: the reference its replacement must reproduce exactly."""
    count, clusters = distances.shape
    preference = np.argsort(distances, axis=1)
    ordered = np.sort(distances, axis=1)
    regret = ordered[:, 1] - ordered[:, 0] if clusters > 1 else np.zeros(count)
    load = np.zeros(clusters)
    labels = np.empty(count, dtype=np.int64)
    for item in np.lexsort((-regret, -mass)):
        for cluster in preference[item]:
            if load[cluster] + mass[item] <= capacity + 1e-9:
                break
        else:
            cluster = int(np.argmin(load))
        labels[item] = cluster
        load[cluster] += mass[item]
    for cluster in range(clusters):
        while (labels == cluster).sum() < min_members:
            donor = np.bincount(labels, minlength=clusters).argmax()
            members = np.flatnonzero(labels == donor)
            labels[members[np.argmin(distances[members, cluster])]] = cluster
    return labels


@pytest.mark.parametrize("unit_mass", [True, False])
def test_balanced_assign_reproduces_the_item_by_item_loop(unit_mass: bool) -> None:
    rng = np.random.default_rng(7)
    for case in range(250):
        count, clusters = int(rng.integers(8, 300)), int(rng.integers(2, 9))
        distances = [
            rng.random((count, clusters)),
            rng.integers(0, 3, (count, clusters)).astype(float),  # many ties, in distance and in regret
            np.round(rng.random((count, clusters)), 1),
        ][case % 3]
        mass = np.ones(count) if unit_mass else rng.integers(1, 20, count).astype(float)
        tolerance = [0.0, 0.0, 0.05, 0.3, 2.0][case % 5]  # tight (sizes floor / ceil of n / k) to loose
        capacity = mass.sum() / clusters * (1 + tolerance)
        min_members = int(rng.integers(0, count // clusters + 1)) if case % 2 else 0
        expected = _item_by_item_assign(distances, mass, capacity, min_members)
        np.testing.assert_array_equal(_balanced_assign(distances, mass, capacity, min_members), expected)
    item_mass = 1.0 if unit_mass else 2.0  # equal masses fill clusters exactly
    for share in (0.0, 0.5, 9.0 - 1e-8, 9.0 - 2e-9, 9.0 - 2.5e-10, 10.0, 10.5, 12.0):  # about the 1e-9 slack; n / k: 10
        distances = rng.integers(0, 2, (40, 4)).astype(float)
        mass, capacity = np.full(40, item_mass), share * item_mass
        expected = _item_by_item_assign(distances, mass, capacity, 2)
        np.testing.assert_array_equal(_balanced_assign(distances, mass, capacity, 2), expected)


def test_kmeans_tree_has_four_balanced_levels(kmeans_build: TreeBuild, world: World) -> None:
    tree = kmeans_build.tree
    assert kmeans_build.method == "kmeans"
    assert tree.num_levels == 4
    assert set(tree.item_ids) == set(world.items["item_id"])
    nodes_per_level = np.cumprod(TEST_BRANCHING)
    report = tree_report(tree, world.items, world.ground_truth)
    for level, expected_nodes in enumerate(nodes_per_level, start=1):
        entry = report["levels"][str(level)]
        assert entry["nodes"] == expected_nodes
        # size tolerance 0: every node holds floor or ceil of n / nodes items
        share = len(world.items) / expected_nodes
        assert math.floor(share) <= entry["items_min"] <= entry["items_max"] <= math.ceil(share)
        assert entry["nmi"] > 0.8
    descriptions = [tree.description(node) for level in range(1, 5) for node in tree.nodes_at(level)]
    assert len(descriptions) == len(set(descriptions))
    assert all(description.strip() for description in descriptions)


def test_kmeans_descriptions_use_distinctive_title_words(kmeans_tree: ClusterTree, world: World) -> None:
    words = set(" ".join(world.items["title"]).split())
    for node in kmeans_tree.nodes_at(3):
        assert set(kmeans_tree.description(node).split()) <= words


def test_taxonomy_import_reproduces_the_true_tree(world: World) -> None:
    labels = world.true_tree.item_nodes_frame().set_index("item_id")
    items = world.items.assign(
        taxonomy=[
            [world.true_tree.description(labels.at[item, level_column(level)]) for level in range(1, 5)]
            for item in world.items["item_id"]
        ]
    )
    build = build_tree(items, TreeBuildConfig())  # method auto -> taxonomy
    assert build.method == "taxonomy"
    report = tree_report(build.tree, items, world.ground_truth)
    assert all(entry["nmi"] == 1.0 and entry["purity"] == 1.0 for entry in report["levels"].values())
    assert sorted(build.tree.descriptions(3)) == sorted(world.true_tree.descriptions(3))


def test_taxonomy_labels_shared_by_several_nodes_are_disambiguated() -> None:
    items = pd.DataFrame(
        {
            "item_id": ["a", "b", "c"],
            "title": ["", "", ""],
            "impressions": [1, 1, 1],
            "taxonomy": [
                ["food", "baking", "other", "x"],
                ["food", "grilling", "other", "y"],
                ["sport", "golf", "putt", "z"],
            ],
        }
    )
    tree = import_taxonomy(items)
    assert sorted(tree.descriptions(3)) == ["other (baking)", "other (grilling)", "putt"]
    assert tree.node_of("a", 3) != tree.node_of("b", 3)
    with pytest.raises(TreeError, match="1 of 3 items have no taxonomy"):
        import_taxonomy(items.assign(taxonomy=[None, *items["taxonomy"][1:]]))


def test_distinctive_words_rank_words_frequent_here_and_rare_elsewhere() -> None:
    texts = ["kayak river tips", "kayak lake", "river kayak", "pizza dough tips", "pizza oven", "dough rising"]
    presence = term_presence(texts, [[] for _ in texts], tag_weight=3.0)
    n1, n2 = rank_terms(presence, [np.arange(3), np.arange(3, 6)])
    assert n1[:2] == ["kayak", "river"]
    assert n2[:2] == ["dough", "pizza"]
