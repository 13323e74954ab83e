"""Frame sampling, decoding, encoding and thumbnails against direct PyAV decoding."""

from __future__ import annotations

import hashlib
from pathlib import Path

import av
import numpy as np
import pytest

from serendip.artifacts.world import World
from serendip.core.errors import ConfigError, VideoDecodeError
from serendip.core.frames import (
    decode_frames,
    encode_video,
    probe_video,
    read_video,
    sample_frames,
    select_thumbnail_index,
    uniform_frame_indices,
)


def _pyav_frames(path: str | Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.mark.parametrize(
    ("frame_count", "num_frames", "expected"),
    [
        (24, 1, [12]),
        (24, 2, [6, 18]),
        (24, 4, [3, 9, 15, 21]),
        (24, 8, [1, 4, 7, 10, 13, 16, 19, 22]),
        (10, 3, [1, 5, 8]),
        (3, 5, [0, 0, 1, 2, 2]),
    ],
)
def test_uniform_indices_are_segment_middles(frame_count: int, num_frames: int, expected: list[int]) -> None:
    assert uniform_frame_indices(frame_count, num_frames) == expected


def test_uniform_indices_reject_empty_requests() -> None:
    with pytest.raises(ConfigError, match="frame_count"):
        uniform_frame_indices(0, 4)
    with pytest.raises(ConfigError, match="num_frames"):
        uniform_frame_indices(24, 0)


@pytest.mark.parametrize("num_frames", [1, 2, 4, 8])
def test_sampled_frames_equal_direct_pyav_decoding(world: World, num_frames: int) -> None:
    path = world.items["video_path"].iloc[3]
    reference = _pyav_frames(path)
    sample = sample_frames(path, num_frames)
    assert sample.indices == uniform_frame_indices(len(reference), num_frames)
    assert sample.frames.shape == (num_frames, 64, 64, 3)
    for index, frame in zip(sample.indices, sample.frames, strict=True):
        np.testing.assert_array_equal(frame, reference[index])


def test_decode_frames_any_order_and_repeats(world: World) -> None:
    path = world.items["video_path"].iloc[0]
    reference = _pyav_frames(path)
    frames = decode_frames(path, [20, 0, 20, 7])
    for frame, index in zip(frames, [20, 0, 20, 7], strict=True):
        np.testing.assert_array_equal(frame, reference[index])
    np.testing.assert_array_equal(read_video(path), np.stack(reference))


def test_encode_is_bit_exact_and_keeps_colours(tmp_path: Path) -> None:
    frames = np.zeros((12, 32, 48, 3), dtype=np.uint8)
    frames[:, :, :24] = (200, 40, 40)
    frames[6:, :, 24:] = (40, 40, 200)
    first, second = tmp_path / "a.mp4", tmp_path / "b.mp4"
    encode_video(frames, first, fps=8)
    encode_video(frames, second, fps=8)
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
    info = probe_video(first)
    assert (info.frame_count, info.width, info.height, info.fps) == (12, 48, 32, 8.0)
    decoded = read_video(first)
    assert np.abs(decoded[:, 8:24, 4:20].astype(int) - (200, 40, 40)).max() <= 12
    assert np.abs(decoded[8, 8:24, 28:44].astype(int) - (40, 40, 200)).max() <= 12


def test_corrupt_and_missing_videos_raise_video_decode_error(world: World, tmp_path: Path) -> None:
    source = Path(world.items["video_path"].iloc[0]).read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(source[: len(source) // 3])
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video" * 50)
    for path in (truncated, garbage, tmp_path / "missing.mp4"):
        with pytest.raises(VideoDecodeError, match=path.name):
            sample_frames(path, 4)
        with pytest.raises(VideoDecodeError):
            read_video(path)


def test_index_past_the_end_is_reported(world: World) -> None:
    with pytest.raises(VideoDecodeError, match="frame 24 requested but only 24 frames"):
        decode_frames(world.items["video_path"].iloc[0], [0, 24])


def test_thumbnail_is_the_frame_showing_most_colours() -> None:
    frames = np.zeros((16, 32, 32, 3), dtype=np.uint8)
    frames[:] = (30, 30, 100)
    frames[9:14, :8, :8] = (230, 230, 30)  # an extra colour in frames 9..13
    assert select_thumbnail_index(frames) == 11
    frames[:, 0, 0] = (250, 0, 0)  # a 1-pixel speck is below the colour-presence threshold
    assert select_thumbnail_index(frames) == 11
