"""The ``thumbnail`` world preset (JPEG posters, no videos) and curation / MLLM setup on a catalogue of images."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from serendip.artifacts.curation import CURATION_FILES, load_example_frames
from serendip.artifacts.frames import DecodeSettings, decode_item, fingerprint_items
from serendip.artifacts.store import read_manifest
from serendip.artifacts.world import load_world
from serendip.core.cluster_tree import ClusterTree
from serendip.jobs.train_mllm import curated_visual
from serendip.models.mllm.prompts import VisualSetting
from serendip.offline.curation import CurationConfig, curate
from serendip.offline.world import WORLD_PRESETS, WorldConfig, generate_world
from tests.data.worlds import TEST_WORLD


@pytest.fixture(scope="module")
def thumbnail_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test world drawn with the ``thumbnail`` preset."""
    config = replace(TEST_WORLD, **WORLD_PRESETS["thumbnail"], fresh_uploads=5)
    return generate_world(config, tmp_path_factory.mktemp("thumbs"), progress=False, log=lambda _: None)


def test_items_have_a_thumbnail_and_no_video(thumbnail_world: Path) -> None:
    items = pd.read_parquet(thumbnail_world / "items.parquet")
    assert items["video_path"].isna().all()
    assert (items["thumbnail_path"] == "thumbnails/" + items["item_id"] + ".jpg").all()
    assert not (thumbnail_world / "videos").exists()
    assert len(list((thumbnail_world / "thumbnails").glob("*.jpg"))) == len(items)
    media = pd.read_parquet(thumbnail_world / "media.parquet")
    assert media["video_sha256"].isna().all() and (media["video_bytes"] == 0).all()
    assert list(media["item_id"]) == list(items["item_id"])
    fresh = pd.read_parquet(thumbnail_world / "fresh_items.parquet")
    assert fresh["video_path"].isna().all() and fresh["thumbnail_path"].notna().all()
    counts = read_manifest(thumbnail_world)["counts"]
    assert counts["videos"] == 0 and counts["thumbnails"] == len(items)


def test_same_draws_as_the_default_world(thumbnail_world: Path, world_dir: Path) -> None:
    """Logs, truth and thumbnail pixels are those of the default world of the same seed."""
    for name in ("interactions.parquet", "ground_truth.parquet", "items.parquet"):
        own, default = (pd.read_parquet(path / name) for path in (thumbnail_world, world_dir))
        pd.testing.assert_frame_equal(
            own.drop(columns="video_path", errors="ignore"), default.drop(columns="video_path", errors="ignore")
        )
    thumbs = pd.read_parquet(thumbnail_world / "media.parquet").set_index("item_id")["thumbnail_sha256"]
    default = pd.read_parquet(world_dir / "media.parquet").set_index("item_id")["thumbnail_sha256"]
    assert thumbs.equals(default)


def test_default_parameters_do_not_name_the_preset_field() -> None:
    """The default world's parameters (and so its version name) are those from before the preset existed."""
    assert "thumbnail_only" not in WorldConfig().to_dict()
    assert WorldConfig(thumbnail_only=True).to_dict()["thumbnail_only"] is True


def test_curation_uses_the_thumbnail_as_the_one_frame(thumbnail_world: Path, kmeans_tree: ClusterTree) -> None:
    loaded = load_world(thumbnail_world)
    result = curate(loaded.items, loaded.interactions, kmeans_tree, CurationConfig(), captions=loaded.captions)
    modes = result.sft.groupby("variant")["frames"].agg(set).to_dict()
    assert modes == {"text_only": {"none"}, "video_only": {"thumbnail"}, "video_text": {"thumbnail"},
                     "video_cot": {"thumbnail"}}  # fmt: skip
    assert result.report["frame_modes"] == "thumbnail only: no item has a video"
    row = result.sft[result.sft["frames"] == "thumbnail"].iloc[0]
    assert load_example_frames(row).shape == (1, 64, 64, 3)


def test_train_mllm_switches_to_the_thumbnail(tmp_path: Path) -> None:
    frames = ["none", "thumbnail", "thumbnail"]
    pd.DataFrame({"split": "train", "frames": frames}).to_parquet(tmp_path / CURATION_FILES["sft"])
    assert curated_visual(tmp_path, VisualSetting.parse("4")).thumbnail
    pd.DataFrame({"split": "train", "frames": [*frames, "4"]}).to_parquet(tmp_path / CURATION_FILES["sft"])
    assert curated_visual(tmp_path, VisualSetting.parse("4")).name == "4"


def test_frame_store_keeps_items_with_a_thumbnail_and_no_video(thumbnail_world: Path) -> None:
    items = load_world(thumbnail_world).items.head(3)
    settings = DecodeSettings(num_frames=4, image_size=32)
    media, errors = fingerprint_items(items, settings)
    assert errors.empty and [item.video_path for item in media] == ["", "", ""]
    row = decode_item(media[0], settings)
    assert (row["frame_count"], row["frame_indices"], row["frame_height"]) == (1, [0, 0, 0, 0], 32)
    assert row["frames"] == row["thumbnail"] * 4
    media, errors = fingerprint_items(items.assign(thumbnail_path=None), settings)
    assert not media and set(errors["error"]) == {"item has no video_path"}
