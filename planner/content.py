"""Pixels and titles of context videos: from the request (JPEG bytes) or from the item store (mp4 files)."""

from __future__ import annotations

import asyncio
import io
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from serendip.artifacts.store import resolve_artifact
from serendip.artifacts.world import WORLD_KIND
from serendip.core.errors import DataError
from serendip.core.frames import load_image, sample_frames
from serendip.core.schema import load_items
from serendip.service.errors import InvalidArgumentError
from serendip.v1 import common_pb2

MAX_PIXELS_PER_IMAGE = 1024 * 1024
DECODER_NICE = 10
"""Niceness of the video-decoding worker: decoding for nearline and LIVE planning yields the cores to serving,
as the MLLM's own process does on CPU (``cpu_nice``)."""


@dataclass(frozen=True)
class ContextContent:
    """What the MLLM may look at for one context item."""

    title: str
    frames: np.ndarray | None
    thumbnail: np.ndarray | None

    @property
    def has_pixels(self) -> bool:
        """True when frames or a thumbnail are present."""
        return self.frames is not None or self.thumbnail is not None


def decode_jpeg(data: bytes, field: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB from JPEG bytes; InvalidArgumentError naming ``field`` when undecodable or huge."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS_PER_IMAGE:
                raise InvalidArgumentError(field, f"image is {image.width}x{image.height}; at most 1 megapixel")
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except UnidentifiedImageError:
        raise InvalidArgumentError(field, "is not a decodable JPEG image (unknown image format)") from None
    except (OSError, ValueError) as error:
        raise InvalidArgumentError(field, f"is not a decodable JPEG image ({type(error).__name__}: {error})") from None


def content_from_request(content: common_pb2.VideoContent) -> ContextContent:
    """Decode the request's frames and thumbnail; frames must share one size."""
    frames = None
    if content.frames_jpeg:
        decoded = [
            decode_jpeg(frame, f"context_content.frames_jpeg[{i}]") for i, frame in enumerate(content.frames_jpeg)
        ]
        if len({frame.shape for frame in decoded}) > 1:
            raise InvalidArgumentError("context_content.frames_jpeg", "all frames must have the same size")
        frames = np.stack(decoded)
    thumbnail = (
        decode_jpeg(content.thumbnail_jpeg, "context_content.thumbnail_jpeg") if content.thumbnail_jpeg else None
    )
    return ContextContent(content.title, frames, thumbnail)


class ItemStore:
    """Catalogue titles and media paths, for LIVE planning of items the request sends no pixels for."""

    def __init__(self, items: pd.DataFrame) -> None:
        self._rows = items.set_index("item_id")[["title", "video_path", "thumbnail_path"]].to_dict("index")
        self.impressions: dict[str, float] = (
            dict(zip(items["item_id"], items["impressions"].astype(float), strict=True))
            if "impressions" in items
            else {}
        )
        """item id -> catalogue impressions (empty when the catalogue has none)."""
        self._pool: ProcessPoolExecutor | None = None

    @classmethod
    def load(cls, path: Path) -> ItemStore:
        """``items.parquet`` itself, or a world artifact holding one (validated; bad rows are skipped)."""
        path = Path(path)
        items_path = path if path.suffix == ".parquet" else resolve_artifact(path, WORLD_KIND) / "items.parquet"
        items, _report = load_items(items_path)
        return cls(items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._rows

    def titles(self) -> dict[str, str]:
        """Item id -> title of every catalogue item."""
        return {item_id: row["title"] or "" for item_id, row in self._rows.items()}

    def thumbnails(self) -> dict[str, str]:
        """Item id -> thumbnail path of every catalogue item that has one."""
        return {item_id: row["thumbnail_path"] for item_id, row in self._rows.items() if row.get("thumbnail_path")}

    def title(self, item_id: str) -> str:
        """The item's title ('' when unknown)."""
        return (self._rows.get(item_id) or {}).get("title") or ""

    def content(self, item_id: str, num_frames: int, want_thumbnail: bool) -> ContextContent:
        """Decode ``num_frames`` uniformly sampled frames and/or the thumbnail; missing media stay None."""
        row = self._rows.get(item_id) or {}
        frames, thumbnail = decode_media(row.get("video_path"), row.get("thumbnail_path"), num_frames, want_thumbnail)
        return ContextContent(row.get("title") or "", frames, thumbnail)

    async def content_off_loop(self, item_id: str, num_frames: int, want_thumbnail: bool) -> ContextContent:
        """:meth:`content`, decoded in a worker process: video decoding in the serving process would hold its
        GIL for milliseconds at a time and stall every request it is answering."""
        row = self._rows.get(item_id) or {}
        loop = asyncio.get_running_loop()
        pixels = await loop.run_in_executor(
            self._decoder(), decode_media, row.get("video_path"), row.get("thumbnail_path"), num_frames, want_thumbnail
        )
        return ContextContent(row.get("title") or "", *pixels)

    def _decoder(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=os.nice,
                initargs=(DECODER_NICE,),
            )
        return self._pool


def decode_media(
    video_path: str | None, thumbnail_path: str | None, num_frames: int, want_thumbnail: bool
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Sampled frames and/or the thumbnail of one item; unreadable or missing media stay None (the planner falls
    back)."""
    frames = thumbnail = None
    try:
        if num_frames > 0 and video_path:
            frames = sample_frames(video_path, num_frames).frames
        if want_thumbnail and thumbnail_path:
            thumbnail = load_image(thumbnail_path)
    except (DataError, OSError):
        pass
    return frames, thumbnail
