"""LIVE planning: the client of the ``mllm`` model on Triton."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tritonclient.grpc.aio as triton_aio
from tritonclient.utils import InferenceServerException

from planner.content import ContextContent
from serendip.artifacts.model_repository import MLLM_MODEL
from serendip.service.errors import DeadlineExceededError, UnavailableError
from triton_models.client import triton_aio_client


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


class MllmClient:
    """Calls the Triton ``mllm`` model; failures become UnavailableError or DeadlineExceededError."""

    def __init__(self, url: str, model_name: str = MLLM_MODEL, call_timeout_s: float = 30.0) -> None:
        self.url = url
        self.model_name = model_name
        self.call_timeout_s = call_timeout_s
        self._client: triton_aio.InferenceServerClient | None = None
        self._needs: PixelNeeds | None = None

    def _connection(self) -> triton_aio.InferenceServerClient:
        if self._client is None:
            self._client = triton_aio_client(self.url)
        return self._client

    async def pixel_needs(self, timeout_s: float) -> PixelNeeds:
        """Frames/thumbnail the model was trained on, read once from its config parameters."""
        if self._needs is None:
            try:
                config = await self._connection().get_model_config(self.model_name, client_timeout=timeout_s)
            except InferenceServerException as error:
                raise UnavailableError(f"MLLM at {self.url} is unavailable: {error.message()}") from error
            frames = config.config.parameters["frames"].string_value if "frames" in config.config.parameters else ""
            self._needs = PixelNeeds(frames=int(frames) if frames.isdigit() else 0, thumbnail=frames == "thumbnail")
        return self._needs

    async def rank(self, item_id: str, content: ContextContent, candidates: Sequence[str] | None, n: int) -> LivePlan:
        """Ranked clusters for one context, within ``call_timeout_s`` (a LIVE run outlives its callers)."""
        inputs = [
            _tensor("ITEM_ID", np.array([[item_id.encode()]], dtype=np.object_)),
            _tensor("TITLE", np.array([[content.title.encode()]], dtype=np.object_)),
            _tensor("NUM_CLUSTERS", np.array([[n]], dtype=np.int32)),
        ]
        if content.frames is not None:
            inputs.append(_tensor("FRAMES", content.frames[None]))
        if content.thumbnail is not None:
            inputs.append(_tensor("THUMBNAIL", content.thumbnail[None]))
        if candidates:
            inputs.append(_tensor("CANDIDATES", np.array([[c.encode() for c in candidates]], dtype=np.object_)))
        try:
            result = await self._connection().infer(self.model_name, inputs, client_timeout=self.call_timeout_s)
        except InferenceServerException as error:
            if "DEADLINE_EXCEEDED" in (error.status() or ""):
                raise DeadlineExceededError("the MLLM did not answer in time") from error
            raise UnavailableError(f"MLLM at {self.url} is unavailable: {error.message()}") from error
        cluster_ids = [c.decode() for c in result.as_numpy("CLUSTER_IDS")[0]]
        scores = [float(s) for s in result.as_numpy("SCORES")[0]]
        reasoning = result.as_numpy("REASONING")[0][0].decode()
        return LivePlan(list(zip(cluster_ids, scores, strict=True)), reasoning)


def _tensor(name: str, values: np.ndarray) -> triton_aio.InferInput:
    datatype = "BYTES" if values.dtype == np.object_ else {np.uint8: "UINT8", np.int32: "INT32"}[values.dtype.type]
    tensor = triton_aio.InferInput(name, list(values.shape), datatype)
    tensor.set_data_from_numpy(values)
    return tensor
