"""LIVE planning: the client of the ``mllm`` model on Triton."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from planner.content import ContextContent
from triton_models.client import TritonModelClient
from triton_models.specs import (
    CANDIDATES,
    CLUSTER_IDS,
    FRAMES,
    ITEM_ID,
    MLLM,
    NUM_CLUSTERS,
    REASONING,
    SCORES,
    THUMBNAIL,
    TITLE,
)


@dataclass(frozen=True)
class LivePlan:
    """The model's ranked clusters for one context."""

    clusters: list[tuple[str, float]]
    reasoning: str


@dataclass(frozen=True)
class PixelNeeds:
    """Which pixels the deployed MLLM reads (from its Triton config parameters)."""

    frames: int
    thumbnail: bool


class MllmClient(TritonModelClient):
    """Calls the Triton ``mllm`` model; failures become UnavailableError or DeadlineExceededError."""

    def __init__(self, url: str, model_name: str = MLLM.name, call_timeout_s: float = 30.0) -> None:
        super().__init__(url, MLLM, model_name, label="MLLM")
        self.call_timeout_s = call_timeout_s
        self._needs: PixelNeeds | None = None

    async def pixel_needs(self, timeout_s: float) -> PixelNeeds:
        """Frames/thumbnail the model was trained on, read once from its config parameters."""
        if self._needs is None:
            parameters = (await self.config(timeout_s)).parameters
            frames = parameters["frames"].string_value if "frames" in parameters else ""
            self._needs = PixelNeeds(frames=int(frames) if frames.isdigit() else 0, thumbnail=frames == "thumbnail")
        return self._needs

    async def rank(self, item_id: str, content: ContextContent, candidates: Sequence[str] | None, n: int) -> LivePlan:
        """Ranked clusters for one context, within ``call_timeout_s`` (a LIVE run outlives its callers)."""
        inputs = {
            ITEM_ID.name: np.array([[item_id.encode()]], dtype=np.object_),
            TITLE.name: np.array([[content.title.encode()]], dtype=np.object_),
            NUM_CLUSTERS.name: np.array([[n]]),
        }
        if content.frames is not None:
            inputs[FRAMES.name] = content.frames[None]
        if content.thumbnail is not None:
            inputs[THUMBNAIL.name] = content.thumbnail[None]
        if candidates:
            inputs[CANDIDATES.name] = np.array([[c.encode() for c in candidates]], dtype=np.object_)
        outputs = await self.infer(inputs, cap_s=self.call_timeout_s)
        cluster_ids = [c.decode() for c in outputs[CLUSTER_IDS.name][0]]
        scores = [float(s) for s in outputs[SCORES.name][0]]
        reasoning = outputs[REASONING.name][0][0].decode()
        return LivePlan(list(zip(cluster_ids, scores, strict=True)), reasoning)
