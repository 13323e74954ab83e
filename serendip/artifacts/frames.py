"""The frame store: per catalogue item, N uniformly sampled frames and a thumbnail, resized for the model.

A ``frames`` artifact (``<artifacts>/frames/<version>/``) holds::

    shards/shard-<run>-<nnnnn>.parquet   one row per item (FRAME_SCHEMA), written by one decoding shard each
    errors.parquet                       items that could not be decoded (ERROR_SCHEMA): never in a shard
    manifest.json                        decode settings, inputs, counts

Pixels are stored as raw uint8 RGB bytes in C order with their shape in separate columns (no pickle, no
image codec: a row round-trips bit-exactly). Frames are sampled with the project's one sampler
(``serendip.core.frames.sample_frames``), so the stored pixels equal what the LIVE planner decodes from the
same file; they are resized with the model's own rule (longer side to ``image_size``, both sides rounded to a
multiple of the patch block, PIL bicubic), so the model input built from a stored row equals the one built
from the freshly decoded frames.

``content_sha256`` of a row hashes the title, the video and thumbnail file hashes and the decode settings:
the batch planner re-plans an item exactly when it changes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from serendip.artifacts.store import file_sha256
from serendip.core.errors import ConfigError, DataError
from serendip.core.frames import SampledFrames, load_image, probe_video, sample_frames, select_thumbnail_index

FRAMES_KIND = "frames"
SHARDS_DIR = "shards"
ERRORS_FILE = "errors.parquet"
DEFAULT_NUM_FRAMES = 4
DEFAULT_IMAGE_SIZE = 32
THUMBNAIL_FROM_FILE = "file"
THUMBNAIL_FROM_FRAMES = "sampled_frames"

FRAME_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("title", pa.string()),
        ("video_path", pa.string()),
        ("video_sha256", pa.string()),
        ("thumbnail_sha256", pa.string()),
        ("thumbnail_source", pa.string()),
        ("content_sha256", pa.string()),
        ("frame_count", pa.int32()),
        ("frame_indices", pa.list_(pa.int32())),
        ("frame_height", pa.int32()),
        ("frame_width", pa.int32()),
        ("frames", pa.binary()),
        ("thumbnail_height", pa.int32()),
        ("thumbnail_width", pa.int32()),
        ("thumbnail", pa.binary()),
    ]
)
"""One row per item; ``frames`` holds (len(frame_indices), frame_height, frame_width, 3) uint8 bytes."""

ERROR_SCHEMA = pa.schema(
    [("item_id", pa.string()), ("video_path", pa.string()), ("stage", pa.string()), ("error", pa.string())]
)
"""One row per item left out of the store: ``stage`` is ``hash`` (file unreadable) or ``decode``."""

ITEM_ERRORS = (DataError, OSError, av.error.FFmpegError)
"""What a bad video or thumbnail raises; anything else is a bug and fails the shard."""


@dataclass(frozen=True)
class DecodeSettings:
    """How items are decoded; part of every row's content hash."""

    num_frames: int = DEFAULT_NUM_FRAMES
    image_size: int = DEFAULT_IMAGE_SIZE
    """The longer side of stored frames and thumbnails (the model's vision input side)."""
    size_multiple: int = 1
    """Both stored sides are rounded to a multiple of this (the model's patch size x spatial merge size)."""

    def __post_init__(self) -> None:
        if self.num_frames < 1:
            raise ConfigError(f"num_frames must be >= 1, got {self.num_frames}")
        if self.size_multiple < 1 or self.image_size < self.size_multiple:
            raise ConfigError(f"image_size ({self.image_size}) must be >= size_multiple ({self.size_multiple}) >= 1")

    def to_dict(self) -> dict[str, int]:
        """JSON-ready dict (manifest parameters)."""
        return asdict(self)

    def stored_shape(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) of a stored frame: the model's resize rule (``vision_inputs._resized_shape``)."""
        scale = self.image_size / max(height, width)
        multiple = self.size_multiple
        return (
            max(multiple, round(height * scale / multiple) * multiple),
            max(multiple, round(width * scale / multiple) * multiple),
        )

    def resize(self, frames: np.ndarray) -> np.ndarray:
        """(n, H, W, 3) uint8 -> (n, h, w, 3) at :meth:`stored_shape`, PIL bicubic as the model's preprocessing."""
        height, width = self.stored_shape(frames.shape[1], frames.shape[2])
        if (height, width) == frames.shape[1:3]:
            return frames
        return np.stack(
            [np.asarray(Image.fromarray(frame).resize((width, height), Image.Resampling.BICUBIC)) for frame in frames]
        )


