"""Session fixtures of the data tests: one 200-item world (real mp4s), its k-means tree, and its curation."""

from __future__ import annotations

from pathlib import Path

import pytest

from serendip.artifacts.curation import Curation
from serendip.artifacts.world import World, load_world
from serendip.core.cluster_tree import ClusterTree
from serendip.offline.curation import CurationConfig, curate
from serendip.offline.tree_builder import TreeBuild, TreeBuildConfig, build_tree, majority_match
from serendip.offline.world import generate_world
from tests.data.worlds import TEST_BRANCHING, TEST_WORLD


@pytest.fixture(scope="session")
def artifacts_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An artifacts root shared by the session's jobs."""
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="session")
def world_dir(artifacts_root: Path) -> Path:
    """The 200-item test world: 2x2x3x2 taxonomy (12 level-3 clusters), 24-frame 64 px mp4s."""
    return generate_world(TEST_WORLD, artifacts_root, progress=False, log=lambda _: None)


@pytest.fixture(scope="session")
def world(world_dir: Path) -> World:
    """The test world, loaded."""
    return load_world(world_dir)


@pytest.fixture(scope="session")
def kmeans_build(world: World) -> TreeBuild:
    """Balanced k-means tree of the test world (no taxonomy in its items)."""
    return build_tree(world.items, TreeBuildConfig(method="kmeans", branching=TEST_BRANCHING))


@pytest.fixture(scope="session")
def kmeans_tree(kmeans_build: TreeBuild) -> ClusterTree:
    """The k-means tree alone."""
    return kmeans_build.tree


@pytest.fixture(scope="session")
def curation_config() -> CurationConfig:
    """Curation with a small top-k so the test world fills it for every cluster."""
    return CurationConfig(top_k=5, heldout_fraction=0.2)


@pytest.fixture(scope="session")
def curation(world: World, kmeans_tree: ClusterTree, curation_config: CurationConfig) -> Curation:
    """Curation of the test world on its k-means tree, with the ground truth for label precision."""
    truth = world.ground_truth
    return curate(
        world.items,
        world.interactions,
        kmeans_tree,
        curation_config,
        captions=world.captions,
        truth_good_clusters=dict(zip(truth["item_id"], truth["good_clusters"].map(list), strict=True)),
        truth_cluster_of=majority_match(kmeans_tree, truth, 3),
    )
