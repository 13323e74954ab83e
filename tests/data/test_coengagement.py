"""Co-engagement signals (PMI + SVD, lift, the user split), block-weight selection, c-TF-IDF descriptions,
text coherence, and the hard world preset against the content-only builder."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.metrics import normalized_mutual_info_score

from serendip.artifacts.world import load_world
from serendip.core.cluster_tree import level_column
from serendip.offline.coengagement import coengagement_lift, pmi_svd_vectors, ppmi, split_pairs_by_user
from serendip.offline.tree_builder import (
    BLOCKS,
    ItemEmbeddings,
    TreeBuildConfig,
    _unique_descriptions,
    build_tree,
    candidate_weights,
    rank_terms,
    select_weights,
    term_presence,
    text_coherence,
    tree_report,
)
from serendip.offline.world import WORLD_PRESETS, WorldConfig, generate_world


def _pairs(edges: list[tuple[str, str]], user: str = "u") -> pd.DataFrame:
    return pd.DataFrame(
        {"context_item_id": [a for a, _ in edges], "next_item_id": [b for _, b in edges], "user_id": user}
    )


def test_ppmi_matches_the_formula_on_a_tiny_matrix() -> None:
    counts = sparse.csr_matrix(np.array([[0.0, 2.0], [2.0, 1.0]]))
    values = ppmi(counts, smoothing=1.0).toarray()
    total, rows = 5.0, np.array([2.0, 3.0])
    expected_01 = max(0.0, np.log((2 / total) / ((rows[0] / total) * (rows[1] / total))))
    assert values[0, 1] == pytest.approx(expected_01)
    assert values[0, 0] == 0.0  # no co-occurrence, no PMI
    assert values[1, 1] == 0.0  # log(1/5 / (3/5 * 3/5)) < 0 is clipped


def test_pmi_svd_groups_co_engaged_items_and_leaves_cold_items_at_zero() -> None:
    groups = [["a", "b", "c", "d"], ["e", "f", "g", "h"]]
    edges = [(x, y) for group in groups for x in group for y in group if x != y]
    vectors = pmi_svd_vectors(_pairs(edges * 3), ["a", "b", "c", "d", "e", "f", "g", "h", "cold"], dims=2)
    unit = vectors.vectors
    assert unit[0] @ unit[1] > 0.9 and unit[4] @ unit[5] > 0.9  # same group: nearly the same direction
    assert abs(unit[0] @ unit[4]) < 0.3  # other group: about orthogonal
    assert vectors.pair_counts[-1] == 0 and not unit[-1].any()


def test_lift_on_a_hand_built_case() -> None:
    node_of = {"a": "X", "b": "X", "c": "Y", "d": "Y"}
    lift = coengagement_lift(node_of, _pairs([("a", "b"), ("c", "d"), ("a", "c"), ("b", "d"), ("a", "zz")]))
    # 4 known pairs, 2 inside one node; context nodes X 3/4, Y 1/4; next nodes X 1/4, Y 3/4: chance 6/16
    assert lift == {"pairs": 4, "inside": 0.5, "chance": 0.375, "lift": pytest.approx(4 / 3)}
    assert coengagement_lift(node_of, _pairs([("zz", "a")])) is None


def test_split_by_user_is_stable_and_keeps_a_user_in_one_split() -> None:
    pairs = pd.concat([_pairs([("a", "b"), ("b", "c")], user=f"u{index}") for index in range(200)])
    splits = split_pairs_by_user(pairs, 0.2, 0.1, seed=3)
    assert sum(len(frame) for frame in splits.values()) == len(pairs)
    users = {name: set(frame["user_id"]) for name, frame in splits.items()}
    assert not users["train"] & users["validation"] and not users["validation"] & users["test"]
    assert 20 < len(users["validation"]) < 60 and 5 < len(users["test"]) < 40
    again = split_pairs_by_user(pairs, 0.2, 0.1, seed=3)
    assert all(splits[name].equals(again[name]) for name in splits)


def test_candidate_weights_skip_proportional_settings_and_keep_given_weights() -> None:
    free = candidate_weights(TreeBuildConfig(), BLOCKS)
    assert len(free) == 3**3 - 2**3  # every grid point whose largest weight is 1
    assert {"collaborative": 1.0, "text": 0.0, "visual": 0.0} in free
    fixed = candidate_weights(TreeBuildConfig(text_weight=0.3), ["text", "collaborative"])
    assert all(weights["text"] == 0.3 and weights["visual"] == 0.0 for weights in fixed)
    assert len(fixed) == 3


def test_weight_selection_prefers_the_block_that_predicts_held_out_pairs() -> None:
    rng = np.random.default_rng(0)
    clusters = np.repeat(np.arange(8), 12)  # 96 items, 8 level-3 clusters of branching 2,2,2,1
    centres = rng.normal(0, 1, (8, 6))
    informative = centres[clusters] + rng.normal(0, 0.2, (96, 6))
    noise = rng.normal(0, 1, (96, 6))
    item_ids = [f"i{index}" for index in range(96)]
    items = pd.DataFrame({"item_id": item_ids, "title": "", "impressions": 10})
    embeddings = ItemEmbeddings(item_ids, {"collaborative": informative, "text": noise})
    edges = [
        (item_ids[i], item_ids[j]) for i in range(96) for j in rng.choice(np.flatnonzero(clusters == clusters[i]), 3)
    ]
    config = TreeBuildConfig(branching=(2, 2, 2, 1), selection_level=3)
    weights, scores = select_weights(items, config, embeddings, _pairs(edges))
    assert len(scores) == 3**2 - 2**2  # two free blocks, proportional settings tried once
    best = max(score["validation_lift"] for score in scores)
    assert weights["collaborative"] == 1.0 and weights["text"] < 1.0
    text_only = next(score for score in scores if score["weights"]["collaborative"] == 0)
    assert text_only["validation_lift"] < best / 2


def test_ctfidf_ranks_tags_first_and_descriptions_are_unique() -> None:
    presence = term_presence(
        ["red kayak trip", "kayak fun", "red lantern", "lantern night"],
        [["sea sports"], ["sea sports"], ["crafts"], []],
        tag_weight=3.0,
    )
    n1, n2 = rank_terms(presence, [np.array([0, 1]), np.array([2, 3])])
    assert n1[0] == "sea sports" and n2[0] == "crafts"
    assert "red" not in n1[:2]  # in both nodes: not distinctive
    same = {"a": ["x", "y", "z"], "b": ["x", "y", "w"], "c": ["x", "y"]}
    descriptions = _unique_descriptions(same, 2, set())
    assert len(set(descriptions.values())) == 3
    assert descriptions["a"] == "x y" and descriptions["b"] == "x y w"


def test_text_coherence_is_above_one_for_tag_groups() -> None:
    tags = [frozenset({"sea", "boat"})] * 10 + [frozenset({"cake", "oven"})] * 10
    groups = [np.arange(10), np.arange(10, 20)]
    coherence = text_coherence(groups, tags)
    assert coherence["within"] == 1.0 and coherence["ratio"] == pytest.approx(1 / coherence["random"])
    mixed = text_coherence([np.arange(0, 20, 2), np.arange(1, 20, 2)], tags)
    assert mixed["ratio"] < 1.1


HARD_TEST_WORLD = replace(
    WorldConfig(**WORLD_PRESETS["hard"]),
    num_items=240,
    num_users=400,
    branching=(2, 2, 3, 2),
    frame_size=32,
    num_frames=8,
    seed=5,
    workers=1,
)


@pytest.fixture(scope="module")
def hard_world(tmp_path_factory: pytest.TempPathFactory):
    directory = generate_world(HARD_TEST_WORLD, tmp_path_factory.mktemp("hard"), progress=False, log=lambda _: None)
    return load_world(directory)


def test_hard_world_has_tags_and_scrambled_videos(hard_world) -> None:
    assert all(len(tags) >= 1 for tags in hard_world.items["tags"])
    truth = hard_world.ground_truth
    codes = truth["top_colour"] + "/" + truth["bottom_colour"] + "/" + truth["block_colour"]
    assert codes.groupby(truth["level_3"]).nunique().mean() > 6  # the videos no longer follow the clusters
    assert (truth["title_kind"] == "informative").mean() < 0.2


def test_hard_world_tree_beats_the_content_only_builder(hard_world) -> None:
    def nmi(build) -> float:
        frame = build.tree.item_nodes_frame().merge(hard_world.ground_truth, on="item_id", suffixes=("", "_true"))
        column = level_column(3)
        return normalized_mutual_info_score(frame[f"{column}_true"], frame[column])

    base = TreeBuildConfig(branching=HARD_TEST_WORLD.branching, restarts=3)
    content_only = build_tree(hard_world.items, replace(base, collaborative_weight=0, text_weight=1, visual_weight=1))
    new = build_tree(hard_world.items, base, interactions=hard_world.interactions)
    assert new.weights["collaborative"] > 0 and new.weight_selection
    assert nmi(new) > nmi(content_only) + 0.2
    report = tree_report(new.tree, hard_world.items, hard_world.ground_truth, new.test_pairs)
    assert report["text_coherence_terms"] == "tags"
    assert report["levels"]["3"]["coengagement_lift"] > 3
    assert report["levels"]["3"]["text_coherence"] > 1.5


def test_default_world_has_no_tags_column(world_dir: Path) -> None:
    assert "tags" not in pd.read_parquet(world_dir / "items.parquet").columns


def test_content_neighbours_of_big_catalogues_come_from_an_hnsw_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above EXACT_NEIGHBOUR_PAIRS the cold-start neighbours are found approximately: nearly the exact ones, never
    the item itself."""
    from serendip.offline import tree_builder

    rng = np.random.default_rng(3)
    centres = rng.normal(size=(40, 16))
    vectors = centres[rng.integers(len(centres), size=3000)] + 0.3 * rng.normal(size=(3000, 16))
    unit = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    warm = np.sort(rng.choice(len(unit), size=2000, replace=False))
    exact = tree_builder._warm_neighbours(unit, warm, 10)
    monkeypatch.setattr(tree_builder, "EXACT_NEIGHBOUR_PAIRS", 0)
    approximate = tree_builder._warm_neighbours(unit, warm, 10)
    assert approximate.shape == exact.shape == (len(unit), 10)
    assert not (warm[approximate] == np.arange(len(unit))[:, None]).any()
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approximate, exact, strict=True)])
    assert recall >= 0.9
