"""Video I/O with PyAV: mp4 encoding, frame counting, uniform frame sampling, thumbnails.

This is the single frame-sampling implementation of the project: curation (SFT examples), the MLLM trainer
and the Ray decoding job all call :func:`uniform_frame_indices` and :func:`decode_frames`, so a frame index
written in an SFT example always means the same pixels.

Frame indices count decoded frames in presentation order, from 0.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import Image

from serendip.core.errors import ConfigError, VideoDecodeError

THUMBNAIL_MIN_COLOUR_FRACTION = 0.02
"""A quantised colour counts as present in a frame when it covers at least this fraction of its pixels."""


@dataclass(frozen=True)
class VideoInfo:
    """Container metadata of one video stream."""

    frame_count: int
    fps: float
    width: int
    height: int


@dataclass(frozen=True)
class SampledFrames:
    """Frames decoded from a video and the indices they were taken at."""

    indices: list[int]
    frames: np.ndarray  # (n, height, width, 3) uint8 RGB


def uniform_frame_indices(frame_count: int, num_frames: int) -> list[int]:
    """Indices of ``num_frames`` frames spread uniformly over a video of ``frame_count`` frames.

    The video is cut into ``num_frames`` equal segments and the middle frame of each is taken:
    ``floor((2 i + 1) * frame_count / (2 * num_frames))``. One frame is the middle frame; a video shorter
    than ``num_frames`` repeats frames so the caller always gets ``num_frames`` of them.
    """
    if frame_count < 1:
        raise ConfigError(f"frame_count must be >= 1, got {frame_count}")
    if num_frames < 1:
        raise ConfigError(f"num_frames must be >= 1, got {num_frames}")
    return [((2 * i + 1) * frame_count) // (2 * num_frames) for i in range(num_frames)]


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Read stream metadata; counts frames by decoding when the container does not store the count."""
    try:
        with av.open(os.fspath(path)) as container:
            if not container.streams.video:
                raise VideoDecodeError(f"{path}: no video stream")
            stream = container.streams.video[0]
            frame_count = stream.frames
            if frame_count <= 0:
                frame_count = sum(1 for _ in container.decode(stream))
            fps = float(stream.average_rate) if stream.average_rate else 0.0
            return VideoInfo(frame_count, fps, stream.codec_context.width, stream.codec_context.height)
    except (av.error.FFmpegError, OSError) as error:
        raise VideoDecodeError(f"{path}: cannot read video ({error})") from error


