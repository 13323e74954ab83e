"""What the planner is asked about: a context item with its title and pixels, and what it answers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from serendip.core.errors import DataError
from serendip.core.frames import load_image, sample_frames
from serendip.models.mllm.errors import ContextError
from serendip.models.mllm.prompts import VisualSetting


@dataclass(frozen=True)
class PlanningContext:
    """A context item to plan for; which fields are needed depends on the engine's prompt variant."""

    item_id: str
    title: str = ""
    frames: np.ndarray | None = None
    """(n, H, W, 3) uint8 RGB frames in time order, uniformly sampled (resampled to the engine's count)."""
    thumbnail: np.ndarray | None = None
    """(H, W, 3) uint8 RGB thumbnail."""
    candidate_cluster_ids: Sequence[str] | None = None
    """Restrict the ranking to these clusters (e.g. the serendipitous siblings); None: every cluster."""


class RankedCluster(NamedTuple):
    """One entry of a ranked plan: cluster id, log-likelihood of its description, CoT reasoning (or None)."""

    cluster_id: str
    score: float
    reasoning: str | None


def load_context(
    item_id: str,
    title: str,
    visual: VisualSetting | None,
    video_path: str | os.PathLike[str] | None = None,
    thumbnail_path: str | os.PathLike[str] | None = None,
    candidate_cluster_ids: Sequence[str] | None = None,
) -> PlanningContext:
    """A context with the pixels ``visual`` asks for, decoded from files with the project's frame sampler."""
    frames = thumbnail = None
    try:
        if visual is not None and visual.thumbnail:
            if not thumbnail_path:
                raise ContextError(f"item {item_id!r} has no thumbnail, which this planner's prompts need")
            thumbnail = load_image(thumbnail_path)
        elif visual is not None:
            if not video_path:
                raise ContextError(f"item {item_id!r} has no video, which this planner's prompts need")
            frames = sample_frames(video_path, visual.frames).frames
    except (DataError, OSError) as error:
        raise ContextError(f"item {item_id!r}: cannot read its pixels ({error})") from error
    return PlanningContext(item_id, title, frames, thumbnail, candidate_cluster_ids)