@dataclass(frozen=True)
class ItemMedia:
    """What the decoder needs about one item, with the hashes of its files."""

    item_id: str
    title: str
    video_path: str
    thumbnail_path: str | None
    video_sha256: str
    thumbnail_sha256: str | None
    content_sha256: str


def content_sha256(title: str, video_sha256: str, thumbnail_sha256: str | None, settings: DecodeSettings) -> str:
    """Hash of everything a stored row (and hence a plan) depends on."""
    document = {
        "title": title,
        "video_sha256": video_sha256,
        "thumbnail_sha256": thumbnail_sha256,
        "settings": settings.to_dict(),
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def fingerprint_items(
    items: pd.DataFrame, settings: DecodeSettings, threads: int = 8
) -> tuple[list[ItemMedia], pd.DataFrame]:
    """Hash every item's video and thumbnail file; returns (hashed items by item id, errors as ERROR_SCHEMA rows).

    ``items`` has the validated schema of ``serendip.core.schema`` (item_id, title, video_path, thumbnail_path);
    an item with neither a video nor a thumbnail, or with an unreadable file, becomes an error row of stage
    ``hash``. An item with a thumbnail and no video (a catalogue of images) gets ``video_path`` "".
    """

    def hash_one(row: tuple[str, str, Any, Any]) -> ItemMedia | dict[str, str]:
        item_id, title, video_path, thumbnail_path = row
        if not video_path and not thumbnail_path:
            return {"item_id": item_id, "video_path": "", "stage": "hash", "error": "item has no video_path"}
        try:
            video_sha = file_sha256(video_path) if video_path else ""
            thumbnail_sha = file_sha256(thumbnail_path) if thumbnail_path else None
        except OSError as error:
            return {"item_id": item_id, "video_path": str(video_path), "stage": "hash", "error": str(error)}
        content = content_sha256(title, video_sha, thumbnail_sha, settings)
        video = str(video_path) if video_path else ""
        return ItemMedia(item_id, title, video, thumbnail_path or None, video_sha, thumbnail_sha, content)

    rows = list(
        items.sort_values("item_id")[["item_id", "title", "video_path", "thumbnail_path"]].itertuples(
            index=False, name=None
        )
    )
    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(hash_one, rows))
    media = [result for result in results if isinstance(result, ItemMedia)]
    errors = [result for result in results if isinstance(result, dict)]
    return media, pd.DataFrame(errors, columns=ERROR_SCHEMA.names)


