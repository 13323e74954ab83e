"""The Ray frame decoding job: stored pixels equal direct PyAV decoding; bad videos land in the error table."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from ray_jobs import decode_frames
from ray_jobs.decode_job import DecodeResult
from serendip.artifacts.frames import ERRORS_FILE, read_rows, read_store_index, row_pixels, shard_files
from serendip.artifacts.store import file_sha256, read_manifest
from serendip.core.frames import sample_frames, uniform_frame_indices
from tests.ray_jobs.conftest import Chain, write_items

GOOD_ITEMS = 10


def _pyav_frames(path: str) -> list[np.ndarray]:
    """Every frame of a video, decoded directly with PyAV (no project code)."""
    with av.open(path) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.fixture(scope="module")
def damaged_catalogue(chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 good items plus one video of random bytes and one cut in half."""
    directory = tmp_path_factory.mktemp("damaged")
    items = chain.items.sort_values("item_id").head(GOOD_ITEMS)
    source = Path(items["video_path"].iloc[0]).read_bytes()
    corrupt, truncated = directory / "corrupt.mp4", directory / "truncated.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    truncated.write_bytes(source[: len(source) // 2])
    damaged = pd.DataFrame(
        {
            "item_id": ["zz-corrupt", "zz-truncated"],
            "title": ["noise", "half a video"],
            "video_path": [str(corrupt), str(truncated)],
            "thumbnail_path": [None, None],
            "impressions": [1, 1],
        }
    )
    return write_items(pd.concat([items, damaged], ignore_index=True), directory / "items.parquet")


@pytest.fixture(scope="module")
def native_store(damaged_catalogue: Path, ray_address: str, tmp_path_factory: pytest.TempPathFactory) -> DecodeResult:
    """The damaged catalogue decoded at the videos' own size (64 px: no resize), 4 frames, 2 workers."""
    root = tmp_path_factory.mktemp("native-store")
    return decode_frames.main(
        ["--items", str(damaged_catalogue), "--all-items", "--frames", "4", "--image-size", "64"]
        + ["--shard-size", "3", "--workers", "2", "--artifacts", str(root), "--quiet"]
    )


def test_ray_decoding_equals_direct_pyav_decoding(native_store: DecodeResult, chain: Chain) -> None:
    index = read_store_index(native_store.store_dir)
    rows = read_rows(native_store.store_dir, index["shard_file"], index["item_id"])
    assert sorted(rows) == sorted(chain.items.sort_values("item_id").head(GOOD_ITEMS)["item_id"])
    for row in rows.values():
        reference = _pyav_frames(row["video_path"])
        frames, thumbnail = row_pixels(row)
        assert row["frame_count"] == len(reference)
        assert row["frame_indices"] == uniform_frame_indices(len(reference), 4)
        np.testing.assert_array_equal(frames, np.stack([reference[index] for index in row["frame_indices"]]))
        thumbnail_path = chain.items.set_index("item_id").loc[row["item_id"], "thumbnail_path"]
        with Image.open(thumbnail_path) as image:
            np.testing.assert_array_equal(thumbnail, np.asarray(image.convert("RGB")))
        assert row["video_sha256"] == file_sha256(row["video_path"])


def test_corrupt_and_truncated_videos_land_in_the_error_table(native_store: DecodeResult) -> None:
    errors = pd.read_parquet(native_store.store_dir / ERRORS_FILE)
    assert sorted(errors["item_id"]) == ["zz-corrupt", "zz-truncated"]
    assert set(errors["stage"]) == {"decode"}
    assert all(errors["error"].str.len() > 0)
    assert native_store.counts == {
        "items": GOOD_ITEMS,
        "decoded": GOOD_ITEMS,
        "carried": 0,
        "errors": 2,
        "shards_run": 4,
        "shards_resumed": 0,
    }
    stored = sum(pq.read_metadata(path).num_rows for path in shard_files(native_store.store_dir))
    assert stored == GOOD_ITEMS
    assert read_manifest(native_store.store_dir)["counts"]["errors"] == 2


def test_model_sized_store_gives_the_model_the_same_input(
    chain: Chain, ray_address: str, tmp_path: Path, damaged_catalogue: Path
) -> None:
    """Frames resized for the model at decode time = frames decoded live and resized by the model's preprocessing."""
    from serendip.models.mllm.vision_inputs import VisionGeometry, image_input, video_input

    result = decode_frames.main(
        ["--items", str(damaged_catalogue), "--all-items", "--mllm", str(chain.mllm)]
        + ["--workers", "1", "--artifacts", str(tmp_path), "--quiet"]
    )
    geometry = VisionGeometry.from_dict(json.loads((chain.mllm / "model" / "vision.json").read_text()))
    settings = read_manifest(result.store_dir)["parameters"]["settings"]
    assert settings == {"num_frames": 2, "image_size": geometry.image_size, "size_multiple": geometry.factor}
    index = read_store_index(result.store_dir)
    for row in read_rows(result.store_dir, index["shard_file"], index["item_id"]).values():
        frames, thumbnail = row_pixels(row)
        assert frames.shape == (2, geometry.image_size, geometry.image_size, 3)
        live = sample_frames(row["video_path"], 2).frames
        assert np.array_equal(video_input(frames, geometry).pixel_values, video_input(live, geometry).pixel_values)
        thumbnail_path = chain.items.set_index("item_id").loc[row["item_id"], "thumbnail_path"]
        with Image.open(thumbnail_path) as image:
            original = np.asarray(image.convert("RGB"))
        assert np.array_equal(
            image_input(thumbnail, geometry).pixel_values, image_input(original, geometry).pixel_values
        )
