"""Fixtures of the harness tests: a tiny hand-made request mix, and the full stack at test size."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.load.mix import HeldOutEvent, RequestMix
from serendip.core.cluster_tree import ClusterNode, ClusterTree


@pytest.fixture
def tiny_mix() -> RequestMix:
    """Three items with impressions 1 : 1 : 98 in a 4-level tree, two held-out sessions."""
    tree = _tiny_tree()
    sessions = [[HeldOutEvent("v0", 1000, 0.5), HeldOutEvent("v1", 2000, 1.0)], [HeldOutEvent("v2", 3000, 0.9)]]
    return RequestMix(["v0", "v1", "v2"], [1, 1, 98], sessions, tree, {"v0": 1, "v1": 2, "v2": 3}, max_len=4, seed=0)


def _tiny_tree() -> ClusterTree:
    """One topic and area, three level-3 niches (serendipitous siblings of each other), an item in each."""
    nodes = [ClusterNode("c1", 1, None, "topic"), ClusterNode("c2", 2, "c1", "topic area")]
    leaves = {}
    for niche in range(3):
        nodes.append(ClusterNode(f"c3-{niche}", 3, "c2", f"niche {niche}"))
        nodes.append(ClusterNode(f"c4-{niche}", 4, f"c3-{niche}", f"niche {niche} leaf"))
        leaves[f"v{niche}"] = f"c4-{niche}"
    return ClusterTree(nodes, leaves)


@pytest.fixture(scope="session")
def small_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole embedded pipeline at test size (200 items), built once per session."""
    from bench.load.pipeline import build_small_artifacts

    return build_small_artifacts(tmp_path_factory.mktemp("bench-artifacts"))


@pytest.fixture(scope="module")
def stack(small_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """Triton + Retriever + Planner processes; the plan table caches every second item."""
    from bench.load.stack import LocalStack, prepare_plan_table

    scratch = tmp_path_factory.mktemp("bench-stack")
    plans_root, cached = prepare_plan_table(small_artifacts, scratch / "plan-root", every=2, use_published=False)
    with LocalStack(small_artifacts, scratch / "logs", plans_root) as running:
        yield running, cached
