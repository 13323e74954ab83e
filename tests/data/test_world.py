"""The synthetic world: determinism, ground truth consistent with the pixels, satisfaction ordering, long tail."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serendip.artifacts.store import file_sha256, read_manifest, verify_artifact
from serendip.artifacts.world import World, load_fresh_uploads, load_world
from serendip.core.errors import ConfigError
from serendip.core.frames import decode_frames
from serendip.offline.vocabulary import BOTTOM_COLOURS, SIGNATURE_COLOURS, TOP_COLOURS
from serendip.offline.world import WorldConfig, generate_world
from tests.data.worlds import TEST_WORLD

BLOCK_REGIONS = {
    "left": (slice(34, 62), slice(34, 46)),
    "right": (slice(34, 62), slice(50, 62)),
    "top": (slice(34, 46), slice(34, 62)),
    "bottom": (slice(50, 62), slice(34, 62)),
}
"""Inner pixels (2 px margin) of the block's half of the bottom-right quadrant, per layout, at 64 px."""


def test_same_seed_same_world(tmp_path: Path) -> None:
    config = replace(TEST_WORLD, num_items=60, num_users=40)
    first = load_world(generate_world(config, tmp_path / "a", progress=False, log=lambda _: None))
    second = load_world(generate_world(config, tmp_path / "b", progress=False, log=lambda _: None))
    other = generate_world(
        replace(config, seed=8, with_video=False), tmp_path / "c", progress=False, log=lambda _: None
    )
    for name in ("users", "ground_truth"):
        pd.testing.assert_frame_equal(getattr(first, name), getattr(second, name))
    for name in ("items", "interactions"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(first.dir / f"{name}.parquet"), pd.read_parquet(second.dir / f"{name}.parquet")
        )
    # the same bytes: content hashes are stable across runs
    pd.testing.assert_frame_equal(
        pd.read_parquet(first.dir / "media.parquet"), pd.read_parquet(second.dir / "media.parquet")
    )
    assert not first.interactions["item_id"].equals(load_world(other).interactions["item_id"])
    assert load_world(other).items["video_path"].isna().all()


def test_config_limits_are_named() -> None:
    with pytest.raises(ConfigError, match="branching level 4 is 5"):
        WorldConfig(branching=(2, 2, 2, 5)).validate()
    with pytest.raises(ConfigError, match="every leaf needs an item"):
        WorldConfig(num_items=10, branching=(2, 2, 2, 2)).validate()


def test_artifact_is_complete_and_hashed(world: World) -> None:
    manifest = read_manifest(world.dir)
    assert manifest["kind"] == "world" and manifest["counts"]["items"] == 200
    assert manifest["bulk_files"]["videos/"]["count"] == 200
    assert verify_artifact(world.dir) == []
    media = pd.read_parquet(world.dir / "media.parquet")
    row = media.iloc[5]
    assert file_sha256(world.dir / "videos" / f"{row['item_id']}.mp4") == row["video_sha256"]
    assert world.items_report.rows_kept == 200 and world.interactions_report.rows_dropped == 0


def test_good_clusters_are_siblings_at_level_3(world: World) -> None:
    tree = world.true_tree
    for row in world.ground_truth.itertuples():
        siblings = tree.siblings(row.level_3, 1)
        assert row.affine_cluster in siblings
        assert set(row.good_clusters) <= set(siblings)
        assert len(row.good_clusters) == len(row.accent_colours) == len(row.accent_frames) in (1, 2)
        assert 0 <= row.visual_richness <= 1


def test_pixels_show_the_ground_truth(world: World) -> None:
    truth = world.ground_truth.set_index("item_id")
    palette = {name: np.array(rgb) for name, rgb in (*TOP_COLOURS, *BOTTOM_COLOURS, *SIGNATURE_COLOURS)}
    for item_id, video_path in world.items[["item_id", "video_path"]].head(20).itertuples(index=False):
        row = truth.loc[item_id]
        start, end = row["accent_frames"][0]
        frame = decode_frames(video_path, [start, row["thumbnail_frame"]])
        # medians over whole regions: the small moving square covers at most 64 of their pixels
        assert np.abs(np.median(frame[0, 34:62, 2:30], axis=(0, 1)) - palette[row["bottom_colour"]]).max() < 16
        block = BLOCK_REGIONS[row["layout"]]
        assert np.abs(np.median(frame[0][block], axis=(0, 1)) - palette[row["block_colour"]]).max() < 16
        top_colours = {tuple(frame[0, 16, x]) for x in (4, 32, 60)}
        assert len(top_colours) >= 2  # the accent strip differs from the top colour while it shows
        in_window = any(first <= row["thumbnail_frame"] < last for first, last in row["accent_frames"])
        assert in_window  # the thumbnail shows an accent


