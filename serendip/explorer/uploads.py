"""An uploaded mp4 or JPEG turned into a request's ``context_content``.

An mp4 is decoded here with the project's sampler (the frames the Planner would sample from a catalogue
video) and sent as JPEG frames plus its most representative frame as thumbnail. Anything else is sent as it
came, as the thumbnail and the single frame: whether it is a usable JPEG is the Planner's call, and its
``INVALID_ARGUMENT`` message is what the page shows.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from serendip.artifacts.frames import DEFAULT_NUM_FRAMES, ITEM_ERRORS
from serendip.core.frames import sample_frames, select_thumbnail_index
from serendip.explorer.client import UploadedContent

MAX_UPLOAD_BYTES = 32 * 1024 * 1024
"""Larger uploads are refused before decoding."""


class UploadError(ValueError):
    """An upload the explorer cannot turn into content (the message says why)."""


def is_mp4(data: bytes) -> bool:
    """True for an ISO base media file (``ftyp`` box first): mp4, mov, m4v."""
    return len(data) >= 12 and data[4:8] == b"ftyp"


def content_from_upload(data: bytes, title: str, num_frames: int = DEFAULT_NUM_FRAMES) -> UploadedContent:
    """The context content of an uploaded file; UploadError for an empty, huge or undecodable mp4 upload."""
    if not data:
        raise UploadError("upload: the file is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(f"upload: {len(data)} bytes; at most {MAX_UPLOAD_BYTES}")
    if not is_mp4(data):
        return UploadedContent(frames_jpeg=(data,), thumbnail_jpeg=data, title=title)
    with tempfile.TemporaryDirectory(prefix="serendip-explorer-") as scratch:
        path = Path(scratch) / "upload.mp4"
        path.write_bytes(data)
        try:
            frames = sample_frames(path, num_frames).frames
        except ITEM_ERRORS as error:
            raise UploadError(f"upload: not a decodable video ({error})") from None
    jpegs = tuple(_jpeg(frame) for frame in frames)
    return UploadedContent(frames_jpeg=jpegs, thumbnail_jpeg=jpegs[select_thumbnail_index(frames)], title=title)


def _jpeg(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()
