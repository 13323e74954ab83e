"""Frames and thumbnails -> Qwen2-VL's flat patch tensors and (t, h, w) grids, without torchvision.

Reproduces the layout of transformers' ``Qwen2VLVideoProcessor`` / ``Qwen2VLImageProcessor`` ``patchify``
(their fast processors need torchvision, which has no CPU wheel here): frames are resized so both sides are
multiples of ``patch_size * spatial_merge_size``, scaled to [0, 1], normalised with the CLIP mean/std, padded to a
multiple of ``temporal_patch_size`` frames by repeating the last one, and cut into patches ordered by
(t, h-block, w-block, h-in-block, w-in-block) with each patch flattened as (channel, time, y, x).

A video of ``n`` frames becomes ``ceil(n / temporal_patch_size) * (h/patch) * (w/patch)`` patches and
``/ spatial_merge_size**2`` LLM tokens; a thumbnail is one image (its single frame repeated in time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from serendip.models.mllm.errors import MllmConfigError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
DEFAULT_IMAGE_SIZE = 32
VisualKind = Literal["video", "image"]


@dataclass(frozen=True)
class VisionGeometry:
    """How frames are cut into patches for one model: its patch sizes plus the side frames are resized to."""

    patch_size: int
    temporal_patch_size: int
    spatial_merge_size: int
    image_size: int = DEFAULT_IMAGE_SIZE
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD

    def __post_init__(self) -> None:
        if self.image_size % self.factor:
            raise MllmConfigError(
                f"image_size {self.image_size} must be a multiple of patch_size * spatial_merge_size = {self.factor}"
            )

    @property
    def factor(self) -> int:
        """Both resized sides are multiples of this."""
        return self.patch_size * self.spatial_merge_size

    @classmethod
    def from_model_config(cls, config: Any, image_size: int = DEFAULT_IMAGE_SIZE) -> VisionGeometry:
        """Patch sizes of a Qwen2-VL config; ``image_size`` is rounded to the nearest allowed side (>= 1 block)."""
        vision = config.vision_config
        patch_size, merge_size = int(vision.patch_size), int(vision.spatial_merge_size)
        factor = patch_size * merge_size
        return cls(
            patch_size=patch_size,
            temporal_patch_size=int(vision.temporal_patch_size),
            spatial_merge_size=merge_size,
            image_size=max(factor, round(image_size / factor) * factor),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (stored as ``vision.json`` next to the model)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> VisionGeometry:
        """Inverse of :meth:`to_dict`."""
        return cls(
            patch_size=int(document["patch_size"]),
            temporal_patch_size=int(document["temporal_patch_size"]),
            spatial_merge_size=int(document["spatial_merge_size"]),
            image_size=int(document["image_size"]),
            mean=tuple(document["mean"]),
            std=tuple(document["std"]),
        )


@dataclass(frozen=True)
class VisualInput:
    """One video or image ready for Qwen2-VL: flat patches and its (t, h, w) patch grid."""

    kind: VisualKind
    pixel_values: torch.Tensor  # (t * h * w, channels * temporal_patch_size * patch_size**2) float32
    grid_thw: tuple[int, int, int]
    spatial_merge_size: int

    @property
    def num_tokens(self) -> int:
        """How many ``<|video_pad|>`` / ``<|image_pad|>`` tokens stand for it in the prompt."""
        t, h, w = self.grid_thw
        return t * h * w // self.spatial_merge_size**2


def _resized_shape(height: int, width: int, geometry: VisionGeometry) -> tuple[int, int]:
    scale = geometry.image_size / max(height, width)
    factor = geometry.factor
    return (
        max(factor, round(height * scale / factor) * factor),
        max(factor, round(width * scale / factor) * factor),
    )


def _normalised(frames: np.ndarray, geometry: VisionGeometry) -> np.ndarray:
    """(n, H, W, 3) uint8 -> (n, 3, h, w) float32, resized and normalised."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise MllmConfigError(f"frames must be (n, H, W, 3) uint8 RGB, got {frames.shape} {frames.dtype}")
    height, width = _resized_shape(frames.shape[1], frames.shape[2], geometry)
    resized = np.stack(
        [
            np.asarray(Image.fromarray(frame).resize((width, height), Image.Resampling.BICUBIC))
            if frame.shape[:2] != (height, width)
            else frame
            for frame in frames
        ]
    )
    scaled = resized.astype(np.float32) / 255.0
    normalised = (scaled - np.asarray(geometry.mean, np.float32)) / np.asarray(geometry.std, np.float32)
    return np.ascontiguousarray(normalised.transpose(0, 3, 1, 2))


def _patchify(frames: np.ndarray, geometry: VisionGeometry) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """(n, 3, h, w) float32 -> flat patches in Qwen2-VL's order and the (t, h, w) grid."""
    temporal, merge, patch = geometry.temporal_patch_size, geometry.spatial_merge_size, geometry.patch_size
    if pad := -len(frames) % temporal:
        frames = np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)])
    num_frames, channels, height, width = frames.shape
    grid_t, grid_h, grid_w = num_frames // temporal, height // patch, width // patch
    patches = frames.reshape(
        grid_t, temporal, channels, grid_h // merge, merge, patch, grid_w // merge, merge, patch
    ).transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    flat = patches.reshape(grid_t * grid_h * grid_w, channels * temporal * patch * patch)
    return torch.from_numpy(np.ascontiguousarray(flat)), (grid_t, grid_h, grid_w)


def video_input(frames: np.ndarray, geometry: VisionGeometry) -> VisualInput:
    """Sampled frames (n, H, W, 3) uint8 RGB, in time order -> one Qwen2-VL video input."""
    pixel_values, grid = _patchify(_normalised(frames, geometry), geometry)
    return VisualInput("video", pixel_values, grid, geometry.spatial_merge_size)


def image_input(image: np.ndarray, geometry: VisionGeometry) -> VisualInput:
    """One image (H, W, 3) uint8 RGB, e.g. a thumbnail -> one Qwen2-VL image input."""
    if image.ndim != 3:
        raise MllmConfigError(f"an image must be (H, W, 3) uint8 RGB, got shape {image.shape}")
    pixel_values, grid = _patchify(_normalised(image[None], geometry), geometry)
    return VisualInput("image", pixel_values, grid, geometry.spatial_merge_size)


def pixels_to_input(pixels: np.ndarray, geometry: VisionGeometry, as_image: bool) -> VisualInput:
    """A thumbnail (H, W, 3) as an image input, or sampled frames (n, H, W, 3) as a video input."""
    return image_input(pixels, geometry) if as_image else video_input(pixels, geometry)


def batch_visual_tensors(visuals: Sequence[VisualInput | None]) -> dict[str, torch.Tensor]:
    """Model kwargs for a batch: ``pixel_values(_videos)`` and ``image/video_grid_thw`` in batch order."""
    tensors: dict[str, torch.Tensor] = {}
    for kind, values_key, grid_key in (
        ("video", "pixel_values_videos", "video_grid_thw"),
        ("image", "pixel_values", "image_grid_thw"),
    ):
        chosen = [visual for visual in visuals if visual is not None and visual.kind == kind]
        if chosen:
            tensors[values_key] = torch.cat([visual.pixel_values for visual in chosen])
            tensors[grid_key] = torch.tensor([visual.grid_thw for visual in chosen], dtype=torch.long)
    return tensors
