"""A plan table covering the whole catalogue without an MLLM: each item gets the nearest clusters of the planning
level (its siblings under the same parent first, then under the grandparent, ...), ``DEFAULT_TOP_N`` per item."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from bench.scale.context import SizeContext
from bench.scale.isolation import Figures
from serendip.artifacts.curation import CURATION_KIND
from serendip.artifacts.plans import DEFAULT_TOP_N, PLAN_COLUMNS, publish_plan_table
from serendip.artifacts.store import read_manifest, resolve_artifact
from serendip.artifacts.tree import TREE_KIND
from serendip.core.cluster_tree import ClusterTree, level_column

SOURCE = "bench.scale: nearest planning-level clusters of the tree (no MLLM)"


def planning_level(root: Path) -> tuple[int, int]:
    """The curation's planning level and δ (what the Planner serves)."""
    parameters = read_manifest(resolve_artifact(root, CURATION_KIND))["parameters"]
    return int(parameters["level"]), int(parameters["delta"])


def nearest_clusters(tree: ClusterTree, cluster: str, level: int, count: int) -> list[str]:
    """Up to ``count`` other clusters of ``level``: siblings at δ = 1 first, then the wider ones at δ = 2, ..."""
    chosen: list[str] = []
    for delta in range(1, level + 1):
        chosen += [other for other in tree.siblings(cluster, delta) if other not in chosen]
        if len(chosen) >= count:
            break
    return chosen[:count]


def synthetic_plan_table(tree: ClusterTree, level: int) -> pd.DataFrame:
    """Rows of PLAN_COLUMNS for every item of ``tree``: its cluster's nearest clusters, scores 1, 1/2, 1/3, ..."""
    column = level_column(level)
    per_cluster = pd.DataFrame(
        [
            {column: cluster, "rank": rank, "cluster_id": target, "score": 1.0 / (rank + 1), "reasoning": ""}
            for cluster in tree.nodes_at(level)
            for rank, target in enumerate(nearest_clusters(tree, cluster, level, DEFAULT_TOP_N))
        ]
    )
    items = tree.item_nodes_frame()[["item_id", column]]
    return items.merge(per_cluster, on=column)[PLAN_COLUMNS]


def publish(root: Path, table: pd.DataFrame, generation: int) -> Path:
    """Publish ``table`` as a new plans version under ``root`` (``generation`` keeps versions apart)."""
    return publish_plan_table(root, table, {"source": SOURCE, "generation": generation})


def plan_table(context: SizeContext) -> Figures:
    """Build the catalogue's plan table and time its write (``seconds``: ``publish_plan_table``)."""
    started = time.perf_counter()
    tree = ClusterTree.load(resolve_artifact(context.root, TREE_KIND))
    level, _ = planning_level(context.root)
    table = synthetic_plan_table(tree, level)
    built = time.perf_counter()
    publish(context.root, table, generation=1)
    return {"seconds": time.perf_counter() - built, "build_seconds": built - started, "rows": len(table)}
