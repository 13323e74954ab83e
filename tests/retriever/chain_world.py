"""A hand-built world: 8 leaf clusters of 5 items, and users who walk a deterministic item chain."""

from __future__ import annotations

import numpy as np
import pandas as pd

from serendip.core.cluster_tree import ClusterNode, ClusterTree

ITEMS_PER_LEAF = 5


def build_tree() -> ClusterTree:
    """2 level-1 nodes x 2 children x 2 children x 1 leaf each; items ``i00``..``i39``."""
    nodes, leaves = [], {}
    for a in range(2):
        nodes.append(ClusterNode(f"c1-{a}", 1, None, f"topic {a}"))
        for b in range(2):
            nodes.append(ClusterNode(f"c2-{a}{b}", 2, f"c1-{a}", f"topic {a} area {b}"))
            for c in range(2):
                level3 = f"c3-{a}{b}{c}"
                nodes.append(ClusterNode(level3, 3, f"c2-{a}{b}", f"topic {a} area {b} niche {c}"))
                nodes.append(ClusterNode(f"c4-{a}{b}{c}", 4, level3, f"topic {a} area {b} niche {c} leaf"))
                leaf_number = a * 4 + b * 2 + c
                for i in range(ITEMS_PER_LEAF):
                    leaves[f"i{leaf_number * ITEMS_PER_LEAF + i:02d}"] = f"c4-{a}{b}{c}"
    return ClusterTree(nodes, leaves)


def chain_interactions(num_users: int = 400, length: int = 12, seed: int = 0) -> pd.DataFrame:
    """Each user starts anywhere and steps item k -> k + 3 (mod 40): a learnable next-item rule."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(num_users):
        item = int(rng.integers(40))
        for step in range(length):
            rows.append((f"u{user}", f"i{item:02d}", step, 0.9))
            item = (item + 3) % 40
    return pd.DataFrame(rows, columns=["user_id", "item_id", "ts", "satisfaction"])