def read_video(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode every frame: (frame_count, height, width, 3) uint8 RGB."""
    frames = _decode(path, stop_after=None)
    if not frames:
        raise VideoDecodeError(f"{path}: no decodable frame")
    return np.stack(frames)  # type: ignore[arg-type]


def decode_frames(path: str | os.PathLike[str], indices: Sequence[int]) -> np.ndarray:
    """Decode the frames at ``indices`` (any order, repeats allowed): (len(indices), H, W, 3) uint8 RGB.

    Decodes sequentially from the start, which is exact for any codec and cheap for short clips.
    Raises :class:`VideoDecodeError` for a missing/corrupt file or an index past the last decodable frame.
    """
    if not indices:
        raise ConfigError("decode_frames needs at least one frame index")
    if min(indices) < 0:
        raise ConfigError(f"frame indices must be >= 0, got {min(indices)}")
    last_index = max(indices)
    frames = _decode(path, stop_after=last_index, wanted=set(indices))
    if len(frames) <= last_index:
        raise VideoDecodeError(
            f"{path}: frame {last_index} requested but only {len(frames)} frames decode (truncated video?)"
        )
    return np.stack([frames[index] for index in indices])  # type: ignore[misc]


def sample_frames(path: str | os.PathLike[str], num_frames: int, frame_count: int | None = None) -> SampledFrames:
    """Decode ``num_frames`` uniformly sampled frames (see :func:`uniform_frame_indices`)."""
    total = frame_count if frame_count is not None else probe_video(path).frame_count
    indices = uniform_frame_indices(total, num_frames)
    return SampledFrames(indices, decode_frames(path, indices))


def _decode(
    path: str | os.PathLike[str], stop_after: int | None, wanted: set[int] | None = None
) -> list[np.ndarray | None]:
    """Decode frames 0..stop_after (all when None) in presentation order; only ``wanted`` ones become RGB.

    Single-threaded decoding and one reformatter per video: for short clips, decoder thread start-up and
    per-frame colour-conversion set-up would otherwise cost more than the decoding itself.
    """
    if not Path(path).is_file():
        raise VideoDecodeError(f"{path}: video file does not exist")
    frames: list[np.ndarray | None] = []
    reformatter = VideoReformatter()
    try:
        with av.open(os.fspath(path)) as container:
            if not container.streams.video:
                raise VideoDecodeError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1
            for frame in container.decode(stream):
                keep = wanted is None or len(frames) in wanted
                frames.append(reformatter.reformat(frame, format="rgb24").to_ndarray() if keep else None)
                if stop_after is not None and len(frames) > stop_after:
                    break
    except av.error.FFmpegError as error:
        if stop_after is not None and len(frames) > stop_after:
            return frames
        raise VideoDecodeError(f"{path}: corrupt video after {len(frames)} frames ({error})") from error
    return frames


def encode_video(frames: np.ndarray, path: str | os.PathLike[str], fps: int, crf: int = 18) -> None:
    """Encode (n, H, W, 3) uint8 RGB frames as an H.264 mp4 (yuv420p; H and W must be even).

    Reproducible: the same frames always give the same bytes, so content hashes are stable. x264 runs
    single-threaded with psychovisual RD, adaptive quantisation and the macroblock tree off -- with them on,
    identical frames were measured to encode to different bytes in ~3 % of clips.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ConfigError(f"frames must be (n, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ConfigError(f"H.264 yuv420p needs even frame sizes, got {width}x{height}")
    with av.open(os.fspath(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {
            "crf": str(crf),
            "preset": "veryfast",
            "threads": "1",
            "x264-params": "psy=0:aq-mode=0:mbtree=0",
        }
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def select_thumbnail_index(frames: np.ndarray) -> int:
    """Index of the most representative frame: the one showing the most of the video's colours.

    Colours are quantised to 4 levels per channel; a colour is present in a frame when it covers
    ``THUMBNAIL_MIN_COLOUR_FRACTION`` of it. The score of a frame is how many of the colours present anywhere
    in the video it shows; ties go to the tied frame nearest the tied frames' median (the middle of a scene).
    """
    if len(frames) == 0:
        raise ConfigError("select_thumbnail_index needs at least one frame")
    quantised = (frames.astype(np.int32) >> 6).reshape(len(frames), -1, 3)
    codes = quantised[..., 0] * 16 + quantised[..., 1] * 4 + quantised[..., 2]
    histograms = np.stack([np.bincount(frame_codes, minlength=64) for frame_codes in codes])
    present = histograms / codes.shape[1] >= THUMBNAIL_MIN_COLOUR_FRACTION
    video_colours = present.any(axis=0)
    scores = present[:, video_colours].sum(axis=1)
    best = np.flatnonzero(scores == scores.max())
    median = np.median(best)
    return int(best[np.argmin(np.abs(best - median))])


def save_jpeg(frame: np.ndarray, path: str | os.PathLike[str], quality: int = 92) -> None:
    """Write one (H, W, 3) uint8 RGB frame as a JPEG."""
    Image.fromarray(frame).save(os.fspath(path), format="JPEG", quality=quality)


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file (e.g. a thumbnail) as (H, W, 3) uint8 RGB."""
    try:
        with Image.open(os.fspath(path)) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as error:
        raise VideoDecodeError(f"{path}: cannot read image ({error})") from error


def make_thumbnail(video_path: str | os.PathLike[str], jpeg_path: str | os.PathLike[str]) -> int:
    """Decode a video, write its most representative frame as a JPEG, and return that frame's index."""
    frames = read_video(video_path)
    index = select_thumbnail_index(frames)
    save_jpeg(frames[index], jpeg_path)
    return index


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """Resize (n, H, W, 3) frames to (n, size, size, 3) with bilinear filtering (model input size)."""
    if frames.shape[1] == size and frames.shape[2] == size:
        return frames
    return np.stack(
        [np.asarray(Image.fromarray(frame).resize((size, size), Image.Resampling.BILINEAR)) for frame in frames]
    )


def frame_visual_features(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Visual features of a set of frames (averaged over them): ``histogram``, a position-free 64-bin colour
    histogram (which colours, how much), and ``grid2`` / ``grid4``, mean colours on 2x2 and 4x4 grids (where)."""
    count, height, width, _ = frames.shape
    frames = frames[:, : height - height % 4, : width - width % 4]
    height, width = frames.shape[1:3]
    quantised = frames.astype(np.int32) >> 6
    codes = (quantised[..., 0] * 16 + quantised[..., 1] * 4 + quantised[..., 2]).reshape(-1)
    return {
        "histogram": np.bincount(codes, minlength=64) / codes.size,
        "grid2": frames.reshape(count, 2, height // 2, 2, width // 2, 3).mean(axis=(0, 2, 4)).reshape(-1) / 255,
        "grid4": frames.reshape(count, 4, height // 4, 4, width // 4, 3).mean(axis=(0, 2, 4)).reshape(-1) / 255,
    }
