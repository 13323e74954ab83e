"""`ClusterTree`: the 4-level interest-cluster tree every component plans, curates and retrieves with.

Level 1 is the broadest, level ``num_levels`` (4) the finest; level 0 stands for the root (all items).
Each node has a unique natural-language description, so description <-> node id is a bijection (the MLLM
generates a description, the planner maps it back by exact lookup).

Two items a, b are *similar* at level l when they share the level-l node, and *serendipitous* at (l, δ)
when their level-l nodes differ but their level-(l-δ) nodes are the same (paper §2).

Stored as ``tree.json`` (nodes) plus ``item_nodes.parquet`` (item -> node at every level); never pickled.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from serendip.core.errors import TreeError, UnknownItemError

TREE_FORMAT = "serendip.cluster_tree/v1"
TREE_JSON = "tree.json"
ITEM_NODES_PARQUET = "item_nodes.parquet"
DEFAULT_NUM_LEVELS = 4
DEFAULT_PLANNING_LEVEL = 3
DEFAULT_DELTA = 1


@dataclass(frozen=True)
class ClusterNode:
    """One tree node. ``parent_id`` is None for level-1 nodes (their parent is the implicit root)."""

    node_id: str
    level: int
    parent_id: str | None
    description: str


def path_node_id(path: Sequence[int]) -> str:
    """Id of the node reached by child indices ``path`` from the root: (2, 0, 1) -> "c02.00.01"."""
    return "c" + ".".join(f"{index:02d}" for index in path)


def level_column(level: int) -> str:
    """Name of the column holding the level-``level`` node id in item tables (``level_3``)."""
    return f"level_{level}"


class ClusterTree:
    """Immutable cluster tree over a fixed item set; see the module docstring for the semantics."""

    def __init__(
        self,
        nodes: Iterable[ClusterNode],
        item_leaves: Mapping[str, str],
        num_levels: int = DEFAULT_NUM_LEVELS,
    ) -> None:
        self.num_levels = num_levels
        self._nodes: dict[str, ClusterNode] = {}
        for node in nodes:
            if node.node_id in self._nodes:
                raise TreeError(f"duplicate node id {node.node_id!r}")
            self._nodes[node.node_id] = node
        self._by_description: dict[str, str] = {}
        self._children: dict[str | None, list[str]] = {}
        for node in self._nodes.values():
            self._check_node(node)
            self._by_description[node.description] = node.node_id
            self._children.setdefault(node.parent_id, []).append(node.node_id)
        self._levels: dict[int, list[str]] = {level: [] for level in range(1, num_levels + 1)}
        for node_id in sorted(self._nodes):
            self._levels[self._nodes[node_id].level].append(node_id)
        self._paths: dict[str, tuple[str, ...]] = {}
        for node_id, node in self._nodes.items():
            if node.level == num_levels:
                self._paths[node_id] = self._path_to(node_id)
        self._item_leaves: dict[str, str] = {}
        self._items_by_node: dict[str, list[str]] = {node_id: [] for node_id in self._nodes}
        for item_id, leaf_id in item_leaves.items():
            if leaf_id not in self._paths:
                raise TreeError(f"item {item_id!r} is assigned to {leaf_id!r}, which is not a level-{num_levels} node")
            self._item_leaves[str(item_id)] = leaf_id
            for node_id in self._paths[leaf_id]:
                self._items_by_node[node_id].append(str(item_id))

    def _check_node(self, node: ClusterNode) -> None:
        if not 1 <= node.level <= self.num_levels:
            raise TreeError(f"node {node.node_id!r} has level {node.level}, expected 1..{self.num_levels}")
        if not node.description or not node.description.strip():
            raise TreeError(f"node {node.node_id!r} has an empty description")
        if node.description in self._by_description:
            other = self._by_description[node.description]
            raise TreeError(f"description {node.description!r} is used by both {other!r} and {node.node_id!r}")
        if node.level == 1:
            if node.parent_id is not None:
                raise TreeError(f"level-1 node {node.node_id!r} must have no parent, has {node.parent_id!r}")
            return
        parent = self._nodes.get(node.parent_id or "")
        if parent is None or parent.level != node.level - 1:
            raise TreeError(f"node {node.node_id!r} (level {node.level}) needs a level-{node.level - 1} parent")

    def _path_to(self, node_id: str) -> tuple[str, ...]:
        path = [node_id]
        while (parent_id := self._nodes[path[-1]].parent_id) is not None:
            path.append(parent_id)
        return tuple(reversed(path))

    # --- nodes -----------------------------------------------------------------------------------------
    def node(self, node_id: str) -> ClusterNode:
        """The node with this id."""
        try:
            return self._nodes[node_id]
        except KeyError:
            raise TreeError(f"unknown node id {node_id!r}") from None

    def nodes_at(self, level: int) -> list[str]:
        """Node ids at ``level``, sorted."""
        self._check_level(level)
        return list(self._levels[level])

    def children(self, node_id: str | None) -> list[str]:
        """Child node ids (``None``: the level-1 nodes), sorted."""
        if node_id is not None:
            self.node(node_id)
        return sorted(self._children.get(node_id, []))

    def parent(self, node_id: str) -> str | None:
        """Parent node id (``None`` for level-1 nodes)."""
        return self.node(node_id).parent_id

    def ancestor(self, node_id: str, level: int) -> str | None:
        """The ancestor of ``node_id`` at ``level`` (itself at its own level; ``None`` at level 0, the root)."""
        node = self.node(node_id)
        if not 0 <= level <= node.level:
            raise TreeError(f"level {level} is not an ancestor level of {node_id!r} (level {node.level})")
        if level == 0:
            return None
        while node.level > level:
            node = self._nodes[node.parent_id]  # type: ignore[index]
        return node.node_id

    def siblings(self, node_id: str, delta: int = 1) -> list[str]:
        """Nodes at the same level sharing the level-(level-δ) ancestor, excluding ``node_id`` itself.

        These are exactly the serendipitous targets of an item in ``node_id`` (paper §2).
        """
        node = self.node(node_id)
        self._check_level_delta(node.level, delta)
        anchor = self.ancestor(node_id, node.level - delta)
        return [
            other
            for other in self.nodes_at(node.level)
            if other != node_id and self.ancestor(other, node.level - delta) == anchor
        ]

    # --- descriptions ------------------------------------------------------------------------------------
    def description(self, node_id: str) -> str:
        """The node's unique natural-language description."""
        return self.node(node_id).description

    def node_for_description(self, description: str) -> str:
        """Exact inverse of :meth:`description`; raises TreeError for an unknown description."""
        try:
            return self._by_description[description]
        except KeyError:
            raise TreeError(f"no node has the description {description!r}") from None

    def descriptions(self, level: int) -> list[str]:
        """Descriptions of the nodes at ``level``, in :meth:`nodes_at` order."""
        return [self._nodes[node_id].description for node_id in self.nodes_at(level)]

    # --- items ---------------------------------------------------------------------------------------------
    @property
    def item_ids(self) -> list[str]:
        """All items placed in the tree, sorted."""
        return sorted(self._item_leaves)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._item_leaves

    def node_of(self, item_id: str, level: int) -> str | None:
        """The node holding ``item_id`` at ``level`` (``None`` at level 0)."""
        self._check_level(level, allow_root=True)
        try:
            leaf_id = self._item_leaves[item_id]
        except KeyError:
            raise UnknownItemError(f"item {item_id!r} is not in the cluster tree") from None
        return None if level == 0 else self._paths[leaf_id][level - 1]

    def path_of(self, item_id: str) -> tuple[str, ...]:
        """Node ids of ``item_id`` from level 1 to the leaf."""
        self.node_of(item_id, 1)
        return self._paths[self._item_leaves[item_id]]

    def items_in(self, node_id: str) -> list[str]:
        """Items under ``node_id`` (at any depth below it), sorted."""
        self.node(node_id)
        return sorted(self._items_by_node[node_id])

    def is_similar(self, item_a: str, item_b: str, level: int = DEFAULT_PLANNING_LEVEL) -> bool:
        """True when both items fall in the same level-``level`` node."""
        return self.node_of(item_a, level) == self.node_of(item_b, level)

    def is_serendipitous(
        self, item_a: str, item_b: str, level: int = DEFAULT_PLANNING_LEVEL, delta: int = DEFAULT_DELTA
    ) -> bool:
        """True when the items differ at ``level`` but share the node at ``level - delta`` (paper §2)."""
        self._check_level_delta(level, delta)
        return self.node_of(item_a, level) != self.node_of(item_b, level) and self.node_of(
            item_a, level - delta
        ) == self.node_of(item_b, level - delta)

    def item_nodes_frame(self) -> pd.DataFrame:
        """One row per item: ``item_id`` and ``level_1`` … ``level_<num_levels>`` node ids."""
        rows = [(item_id, *self._paths[leaf_id]) for item_id, leaf_id in sorted(self._item_leaves.items())]
        columns = ["item_id"] + [level_column(level) for level in range(1, self.num_levels + 1)]
        return pd.DataFrame(rows, columns=columns)

    # --- validation ------------------------------------------------------------------------------------------
    def _check_level(self, level: int, allow_root: bool = False) -> None:
        lowest = 0 if allow_root else 1
        if not lowest <= level <= self.num_levels:
            raise TreeError(f"level must be in {lowest}..{self.num_levels}, got {level}")

    def _check_level_delta(self, level: int, delta: int) -> None:
        self._check_level(level)
        if not 1 <= delta <= level:
            raise TreeError(f"delta must be in 1..{level} for level {level}, got {delta}")

    # --- persistence ---------------------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write ``tree.json`` and ``item_nodes.parquet`` into ``directory``."""
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        nodes = []
        for node_id in sorted(self._nodes, key=lambda key: (self._nodes[key].level, key)):
            record = asdict(self._nodes[node_id])
            record["num_items"] = len(self._items_by_node[node_id])
            nodes.append(record)
        document = {"format": TREE_FORMAT, "num_levels": self.num_levels, "nodes": nodes}
        (target / TREE_JSON).write_text(json.dumps(document, indent=1) + "\n")
        self.item_nodes_frame().to_parquet(target / ITEM_NODES_PARQUET, index=False)

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> ClusterTree:
        """Read a tree written by :meth:`save`."""
        source = Path(directory)
        try:
            document = json.loads((source / TREE_JSON).read_text())
            item_nodes = pd.read_parquet(source / ITEM_NODES_PARQUET)
        except FileNotFoundError as error:
            raise TreeError(f"{source} holds no cluster tree ({error.filename} missing)") from error
        if document.get("format") != TREE_FORMAT:
            raise TreeError(f"{source / TREE_JSON}: format {document.get('format')!r}, expected {TREE_FORMAT!r}")
        num_levels = int(document["num_levels"])
        nodes = [
            ClusterNode(record["node_id"], int(record["level"]), record["parent_id"], record["description"])
            for record in document["nodes"]
        ]
        leaves = dict(zip(item_nodes["item_id"], item_nodes[level_column(num_levels)], strict=True))
        return cls(nodes, leaves, num_levels)

    def __repr__(self) -> str:
        sizes = ", ".join(f"L{level}={len(self.nodes_at(level))}" for level in range(1, self.num_levels + 1))
        return f"ClusterTree({len(self._item_leaves)} items, {sizes})"
