"""The ``tree`` artifact: the 4-level interest-cluster tree (``serendip.jobs.build_tree``).

A version directory holds the tree as :meth:`ClusterTree.save` writes it (``tree.json``,
``item_nodes.parquet``) plus ``report.json``: per level size and traffic balance, text coherence, held-out
co-engagement lift and NMI/purity against the truth where known; the block weights and their validation.
"""

from __future__ import annotations

import os

from serendip.artifacts.store import resolve_artifact
from serendip.core.cluster_tree import ClusterTree

TREE_KIND = "tree"
SCHEMA_VERSION = 1
REPORT_FILE = "report.json"


def load_tree(path: str | os.PathLike[str]) -> ClusterTree:
    """The tree of a version directory, a kind directory (its LATEST) or an artifacts root."""
    return ClusterTree.load(resolve_artifact(path, TREE_KIND))
