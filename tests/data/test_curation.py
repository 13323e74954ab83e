"""Serendipity curation: pair mining, exact per-cluster top-k, splits, coverage, prompt variants, bad videos."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serendip.artifacts.curation import Curation, load_example_frames
from serendip.artifacts.world import World
from serendip.core.cluster_tree import ClusterTree
from serendip.core.errors import CurationError
from serendip.core.frames import read_video, uniform_frame_indices
from serendip.core.prompts import ANSWER_MARKER, answer_description, target_text
from serendip.offline.curation import CurationConfig, curate, mine_pairs
from serendip.offline.thoughts import MAX_THOUGHT_WORDS


def _independent_ranking(world: World, tree: ClusterTree) -> dict[str, list[tuple[str, float, int]]]:
    """Per cluster: (context, mean satisfaction, pairs) over serendipitous pairs, best first -- a plain loop."""
    sums: dict[tuple[str, str], list[float]] = defaultdict(list)
    rows = world.interactions.dropna(subset=["context_item_id"])
    for context, item, satisfaction in zip(rows["context_item_id"], rows["item_id"], rows["satisfaction"], strict=True):
        if tree.is_serendipitous(context, item, 3, 1):
            sums[(context, tree.node_of(item, 3))].append(satisfaction)
    ranking: dict[str, list[tuple[str, float, int]]] = defaultdict(list)
    for (context, cluster), values in sums.items():
        ranking[cluster].append((context, float(np.mean(values)), len(values)))
    for entries in ranking.values():
        entries.sort(key=lambda entry: (-entry[1], -entry[2], entry[0]))
    return ranking


def test_exactly_top_k_per_cluster_and_split(
    curation: Curation, world: World, kmeans_tree: ClusterTree, curation_config: CurationConfig
) -> None:
    split_of = dict(zip(curation.candidates["context_item_id"], curation.candidates["split"], strict=False))
    ranking = _independent_ranking(world, kmeans_tree)
    top_k = curation_config.top_k_per_split
    assert top_k == {"train": 5, "heldout": 2}  # ceil(5 * 0.2 / 0.8)
    for cluster in kmeans_tree.nodes_at(3):
        for split in ("train", "heldout"):
            eligible = [context for context, _, _ in ranking[cluster] if split_of[context] == split]
            kept = curation.examples[
                (curation.examples["label_cluster_id"] == cluster) & (curation.examples["split"] == split)
            ].sort_values("rank")
            assert kept["context_item_id"].tolist() == eligible[: top_k[split]]
            assert len(kept) == min(top_k[split], len(eligible))
        assert (curation.examples["label_cluster_id"] == cluster).sum() > 0


def test_report_counts_add_up(curation: Curation, kmeans_tree: ClusterTree, curation_config: CurationConfig) -> None:
    report = curation.report
    assert report["pairs_seen"] == (
        report["pairs_similar"] + report["pairs_serendipitous"] + report["pairs_other"] + report["pairs_unknown_item"]
    )
    assert report["pairs_serendipitous"] > 0 and report["pairs_unknown_item"] == 0
    assert report["clusters"] == report["clusters_covered_in_train"] == len(kmeans_tree.nodes_at(3))
    assert report["examples_kept"]["train"] == report["clusters_with_full_top_k_in_train"] * curation_config.top_k
    coverage = curation.cluster_coverage.set_index("cluster_id")
    assert coverage["train_kept"].sum() == report["examples_kept"]["train"]
    assert report["label_precision_vs_truth"]["train"] >= 0.8  # kept labels are the truly good clusters


def test_heldout_split_is_by_context_item(curation: Curation) -> None:
    splits_per_context = curation.examples.groupby("context_item_id")["split"].nunique()
    assert (splits_per_context == 1).all()
    assert set(curation.examples["split"]) == {"train", "heldout"}
    every_description = set(curation.clusters["description"])
    assert set(curation.examples.loc[curation.examples["split"] == "train", "label_description"]) == every_description


def test_labels_are_serendipitous_for_their_context(curation: Curation, kmeans_tree: ClusterTree) -> None:
    for example in curation.examples.itertuples():
        context_cluster = kmeans_tree.node_of(example.context_item_id, 3)
        assert example.label_cluster_id in kmeans_tree.siblings(context_cluster, 1)
        assert example.label_cluster_id in example.context_labels


def test_every_example_in_every_variant_and_frame_mode(curation: Curation) -> None:
    sft = curation.sft
    per_example = sft.groupby("example_id").size()
    assert (per_example == 1 + 3 * 5).all()  # text_only + 3 video variants x (1, 2, 4, 8, thumbnail)
    assert set(per_example.index) == set(curation.examples["example_id"])
    uniform = sft[sft["frames"].isin(["1", "2", "4", "8"])]
    for frames, indices in zip(uniform["frames"], uniform["frame_indices"], strict=True):
        assert list(indices) == uniform_frame_indices(24, int(frames))
    cot = sft[sft["variant"] == "video_cot"]
    assert all(
        answer_description(target) == label
        for target, label in zip(cot["target"], cot["label_description"], strict=True)
    )
    assert all(ANSWER_MARKER in target and "accent" in target for target in cot["target"])
    text_only = sft[sft["variant"] == "text_only"]
    assert (text_only["target"] == text_only["label_description"]).all()
    assert all(title in prompt for title, prompt in zip(text_only["title"], text_only["prompt"], strict=True))
    assert text_only["video_path"].isna().all()


def test_frames_of_an_sft_row_decode_from_the_mp4(curation: Curation) -> None:
    row = curation.sft[(curation.sft["variant"] == "video_only") & (curation.sft["frames"] == "4")].iloc[0]
    frames = load_example_frames(row)
    np.testing.assert_array_equal(frames, read_video(row["video_path"])[list(row["frame_indices"])])
    thumbnail = curation.sft[curation.sft["frames"] == "thumbnail"].iloc[0]
    assert load_example_frames(thumbnail).shape == (1, 64, 64, 3)


def test_corrupt_video_is_reported_and_skipped(
    world: World, kmeans_tree: ClusterTree, curation: Curation, curation_config: CurationConfig, tmp_path: Path
) -> None:
    first = curation.examples[(curation.examples["split"] == "train") & (curation.examples["rank"] == 1)].iloc[0]
    victim, cluster = first["context_item_id"], first["label_cluster_id"]
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(Path(first["video_path"]).read_bytes()[:500])
    items = world.items.copy()
    items.loc[items["item_id"] == victim, "video_path"] = str(corrupt)
    result = curate(items, world.interactions, kmeans_tree, curation_config, captions=world.captions)
    assert result.report["videos_unusable"] == {"count": 1, "items": [victim]}
    assert result.video_errors["item_id"].tolist() == [victim]
    assert "corrupt.mp4" in result.video_errors["error"].iloc[0]
    assert victim not in set(result.examples["context_item_id"])
    kept = result.examples[(result.examples["label_cluster_id"] == cluster) & (result.examples["split"] == "train")]
    assert len(kept) == curation_config.top_k  # the next candidate took its place


def test_cluster_without_pairs_fails_unless_allowed(world: World, kmeans_tree: ClusterTree) -> None:
    starved = kmeans_tree.nodes_at(3)[0]
    members = set(kmeans_tree.items_in(starved))
    interactions = world.interactions[~world.interactions["item_id"].isin(members)]
    with pytest.raises(CurationError, match=starved):
        curate(world.items, interactions, kmeans_tree, CurationConfig(top_k=3, variants=("text_only",)))
    result = curate(
        world.items, interactions, kmeans_tree, CurationConfig(top_k=3, variants=("text_only",), allow_uncovered=True)
    )
    assert result.report["uncovered_clusters"] == [starved]
    assert set(result.sft["variant"]) == {"text_only"}


def test_pairs_fall_back_to_the_previous_item_of_the_session() -> None:
    ts = pd.to_datetime(
        ["2026-01-01 10:00", "2026-01-01 10:01", "2026-01-01 12:00", "2026-01-01 12:01", "2026-01-01 10:00"], utc=True
    )
    interactions = pd.DataFrame(
        {
            "user_id": ["u", "u", "u", "u", "w"],
            "item_id": ["a", "b", "c", "d", "e"],
            "ts": ts,
            "satisfaction": [0.1, 0.2, 0.3, 0.4, 0.5],
            "context_item_id": [None, None, None, "x", None],
        }
    )
    pairs = mine_pairs(interactions)
    # a->b (same session), c starts a new session after a 2 h gap, d has an explicit context x
    assert list(zip(pairs["context_item_id"], pairs["next_item_id"], strict=True)) == [("a", "b"), ("x", "d")]


def test_text_only_curation_without_videos(world: World, kmeans_tree: ClusterTree) -> None:
    items = world.items.assign(video_path=None, thumbnail_path=None)
    result = curate(items, world.interactions, kmeans_tree, CurationConfig(top_k=2))
    assert set(result.sft["variant"]) == {"text_only"}
    assert result.report["video_variants"] == "disabled: no item has a video"


def test_cot_target_adds_no_second_period() -> None:
    assert target_text("video_cot", "kayak", "a red block") == f"the video shows a red block.\n{ANSWER_MARKER}kayak"
    assert target_text("video_cot", "kayak", "A red block.") == f"the video shows A red block.\n{ANSWER_MARKER}kayak"


def test_long_descriptions_give_short_learnable_thoughts(world: World, kmeans_tree: ClusterTree) -> None:
    """Without captions the CoT comes from ``description``; plot-length ones become the item's own keywords."""
    plot = "a long story about a journey across the sea, told over many years by the people who were there " * 2
    items = world.items.assign(description=world.items["title"] + " " + plot)
    result = curate(items, world.interactions, kmeans_tree, CurationConfig(top_k=2, variants=("video_cot",)))
    thoughts = result.examples.set_index("context_item_id")["video_description"].dropna()
    assert len(thoughts) > 0
    descriptions = items.set_index("item_id")["description"].str.lower()
    for item, thought in thoughts.items():
        assert len(thought.split()) <= MAX_THOUGHT_WORDS
        assert all(keyword in descriptions[item] for keyword in thought.split(", "))
    cot_targets = result.sft[result.sft["variant"] == "video_cot"]["target"]
    assert len(cot_targets) and all(
        len(target.split("\n")[0].split()) <= MAX_THOUGHT_WORDS + 3 for target in cot_targets
    )
