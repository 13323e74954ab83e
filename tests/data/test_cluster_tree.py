"""ClusterTree semantics on a hand-built tree, persistence, and consistency errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serendip.core.cluster_tree import ClusterNode, ClusterTree
from serendip.core.errors import TreeError, UnknownItemError

# A: a (x: leaves x0 x1, y: leaf y0), b (x: leaf bx0);  B: a (x: leaf Bx0)
NODES = [
    ClusterNode("A", 1, None, "animals"),
    ClusterNode("B", 1, None, "baking"),
    ClusterNode("A.a", 2, "A", "cats"),
    ClusterNode("A.b", 2, "A", "birds"),
    ClusterNode("B.a", 2, "B", "bread"),
    ClusterNode("A.a.x", 3, "A.a", "kittens"),
    ClusterNode("A.a.y", 3, "A.a", "lions"),
    ClusterNode("A.b.x", 3, "A.b", "parrots"),
    ClusterNode("B.a.x", 3, "B.a", "sourdough"),
    ClusterNode("A.a.x.0", 4, "A.a.x", "sleepy kittens"),
    ClusterNode("A.a.x.1", 4, "A.a.x", "playful kittens"),
    ClusterNode("A.a.y.0", 4, "A.a.y", "lion cubs"),
    ClusterNode("A.b.x.0", 4, "A.b.x", "talking parrots"),
    ClusterNode("B.a.x.0", 4, "B.a.x", "starter care"),
]
ITEMS = {
    "i1": "A.a.x.0",
    "i2": "A.a.x.0",
    "i3": "A.a.x.1",
    "i4": "A.a.y.0",
    "i5": "A.b.x.0",
    "i6": "B.a.x.0",
}


@pytest.fixture
def tree() -> ClusterTree:
    return ClusterTree(NODES, ITEMS)


@pytest.mark.parametrize(
    ("a", "b", "level", "delta", "serendipitous"),
    [
        ("i1", "i2", 3, 1, False),  # same level-3 node: similar
        ("i1", "i3", 3, 1, False),  # same level-3 node, different leaves
        ("i1", "i3", 4, 1, True),  # different leaves under one level-3 node
        ("i1", "i4", 3, 1, True),  # kittens -> lions: both under cats
        ("i4", "i1", 3, 1, True),  # symmetric
        ("i1", "i5", 3, 1, False),  # kittens -> parrots: different level-2 nodes
        ("i1", "i5", 3, 2, True),  # ... but the same level-1 node
        ("i1", "i6", 3, 2, False),  # different level-1 nodes
        ("i1", "i6", 3, 3, True),  # level 0 is the root: anything different at level 3
        ("i1", "i1", 3, 1, False),
    ],
)
def test_is_serendipitous_hand_checked(
    tree: ClusterTree, a: str, b: str, level: int, delta: int, serendipitous: bool
) -> None:
    assert tree.is_serendipitous(a, b, level, delta) is serendipitous


def test_is_similar_and_default_level(tree: ClusterTree) -> None:
    assert tree.is_similar("i1", "i3")
    assert not tree.is_similar("i1", "i3", level=4)
    assert not tree.is_similar("i1", "i4")
    assert tree.is_similar("i1", "i5", level=1)
    assert tree.is_serendipitous("i1", "i4")  # defaults: l = 3, delta = 1


def test_navigation(tree: ClusterTree) -> None:
    assert tree.node_of("i3", 4) == "A.a.x.1"
    assert tree.node_of("i3", 2) == "A.a"
    assert tree.node_of("i3", 0) is None
    assert tree.path_of("i5") == ("A", "A.b", "A.b.x", "A.b.x.0")
    assert tree.ancestor("A.a.x.1", 1) == "A"
    assert tree.ancestor("A.a.x.1", 4) == "A.a.x.1"
    assert tree.children("A") == ["A.a", "A.b"]
    assert tree.children(None) == ["A", "B"]
    assert tree.siblings("A.a.x") == ["A.a.y"]
    assert tree.siblings("A.a.x", delta=2) == ["A.a.y", "A.b.x"]
    assert tree.items_in("A.a") == ["i1", "i2", "i3", "i4"]
    assert tree.nodes_at(3) == ["A.a.x", "A.a.y", "A.b.x", "B.a.x"]


def test_descriptions_are_a_bijection(tree: ClusterTree) -> None:
    for node in NODES:
        assert tree.node_for_description(tree.description(node.node_id)) == node.node_id
    assert tree.descriptions(2) == ["cats", "birds", "bread"]
    with pytest.raises(TreeError, match="no node has the description"):
        tree.node_for_description("dogs")


def test_save_load_round_trip_as_json_and_parquet(tree: ClusterTree, tmp_path: Path) -> None:
    tree.save(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["item_nodes.parquet", "tree.json"]
    document = json.loads((tmp_path / "tree.json").read_text())
    assert {node["node_id"]: node["num_items"] for node in document["nodes"]}["A.a"] == 4
    loaded = ClusterTree.load(tmp_path)
    assert loaded.item_ids == tree.item_ids
    assert all(loaded.path_of(item) == tree.path_of(item) for item in ITEMS)
    assert [loaded.description(node.node_id) for node in NODES] == [node.description for node in NODES]


def test_errors_name_the_culprit(tree: ClusterTree) -> None:
    with pytest.raises(UnknownItemError, match="'nope'"):
        tree.node_of("nope", 3)
    with pytest.raises(TreeError, match="delta must be in 1..3"):
        tree.is_serendipitous("i1", "i2", 3, 4)
    with pytest.raises(TreeError, match="level must be in 1..4"):
        tree.is_serendipitous("i1", "i2", 5, 1)
    duplicate = [*NODES[:-1], ClusterNode("B.a.x.0", 4, "B.a.x", "cats")]
    with pytest.raises(TreeError, match="'cats' is used by both"):
        ClusterTree(duplicate, ITEMS)
    orphan = [*NODES, ClusterNode("C.a", 2, "missing", "ghosts")]
    with pytest.raises(TreeError, match="needs a level-1 parent"):
        ClusterTree(orphan, ITEMS)
    with pytest.raises(TreeError, match="not a level-4 node"):
        ClusterTree(NODES, {"i1": "A.a.x"})