def decode_item(media: ItemMedia, settings: DecodeSettings) -> dict[str, Any]:
    """Sample, thumbnail and resize one item: a FRAME_SCHEMA row. Raises one of ITEM_ERRORS for a bad file.

    The thumbnail is the item's thumbnail file when it has one, else the most representative sampled frame
    (``select_thumbnail_index``). An item without a video stores its thumbnail as each of its frames (frame
    count 1, every index 0).
    """
    if not media.video_path:
        poster = load_image(media.thumbnail_path or "")
        frame_count = 1
        sampled = SampledFrames([0] * settings.num_frames, np.repeat(poster[None], settings.num_frames, axis=0))
    else:
        frame_count = probe_video(media.video_path).frame_count
        sampled = sample_frames(media.video_path, settings.num_frames, frame_count=frame_count)
    if media.thumbnail_path:
        thumbnail, source = load_image(media.thumbnail_path), THUMBNAIL_FROM_FILE
    else:
        thumbnail, source = sampled.frames[select_thumbnail_index(sampled.frames)], THUMBNAIL_FROM_FRAMES
    frames = settings.resize(sampled.frames)
    thumbnail = settings.resize(thumbnail[None])[0]
    return {
        "item_id": media.item_id,
        "title": media.title,
        "video_path": media.video_path,
        "video_sha256": media.video_sha256,
        "thumbnail_sha256": media.thumbnail_sha256,
        "thumbnail_source": source,
        "content_sha256": media.content_sha256,
        "frame_count": frame_count,
        "frame_indices": sampled.indices,
        "frame_height": frames.shape[1],
        "frame_width": frames.shape[2],
        "frames": np.ascontiguousarray(frames).tobytes(),
        "thumbnail_height": thumbnail.shape[0],
        "thumbnail_width": thumbnail.shape[1],
        "thumbnail": np.ascontiguousarray(thumbnail).tobytes(),
    }


def decode_items(
    media: Iterable[ItemMedia], settings: DecodeSettings
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Decode each item; a bad file becomes an error row (stage ``decode``) instead of an exception."""
    rows, errors = [], []
    for item in media:
        try:
            rows.append(decode_item(item, settings))
        except ITEM_ERRORS as error:
            message = str(error) or type(error).__name__
            errors.append({"item_id": item.item_id, "video_path": item.video_path, "stage": "decode", "error": message})
    return rows, errors


def frames_table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    """FRAME_SCHEMA table of decoded rows."""
    return pa.Table.from_pylist(list(rows), schema=FRAME_SCHEMA)


def errors_table(rows: Sequence[dict[str, str]] | pd.DataFrame) -> pa.Table:
    """ERROR_SCHEMA table of error rows."""
    if isinstance(rows, pd.DataFrame):
        return pa.Table.from_pandas(rows, schema=ERROR_SCHEMA, preserve_index=False)
    return pa.Table.from_pylist(list(rows), schema=ERROR_SCHEMA)


def row_pixels(row: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(frames (n, h, w, 3), thumbnail (h, w, 3)) uint8 arrays of a stored row."""
    frames = np.frombuffer(row["frames"], dtype=np.uint8).reshape(
        len(row["frame_indices"]), row["frame_height"], row["frame_width"], 3
    )
    thumbnail = np.frombuffer(row["thumbnail"], dtype=np.uint8).reshape(
        row["thumbnail_height"], row["thumbnail_width"], 3
    )
    return frames, thumbnail


def shard_files(store_dir: str | os.PathLike[str]) -> list[Path]:
    """The shard files of a frame store version, sorted."""
    return sorted((Path(store_dir) / SHARDS_DIR).glob("*.parquet"))


def read_store_index(store_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """item_id, content_sha256 and shard_file (name under shards/) of every stored item; reads two columns only."""
    parts = []
    for path in shard_files(store_dir):
        index = pq.read_table(path, columns=["item_id", "content_sha256"]).to_pandas()
        parts.append(index.assign(shard_file=path.name))
    if not parts:
        return pd.DataFrame(columns=["item_id", "content_sha256", "shard_file"])
    return pd.concat(parts, ignore_index=True)


def read_rows(
    store_dir: str | os.PathLike[str], shard_names: Iterable[str], item_ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """Stored rows of ``item_ids`` from the named shard files, by item id."""
    wanted = sorted(set(item_ids))
    rows: dict[str, dict[str, Any]] = {}
    for name in sorted(set(shard_names)):
        table = pq.read_table(Path(store_dir) / SHARDS_DIR / name, filters=[("item_id", "in", wanted)])
        rows.update((row["item_id"], row) for row in table.to_pylist())
    return rows


def read_errors(store_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """The error table of a frame store version."""
    return pd.read_parquet(Path(store_dir) / ERRORS_FILE)