def test_satisfaction_follows_the_serendipity_ordering(world: World) -> None:
    transitions = read_manifest(world.dir)["counts"]["transitions"]
    means = {relation: entry["mean_satisfaction"] for relation, entry in transitions.items()}
    assert means["affine"] > means["secondary"] > means["same"] > means["serendipitous"] > means["random"]
    oracle = world.oracle
    row = world.ground_truth.iloc[0]
    partner = world.ground_truth[world.ground_truth["level_3"] == row["affine_cluster"]]["item_id"].iloc[0]
    assert oracle.relation(row["item_id"], partner) == "affine"
    assert (
        oracle.expected_satisfaction(row["item_id"], partner)
        > world.manifest["parameters"]["satisfaction"]["same_cluster"]
    )


def test_popularity_is_long_tailed(world: World) -> None:
    impressions = np.sort(world.items["impressions"].to_numpy())[::-1]
    top_fifth = impressions[: len(impressions) // 5].sum() / impressions.sum()
    assert top_fifth > 0.6


def test_titles_hide_the_accent(world: World) -> None:
    truth = world.ground_truth.set_index("item_id")
    kinds = truth["title_kind"].value_counts(normalize=True)
    assert 0.55 < kinds["informative"] < 0.85
    topic_words = {
        world.true_tree.description(node) for level in range(1, 5) for node in world.true_tree.nodes_at(level)
    }
    colour_words = {name for name, _ in (*TOP_COLOURS, *BOTTOM_COLOURS, *SIGNATURE_COLOURS)}
    for item_id, title in zip(world.items["item_id"], world.items["title"], strict=True):
        words = set(
            title.replace("#", " ").replace(":", " ").replace("(", " ").replace(")", " ").replace(",", " ").split()
        )
        assert not words & colour_words
        own_word = world.true_tree.description(truth.at[item_id, "level_3"])
        if truth.at[item_id, "title_kind"] == "informative":
            assert own_word in words
        elif truth.at[item_id, "title_kind"] == "vague":
            assert not words & topic_words


def test_fresh_uploads_leave_the_logged_world_byte_identical(tmp_path: Path) -> None:
    config = replace(TEST_WORLD, num_items=60, num_users=40)
    without = generate_world(replace(config, fresh_uploads=0), tmp_path / "a", progress=False, log=lambda _: None)
    with_fresh = generate_world(replace(config, fresh_uploads=8), tmp_path / "b", progress=False, log=lambda _: None)
    first, second = read_manifest(without), read_manifest(with_fresh)
    assert first["files"].items() <= second["files"].items()  # every file of the world without, byte for byte
    assert {name: second["bulk_files"][name] for name in first["bulk_files"]} == first["bulk_files"]
    assert load_fresh_uploads(without) is None
    fresh = load_fresh_uploads(with_fresh)
    assert fresh is not None and len(fresh.items) == 8 and second["bulk_files"]["fresh_videos/"]["count"] == 8
    assert verify_artifact(with_fresh) == []


def test_fresh_uploads_are_new_held_out_and_show_their_ground_truth(world: World) -> None:
    fresh = load_fresh_uploads(world.dir)
    assert fresh is not None and len(fresh.items) == TEST_WORLD.fresh_uploads == 100
    ids = set(fresh.items["item_id"])
    assert not ids & set(world.items["item_id"])
    assert not ids & (set(world.interactions["item_id"]) | set(world.interactions["context_item_id"].dropna()))
    assert not ids & set(world.true_tree.item_ids)
    assert (fresh.items["created_at"] > world.interactions["ts"].max()).all()
    assert (fresh.items["impressions"] == 0).all()
    truth = fresh.ground_truth.set_index("item_id")
    assert set(truth.index) == ids
    for row in fresh.ground_truth.itertuples():
        assert set(row.good_clusters) <= set(world.true_tree.siblings(row.level_3, 1))
        assert row.affine_cluster == row.good_clusters[0]
    palette = dict(SIGNATURE_COLOURS)
    for item_id, video_path in fresh.items[["item_id", "video_path"]].head(10).itertuples(index=False):
        row = truth.loc[item_id]
        start, _ = row["accent_frames"][0]
        frame = decode_frames(video_path, [start])[0]
        block = BLOCK_REGIONS[row["layout"]]
        assert np.abs(np.median(frame[block], axis=(0, 1)) - np.array(palette[row["block_colour"]])).max() < 16
    kinds = truth["title_kind"].value_counts(normalize=True)
    assert 0.5 < kinds["informative"] < 0.9
