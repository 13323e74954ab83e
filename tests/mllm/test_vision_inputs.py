"""Frames -> Qwen2-VL patches without torchvision: same layout as transformers' own processors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from serendip.models.mllm.errors import MllmConfigError
from serendip.models.mllm.vision_inputs import VisionGeometry, batch_visual_tensors, image_input, video_input

GEOMETRY = VisionGeometry(patch_size=8, temporal_patch_size=2, spatial_merge_size=2, image_size=32)


def test_image_patches_match_transformers_processor() -> None:
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    processor = Qwen2VLImageProcessorPil(
        patch_size=8, temporal_patch_size=2, merge_size=2, size={"shortest_edge": 1024, "longest_edge": 1024}
    )
    expected = processor(images=[image], return_tensors="np")
    ours = image_input(image, GEOMETRY)
    assert ours.grid_thw == tuple(expected["image_grid_thw"][0])
    np.testing.assert_allclose(ours.pixel_values.numpy(), expected["pixel_values"], atol=1e-5)


def test_video_pads_odd_frame_counts_and_counts_tokens() -> None:
    frames = np.zeros((3, 64, 32, 3), dtype=np.uint8)
    video = video_input(frames, GEOMETRY)
    assert video.kind == "video"
    assert video.grid_thw == (2, 4, 2)  # 3 frames -> 4 (last repeated); 64x32 -> 32x16 pixels -> 4x2 patches
    assert video.num_tokens == 2 * 4 * 2 // 4
    assert video.pixel_values.shape == (2 * 4 * 2, 3 * 2 * 8 * 8)


def test_batch_tensors_keep_images_and_videos_apart() -> None:
    frames = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    visuals = [video_input(frames, GEOMETRY), None, image_input(frames[0], GEOMETRY), video_input(frames, GEOMETRY)]
    tensors = batch_visual_tensors(visuals)
    assert tensors["video_grid_thw"].tolist() == [[2, 4, 4], [2, 4, 4]]
    assert tensors["image_grid_thw"].tolist() == [[1, 4, 4]]
    assert tensors["pixel_values_videos"].shape[0] == 64 and tensors["pixel_values"].shape[0] == 16
    assert tensors["pixel_values"].dtype == torch.float32


def test_geometry_errors_are_explicit() -> None:
    with pytest.raises(MllmConfigError, match="multiple of"):
        VisionGeometry(patch_size=8, temporal_patch_size=2, spatial_merge_size=2, image_size=40)
    with pytest.raises(MllmConfigError, match="uint8"):
        video_input(np.zeros((2, 32, 32, 3), dtype=np.float32), GEOMETRY)
